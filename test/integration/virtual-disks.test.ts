import { existsSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeOf } from '../../api/failures';
import { PERSISTED_UPDATE } from '../../api/operations';
import { WORKFLOW_TASK_QUEUE } from '../../api/task-queues';
import type { StorageClient } from '../../client/storage-client';
import { Hold, within } from '../harness/holds';
import { clientFor, startHost, stopAllHosts } from '../harness/hosts';
import { qemuCheckClean, qemuInfo } from '../harness/qemu';
import { localRepository, removeTempDirs } from '../harness/repositories';
import { eventually } from '../harness/wait';

const MiB = 2 ** 20;
let client: StorageClient;
let repoPath: string;
// Armed on the host for every test; it holds mends only inside hold.during().
const mendHold = new Hold('mend.start');

beforeAll(async () => {
  await startHost('disks-host', mendHold.env);
  client = await clientFor('disks-host');
  repoPath = await localRepository(client, 'disks');
});

/** A disk that is ready for a VM: created, and its autoFix done. */
async function readyDisk(size: number, options: Record<string, unknown> = {}): Promise<string> {
  const imageId = await client.createVirtualDisk('disks', size, null, {}, options);
  await eventually(() => client.getImageStatus('disks', imageId), (s) => s.status === 'optimized');
  return imageId;
}

afterAll(async () => {
  await client?.close();
  await stopAllHosts();
  removeTempDirs();
});

describe('virtual disks on a localfs repository', () => {
  it('a blank disk made for space is a sparse qcow2 of the asked size', async () => {
    const imageId = await client.createVirtualDisk('disks', 64 * MiB);
    const status = await eventually(() => client.getImageStatus('disks', imageId), (s) => s.status === 'optimized');
    expect(status).toMatchObject({ imageId, repoId: 'disks', kind: 'virtual-disk', size: 64 * MiB, userData: {}, lastError: null, hostId: 'disks-host' });
    const prepared = await client.prepareImage('disks', imageId);
    expect(prepared.format).toBe('qcow2');
    expect(prepared.path.startsWith(repoPath)).toBe(true);
    const info = qemuInfo(prepared.path);
    expect(info).toMatchObject({ format: 'qcow2', 'virtual-size': 64 * MiB });
    expect(info['actual-size']).toBeLessThan(2 * MiB);
    expect(qemuCheckClean(prepared.path, 'qcow2')).toBe(true);
    await client.teardownImage('disks', imageId);
  });

  it('a blank disk made for performance is a preallocated raw file', async () => {
    const imageId = await readyDisk(32 * MiB, { strategy: 'performance' });
    const prepared = await client.prepareImage('disks', imageId);
    expect(prepared.format).toBe('raw');
    expect(qemuInfo(prepared.path)['virtual-size']).toBe(32 * MiB);
    expect(statSync(prepared.path).blocks * 512).toBeGreaterThanOrEqual(32 * MiB);
    await client.teardownImage('disks', imageId);
  });

  it('keeps userData as given and shows it in status and lists', async () => {
    const userData = { name: 'web-1 boot', tags: ['a', 'b'], nested: { n: 1, ok: true, none: null } };
    const imageId = await client.createVirtualDisk('disks', MiB, null, userData);
    expect((await client.getImageStatus('disks', imageId)).userData).toEqual(userData);
    expect((await client.listImages('disks')).find((i) => i.imageId === imageId)?.userData).toEqual(userData);
  });

  it('returns once persisted: the record is on the repository before the fix has run', async () => {
    // The mend (autoFix) waits at its start while held: a call that waited for the fix would not return.
    const imageId = await mendHold.during(async () => {
      const imageId = await within(client.createVirtualDisk('disks', MiB), 20_000, 'createVirtualDisk returning while its mend is held');
      expect(existsSync(`${repoPath}/images/${imageId}.json`)).toBe(true);
      const status = await client.getImageStatus('disks', imageId);
      expect(status.status).toBe('broken');
      expect(status.stage).toEqual({ current: 0, total: 1 });
      return imageId;
    });
    // The fix was pending, not absent: released, it runs.
    await eventually(() => client.getImageStatus('disks', imageId), (s) => s.status === 'optimized');
  });

  it('with autoFix off the disk stays broken and cannot be prepared', async () => {
    const imageId = await client.createVirtualDisk('disks', MiB, null, {}, { autoFix: false });
    await new Promise((r) => setTimeout(r, 1500));
    expect((await client.getImageStatus('disks', imageId)).status).toBe('broken');
    await expect(client.prepareImage('disks', imageId)).rejects.toMatchObject({ code: 'STORAGE_ERROR' });
  });

  it('lists every image that is not removed, oldest first', async () => {
    const a = await client.createVirtualDisk('disks', MiB);
    const b = await client.createVirtualDisk('disks', MiB);
    const ids = (await client.listImages('disks')).map((i) => i.imageId);
    expect(ids.indexOf(a)).toBeGreaterThanOrEqual(0);
    expect(ids.indexOf(b)).toBeGreaterThan(ids.indexOf(a));
  });

  it('removal is logical and immediate, and its clean frees the volume', async () => {
    const imageId = await readyDisk(8 * MiB);
    const { path } = await client.prepareImage('disks', imageId);
    await client.teardownImage('disks', imageId);
    await client.removeImage('disks', imageId);
    await expect(client.getImageStatus('disks', imageId)).rejects.toMatchObject({ code: 'IMAGE_NOT_FOUND' });
    expect((await client.listImages('disks')).some((i) => i.imageId === imageId)).toBe(false);
    await eventually(async () => existsSync(path), (exists) => !exists);
    await eventually(async () => existsSync(`${repoPath}/images/${imageId}.json`), (exists) => !exists);
  });

  it('removal with autoFix off keeps the volume until a clean', async () => {
    const imageId = await readyDisk(MiB);
    const { path } = await client.prepareImage('disks', imageId);
    await client.teardownImage('disks', imageId);
    await client.removeImage('disks', imageId, { autoFix: false });
    await expect(client.getImageStatus('disks', imageId)).rejects.toMatchObject({ code: 'IMAGE_NOT_FOUND' });
    await new Promise((r) => setTimeout(r, 1000));
    expect(existsSync(path)).toBe(true);
  });

  it('an image being created is refused for a VM with IMAGE_BUSY, then prepared once usable', async () => {
    const imageId = await client.createVirtualDisk('disks', 8 * MiB);
    const early = await client.prepareImage('disks', imageId).then(
      async () => {
        await client.teardownImage('disks', imageId);
        return 'prepared';
      },
      (e: { code: string }) => e.code,
    );
    // The autoFix may win the race; if it does not, the refusal is IMAGE_BUSY, never anything else.
    expect(['prepared', 'IMAGE_BUSY']).toContain(early);
    await eventually(() => client.getImageStatus('disks', imageId), (s) => s.status === 'optimized');
    await client.prepareImage('disks', imageId);
    await client.teardownImage('disks', imageId);
  });

  it('an image prepared for a VM cannot be removed until it is torn down', async () => {
    const imageId = await readyDisk(MiB);
    await client.prepareImage('disks', imageId);
    await expect(client.removeImage('disks', imageId)).rejects.toMatchObject({ code: 'IMAGE_IN_USE' });
    expect((await client.getImageStatus('disks', imageId)).status).toBe('optimized');
    await client.teardownImage('disks', imageId);
    await client.removeImage('disks', imageId);
  });

  it('the same requestId twice has one effect and one answer, during and after the operation', async () => {
    const before = (await client.listImages('disks')).length;
    const options = { requestId: `req-${Date.now()}` };
    const [a, b] = await Promise.all([
      client.createVirtualDisk('disks', MiB, null, {}, options),
      client.createVirtualDisk('disks', MiB, null, {}, options),
    ]);
    await eventually(() => client.getImageStatus('disks', a), (s) => s.status === 'optimized');
    const c = await client.createVirtualDisk('disks', MiB, null, {}, options);
    expect(b).toBe(a);
    expect(c).toBe(a);
    expect((await client.listImages('disks')).length).toBe(before + 1);
  });

  it('a requestId reused with other arguments is INVALID_ARGUMENT, while the first call runs and after it is done', async () => {
    // Done: the finished operation's request is compared by its fingerprint.
    const options = { requestId: `req-other-${Date.now()}`, autoFix: false };
    const first = await client.createVirtualDisk('disks', MiB, null, { vm: 1 }, options);
    await client.waitForOperation(`createVirtualDisk:${options.requestId}`);
    const before = (await client.listImages('disks')).length;
    await expect(client.createVirtualDisk('disks', 2 * MiB, null, { vm: 1 }, options)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('other arguments') });
    await expect(client.createVirtualDisk('disks', MiB, null, { vm: 2 }, options)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(await client.createVirtualDisk('disks', MiB, null, { vm: 1 }, options)).toBe(first);
    expect((await client.listImages('disks')).length).toBe(before);

    // Running: its `persisted` update refuses another request. (A host that is not there keeps
    // the operation waiting at its first step for 15 s, long enough to ask.)
    const input = { hostId: 'no-such-host', targetRepoId: 'disks', size: MiB };
    const workflowId = `createVirtualDisk:req-running-${Date.now()}`;
    const handle = await client.temporal.workflow.start('createVirtualDisk', { taskQueue: WORKFLOW_TASK_QUEUE, workflowId, args: [input] });
    try {
      const refused = await handle.executeUpdate(PERSISTED_UPDATE, { args: [{ ...input, size: 2 * MiB }] }).then(() => undefined, (e: unknown) => e);
      expect(codeOf(refused)).toBe('INVALID_ARGUMENT');
      expect((await handle.describe()).status.name).toBe('RUNNING');
    } finally {
      await handle.terminate('test done');
    }
  });

  it('a listing comes in pages that each fit in one answer; listImages pages through all of it', async () => {
    // A host whose answers hold about 5 KB stands in for a repository of thousands of images.
    await startHost('pages-host', { DISKFLOW_ANSWER_BYTES: '5000' });
    const small = await clientFor('pages-host');
    try {
      await localRepository(small, 'pages');
      const ids: string[] = [];
      for (const bytes of [2000, 2000, 2000, 9000, 100]) ids.push(await small.createVirtualDisk('pages', MiB, null, { note: 'x'.repeat(bytes) }));
      const first = await small.listImagesPage('pages');
      expect(first.images.map((i) => i.imageId)).toEqual(ids.slice(0, 2));
      expect(first.next).not.toBeNull();
      // An image larger than a page on its own still gets a page of its own.
      const third = await small.listImagesPage('pages', (await small.listImagesPage('pages', first.next)).next);
      expect(third.images.map((i) => i.imageId)).toEqual([ids[3]]);
      expect((await small.listImages('pages')).map((i) => i.imageId)).toEqual(ids);
      await expect(small.listImagesPage('pages', 'not-a-cursor')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('after') });
    } finally {
      await small.close();
    }
  });

  it('a preallocated disk larger than the free space is refused with NO_SPACE', async () => {
    await expect(client.createVirtualDisk('disks', 2 ** 50, null, {}, { strategy: 'performance' })).rejects.toMatchObject({ code: 'NO_SPACE' });
  });

  it('every operation is tagged for the Web UI: repository, image, operation and host', async () => {
    const imageId = await client.createVirtualDisk('disks', MiB);
    const found = await eventually(
      async () => {
        const ids: string[] = [];
        for await (const wf of client.temporal.workflow.list({ query: `DiskflowImage = '${imageId}'` })) ids.push(wf.type);
        return ids;
      },
      (types) => types.includes('createVirtualDisk'),
    );
    expect(found).toContain('createVirtualDisk');
    const byHost = client.temporal.workflow.list({ query: `DiskflowHost = 'disks-host' AND DiskflowRepo = 'disks' AND DiskflowOperation = 'createVirtualDisk'` });
    let count = 0;
    for await (const _ of byHost) count++;
    expect(count).toBeGreaterThan(0);
  });
});
