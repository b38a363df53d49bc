/**
 * Long copies, watched and steered: live progress, pause and resume, cancel, a worker killed
 * mid-copy, a removal mid-copy. The host copies at a limited rate so a copy of a couple of
 * hundred MiB lasts seconds, long enough to act on while it runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OperationProgress, PROGRESS_QUERY } from '../../api/progress';
import type { StorageClient } from '../../client/storage-client';
import { diskflow, temporalCli } from '../harness/cli';
import { Model, sameContent, writeImage } from '../harness/content';
import { clientFor, startHost, stopAllHosts, TestHost } from '../harness/hosts';
import { imageRecord, qemuProcessesFor, volumeFiles } from '../harness/records';
import { localRepository, removeTempDirs } from '../harness/repositories';
import { operationOn } from '../harness/history';
import { eventually } from '../harness/wait';

const MiB = 2 ** 20;
const SIZE = 512 * MiB;
let host: TestHost;
let client: StorageClient;
let pathB: string;
let source: string;
const model = Model.blank(SIZE);

beforeAll(async () => {
  host = await startHost('ctl-host', { DISKFLOW_COPY_CHUNK: '16M', DISKFLOW_COPY_RATE_LIMIT: '48M', DISKFLOW_PROGRESS_INTERVAL_MS: '300' });
  client = await clientFor('ctl-host');
  await localRepository(client, 'src');
  pathB = await localRepository(client, 'dst');
  source = await client.createVirtualDisk('src', SIZE);
  await eventually(() => client.getImageStatus('src', source), (s) => s.status === 'optimized');
  const writes = [0, 1, 2, 3].map((i) => ({ pattern: 0xa0 + i, offset: i * 120 * MiB, length: 64 * MiB }));
  await writeImage(client, 'src', source, ...writes);
  model.write(...writes);
}, 120_000);

afterAll(async () => {
  await client?.close();
  await stopAllHosts();
  removeTempDirs();
});

const copyWorkflow = (imageId: string) => operationOn(client, 'copyImage', imageId);

const copying = (copy: string, above: number) =>
  eventually(() => client.getImageStatus('dst', copy), (s) => s.status === 'broken' && s.stage?.current === 1 && s.percentComplete > above, 30_000);

describe('a long copy', () => {
  it('shows rising progress, persisted on the repository and live from the workflow\'s query', async () => {
    const copy = await client.copyImage('dst', source);
    const handle = await copyWorkflow(copy);
    const seen: number[] = [];
    const live: OperationProgress[] = [];
    const final = await eventually(
      async () => {
        const status = await client.getImageStatus('dst', copy);
        if (status.status === 'broken' && status.stage?.current === 1) seen.push(status.percentComplete);
        if (status.status === 'broken') live.push(await handle.query<OperationProgress>(PROGRESS_QUERY));
        return status;
      },
      (s) => s.status === 'optimized',
      60_000,
    );
    expect(final).toMatchObject({ stage: { current: 2, total: 2 }, percentComplete: 100, hostId: 'ctl-host', lastError: null });
    expect(new Set(seen).size).toBeGreaterThan(2);
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
    const during = live.filter((p) => p.state === 'fixing' && p.step?.doneBytes);
    expect(during.length).toBeGreaterThan(1);
    expect(during[during.length - 1].step).toMatchObject({ imageId: copy, totalBytes: 256 * MiB, hostId: 'ctl-host' });
    expect(during[during.length - 1].step!.doneBytes).toBeGreaterThan(during[0].step!.doneBytes!);
    expect(await sameContent(client, 'dst', copy, model)).toBe(true);
  });

  it('paused, stops its qemu-img and keeps its progress; resumed, goes on from there and ends correct', async () => {
    const copy = await client.copyImage('dst', source);
    await copying(copy, 20);
    const handle = await copyWorkflow(copy);
    await handle.signal('pause');
    const volumeId = imageRecord(pathB, copy).volumeId;
    await eventually(async () => qemuProcessesFor(volumeId), (p) => p.length === 0, 10_000);
    const paused = await eventually(() => client.getImageStatus('dst', copy), (s) => s.lastError?.includes('paused') ?? false);
    expect(paused.status).toBe('broken');
    expect((await handle.query<OperationProgress>(PROGRESS_QUERY)).state).toBe('paused');
    const job = imageRecord(pathB, copy).pending;
    expect(job?.step === 'copy' && job.job.copiedUpTo).toBeGreaterThan(0);
    const resumeFrom = job?.step === 'copy' ? job.job.doneBytes : 0;
    await new Promise((r) => setTimeout(r, 1000));
    expect((await client.getImageStatus('dst', copy)).percentComplete).toBe(paused.percentComplete);

    await handle.signal('resume');
    const resumed = await eventually(() => client.getImageStatus('dst', copy), (s) => s.status === 'broken' && s.lastError === null);
    expect(resumed.percentComplete).toBeGreaterThanOrEqual(Math.floor((100 * resumeFrom) / (256 * MiB)));
    await eventually(() => client.getImageStatus('dst', copy), (s) => s.status === 'optimized', 60_000);
    expect(await sameContent(client, 'dst', copy, model)).toBe(true);
  });

  it('paused by Temporal\'s own activity pause (Web UI, CLI), stops; unpaused, continues and ends correct', async () => {
    const copy = await client.copyImage('dst', source);
    await copying(copy, 15);
    const handle = await copyWorkflow(copy);
    const activity = (await handle.describe()).raw.pendingActivities?.find((a) => a.activityType?.name === 'mendImage');
    expect(activity?.activityId).toBeTruthy();
    const cli = (command: string) => temporalCli(['activity', command, '--workflow-id', handle.workflowId, '--activity-id', activity!.activityId!]);
    await cli('pause');
    const volumeId = imageRecord(pathB, copy).volumeId;
    await eventually(async () => qemuProcessesFor(volumeId), (p) => p.length === 0, 10_000);
    const held = (await client.getImageStatus('dst', copy)).percentComplete;
    await new Promise((r) => setTimeout(r, 1500));
    expect((await client.getImageStatus('dst', copy)).percentComplete).toBe(held);
    await cli('unpause');
    await eventually(() => client.getImageStatus('dst', copy), (s) => s.status === 'optimized', 60_000);
    expect(await sameContent(client, 'dst', copy, model)).toBe(true);
  });

  it('cancelled, stops within seconds and leaves the image broken with lastError, and no qemu-img behind', async () => {
    const copy = await client.copyImage('dst', source);
    await copying(copy, 10);
    const handle = await copyWorkflow(copy);
    const volumeId = imageRecord(pathB, copy).volumeId;
    await handle.cancel();
    const stopped = await eventually(() => client.getImageStatus('dst', copy), (s) => s.lastError?.includes('cancelled') ?? false, 10_000);
    expect(stopped.status).toBe('broken');
    expect(qemuProcessesFor(volumeId)).toEqual([]);
    expect((await handle.describe()).status.name).toBe('CANCELLED');
  });

  it('survives its worker being killed mid-copy: restarted, the copy completes with the right data', async () => {
    const copy = await client.copyImage('dst', source);
    await copying(copy, 25);
    await host.stop('SIGKILL');
    const before = imageRecord(pathB, copy).pending;
    await host.restart();
    await eventually(() => client.getImageStatus('dst', copy), (s) => s.status === 'optimized', 90_000);
    expect(before?.step === 'copy' && before.job.copiedUpTo).toBeGreaterThan(0);
    expect(await sameContent(client, 'dst', copy, model)).toBe(true);
  }, 120_000);

  it('removed mid-copy, stops, and leaves nothing behind', async () => {
    const volumesBefore = volumeFiles(pathB).length;
    const copy = await client.copyImage('dst', source);
    await copying(copy, 5);
    const volumeId = imageRecord(pathB, copy).volumeId;
    await client.removeImage('dst', copy);
    await expect(client.getImageStatus('dst', copy)).rejects.toMatchObject({ code: 'IMAGE_NOT_FOUND' });
    await eventually(async () => qemuProcessesFor(volumeId), (p) => p.length === 0, 10_000);
    await eventually(async () => volumeFiles(pathB).length, (n) => n === volumesBefore, 20_000);
  });

  it('diskflow image status --watch follows the copy to its end', async () => {
    const copy = await client.copyImage('dst', source);
    const watched = await diskflow(['image', 'status', 'dst', copy, '--watch', '--json'], { DISKFLOW_HOST_ID: 'ctl-host' });
    expect(watched.code).toBe(0);
    expect(JSON.parse(watched.stdout)).toMatchObject({ imageId: copy, status: 'optimized' });
    const lines = watched.stderr.trim().split('\n');
    expect(lines.length).toBeGreaterThan(2);
    expect(lines.some((l) => /stage 1\/2 \d+% [\d.]+ (MiB|KiB|GiB)\/s/.test(l))).toBe(true);
  }, 90_000);
});
