import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WORKFLOW_TASK_QUEUE } from '../../api/task-queues';
import type { StorageClient } from '../../client/storage-client';
import { clientFor, startHost, stopAllHosts } from '../harness/hosts';
import { localRepository, removeTempDirs, snapshotTree, tempDir } from '../harness/repositories';

let client: StorageClient;
let repoPath: string;
let emptyDir: string;

beforeAll(async () => {
  await startHost('input-host');
  client = await clientFor('input-host');
  repoPath = await localRepository(client, 'input');
  emptyDir = tempDir('empty');
});

afterAll(async () => {
  await client?.close();
  await stopAllHosts();
  removeTempDirs();
});

const MiB = 2 ** 20;
const DISK = '5b0e9d2e-8a51-4c3c-9d53-2d1f6bb0f0a1';

function circular(): Record<string, unknown> {
  const value: Record<string, unknown> = { a: 1 };
  value.self = value;
  return value;
}
function nested(levels: number): unknown {
  let value: unknown = 0;
  for (let i = 0; i < levels; i++) value = [value];
  return value;
}

/** [what is wrong, the call, the field its message must name]. */
const cases: [string, (c: StorageClient) => Promise<unknown>, string][] = [
  ['a zero size', (c) => c.createVirtualDisk('input', 0), 'size'],
  ['a negative size', (c) => c.createVirtualDisk('input', -5 * 2 ** 30), 'size'],
  ['a fractional size', (c) => c.createVirtualDisk('input', 1.5), 'size'],
  ['a size that is not whole sectors', (c) => c.createVirtualDisk('input', 1000), 'size'],
  ['a size beyond qemu\'s limit', (c) => c.createVirtualDisk('input', 2 ** 52), 'size'],
  ['a size that is not a number', (c) => c.createVirtualDisk('input', '1G' as unknown as number), 'size'],
  ['a NaN size', (c) => c.createVirtualDisk('input', Number.NaN), 'size'],
  ['an infinite size', (c) => c.createVirtualDisk('input', Number.POSITIVE_INFINITY), 'size'],
  ['an empty repoId', (c) => c.createVirtualDisk('', MiB), 'targetRepoId'],
  ['a repoId with a path in it', (c) => c.createVirtualDisk('../etc', MiB), 'targetRepoId'],
  ['a repoId with spaces', (c) => c.createVirtualDisk('a b', MiB), 'targetRepoId'],
  ['a malformed snapshot id', (c) => c.createVirtualDisk('input', MiB, 'not-a-uuid'), 'baseSnapshotId'],
  ['userData that is an array', (c) => c.createVirtualDisk('input', MiB, null, [1] as unknown as Record<string, unknown>), 'userData'],
  ['userData that is a string', (c) => c.createVirtualDisk('input', MiB, null, 'x' as unknown as Record<string, unknown>), 'userData'],
  ['userData over 64 KiB', (c) => c.createVirtualDisk('input', MiB, null, { blob: 'x'.repeat(64 * 1024) }), 'userData'],
  ['userData that is not JSON', (c) => c.createVirtualDisk('input', MiB, null, { n: Number.NaN }), 'userData.n'],
  ['userData holding a function', (c) => c.createVirtualDisk('input', MiB, null, { f: () => 1 }), 'userData.f'],
  ['userData that is circular', (c) => c.createVirtualDisk('input', MiB, null, circular()), 'userData.self: is circular'],
  ['userData nested 33 levels deep', (c) => c.createVirtualDisk('input', MiB, null, { d: nested(32) }), 'userData: must nest at most 32 levels'],
  ['userData nested 100,000 levels deep', (c) => c.createVirtualDisk('input', MiB, null, { d: nested(100_000) }), 'nests deeper than'],
  ['userData with a __proto__ key', (c) => c.createVirtualDisk('input', MiB, null, JSON.parse('{"a":{"__proto__":{"admin":true}}}')), 'userData.a.__proto__'],
  ['userData with a constructor key', (c) => c.createVirtualDisk('input', MiB, null, { constructor: { prototype: 1 } }), 'userData.constructor'],
  ['an unknown option', (c) => c.createVirtualDisk('input', MiB, null, {}, { turbo: true }), 'options'],
  ['an unknown strategy', (c) => c.createVirtualDisk('input', MiB, null, {}, { strategy: 'fast' }), 'options.strategy'],
  ['autoFix that is not a boolean', (c) => c.createVirtualDisk('input', MiB, null, {}, { autoFix: 'yes' }), 'options.autoFix'],
  ['a requestId with spaces', (c) => c.createVirtualDisk('input', MiB, null, {}, { requestId: 'a b' }), 'options.requestId'],
  ['an image hint that is not an image id', (c) => c.createVirtualDisk('input', MiB, null, {}, { imageHints: { x: 'input' } }), 'options.imageHints'],
  ['no participating repositories', (c) => c.createVirtualDisk('input', MiB, null, {}, { participatingRepositories: [] }), 'options.participatingRepositories'],
  ['a malformed image id to remove', (c) => c.removeImage('input', 'nope'), 'imageId'],
  ['an unknown removal option', (c) => c.removeImage('input', DISK, { strategy: 'space' }), 'options'],
  ['an upper-case image id', (c) => c.getImageStatus('input', DISK.toUpperCase()), 'imageId'],
  ['a malformed host id', (c) => c.prepareImage('input', DISK, { hostId: '-h' }), 'hostId'],
  ['an unknown repository format', (c) => c.initStorageRepository('ext4-1.0' as never, { path: emptyDir }), 'repoFormat'],
  ['a relative path', (c) => c.initStorageRepository('localfs-1.0', { path: 'relative/dir' }), 'connectionParameters.path'],
  ['a path with ..', (c) => c.initStorageRepository('localfs-1.0', { path: `${emptyDir}/../x` }), 'connectionParameters.path'],
  ['a path with .', (c) => c.initStorageRepository('localfs-1.0', { path: `${emptyDir}/./x` }), 'connectionParameters.path'],
  ['a path with //', (c) => c.initStorageRepository('localfs-1.0', { path: `${emptyDir}//x` }), 'connectionParameters.path'],
  ['a missing path', (c) => c.initStorageRepository('localfs-1.0', {}), 'connectionParameters.path'],
  ['an unknown connection parameter', (c) => c.initStorageRepository('localfs-1.0', { path: emptyDir, mode: 'x' }), 'connectionParameters'],
  ['a mount option off the allow-list', (c) => c.connectStorageRepository('n', 'nfs-1.0', { server: 'nas', export: '/e', mountOptions: 'exec' }), 'connectionParameters.mountOptions'],
  ['a path that does not exist', (c) => c.connectStorageRepository('x', 'localfs-1.0', { path: '/nonexistent/diskflow' }), 'connectionParameters.path'],
  ['a malformed repoId to connect', (c) => c.connectStorageRepository('bad id', 'localfs-1.0', { path: emptyDir }), 'repoId'],
];

describe('bad input gets a clear, typed error and changes nothing', () => {
  it.each(cases)('%s is refused with INVALID_ARGUMENT naming the field', async (_what, call, field) => {
    const repoBefore = snapshotTree(repoPath);
    const emptyBefore = snapshotTree(emptyDir);
    const error = await call(client).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ name: 'DiskflowError', code: 'INVALID_ARGUMENT' });
    expect((error as Error).message).toContain(`${field}`);
    expect(snapshotTree(repoPath)).toEqual(repoBefore);
    expect(snapshotTree(emptyDir)).toEqual(emptyBefore);
  });

  it('workflows check their own input too, for engines that start them directly', async () => {
    const handle = await client.temporal.workflow.start('createVirtualDisk', {
      taskQueue: WORKFLOW_TASK_QUEUE,
      workflowId: `bad-input-${Date.now()}`,
      args: [{ hostId: 'input-host', targetRepoId: 'input', size: -1 }],
    });
    const failure = await handle.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    const cause = (failure as WorkflowFailedError).cause;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect((cause as ApplicationFailure).type).toBe('INVALID_ARGUMENT');
    expect((cause as ApplicationFailure).message).toContain('input.size');
    expect((await client.listImages('input')).length).toBe(0);
  });
});
