import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageStatus } from '../../api/image-status';
import { diskflow, diskflowJson } from '../harness/cli';
import { startHost, stopAllHosts } from '../harness/hosts';
import { removeTempDirs, snapshotTree, tempDir } from '../harness/repositories';
import { eventually } from '../harness/wait';

const HOST = { DISKFLOW_HOST_ID: 'cli-host' };
let repoPath: string;

beforeAll(async () => {
  await startHost('cli-host');
  repoPath = tempDir('cli');
  expect(await diskflowJson(['repo', 'init', 'localfs-1.0', '--param', `path=${repoPath}`], HOST)).toBeNull();
  expect(await diskflowJson(['repo', 'connect', 'cli', 'localfs-1.0', '--param', `path=${repoPath}`], HOST)).toBeNull();
});

afterAll(async () => {
  await stopAllHosts();
  removeTempDirs();
});

describe('the diskflow command line', () => {
  it('creates, shows, prepares and removes a 1 GiB disk, as the README shows', async () => {
    const imageId = await diskflowJson<string>(['disk', 'create', 'cli', '1G'], HOST);
    expect(imageId).toMatch(/^[0-9a-f-]{36}$/);
    const status = await eventually(() => diskflowJson<ImageStatus>(['image', 'status', 'cli', imageId], HOST), (s) => s.status === 'optimized');
    expect(status).toMatchObject({ imageId, status: 'optimized', size: 1073741824, kind: 'virtual-disk' });

    const prepared = await diskflowJson<{ path: string; format: string }>(['image', 'prepare', 'cli', imageId], HOST);
    const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', '-U', prepared.path], { encoding: 'utf8' }));
    expect(info['virtual-size']).toBe(1073741824);
    expect(await diskflowJson(['image', 'teardown', 'cli', imageId], HOST)).toBeNull();

    const removed = await diskflow(['image', 'rm', 'cli', imageId], HOST);
    expect(removed).toMatchObject({ code: 0, stdout: `removed ${imageId}\n` });
    const gone = await diskflow(['image', 'status', 'cli', imageId, '--json'], HOST);
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toMatch(/^IMAGE_NOT_FOUND: /);
    expect(gone.stdout).toBe('');
  });

  it('a negative size exits non-zero with INVALID_ARGUMENT and creates nothing', async () => {
    const before = snapshotTree(repoPath);
    const result = await diskflow(['disk', 'create', 'cli', '-5G'], HOST);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/^INVALID_ARGUMENT: size: /);
    expect(snapshotTree(repoPath)).toEqual(before);
  });

  it('readable output without --json: the id, the list, the status table', async () => {
    const created = await diskflow(['disk', 'create', 'cli', '16M', '--user-data', '{"name":"web"}', '--strategy', 'performance'], HOST);
    expect(created.code).toBe(0);
    const imageId = created.stdout.trim();
    await eventually(() => diskflowJson<ImageStatus>(['image', 'status', 'cli', imageId], HOST), (s) => s.status === 'optimized');
    const list = await diskflow(['image', 'list', 'cli'], HOST);
    expect(list.stdout).toContain(imageId);
    expect(list.stdout).toContain('16 MiB');
    const status = await diskflow(['image', 'status', 'cli', imageId], HOST);
    expect(status.stdout).toContain('{"name":"web"}');
    expect(status.stdout).not.toContain('\u001b['); // no colours when not on a terminal
  });

  it('every call option has its flag: --no-auto-fix, --request-id', async () => {
    const first = await diskflowJson<string>(['disk', 'create', 'cli', '1M', '--no-auto-fix', '--request-id', 'cli-once'], HOST);
    const second = await diskflowJson<string>(['disk', 'create', 'cli', '1M', '--no-auto-fix', '--request-id', 'cli-once'], HOST);
    expect(second).toBe(first);
    expect((await diskflowJson<ImageStatus>(['image', 'status', 'cli', first], HOST)).status).toBe('broken');
  });

  it('repo constraints reports that localfs needs no SRM', async () => {
    expect(await diskflowJson(['repo', 'constraints', 'cli'], HOST)).toEqual({ needsSrm: false, srmHostId: null });
  });

  it('usage errors carry a code too', async () => {
    const result = await diskflow(['disk', 'create', 'cli'], HOST);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/^INVALID_ARGUMENT: missing required argument 'size'/);
  });

  it('a Temporal server that is not there is reported as such', async () => {
    const result = await diskflow(['image', 'list', 'cli'], { ...HOST, TEMPORAL_ADDRESS: '127.0.0.1:1' });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/^STORAGE_ERROR: cannot reach Temporal at 127.0.0.1:1/);
  });
});
