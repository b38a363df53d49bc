/**
 * Healing from storage alone (issue: check and fix, point 6). A worker is killed (SIGKILL, by a
 * failpoint) at chosen instants of every operation type; then either Temporal still drives the
 * operation after the worker restarts, or Temporal has forgotten it (its workflows terminated,
 * or a fresh Temporal server) and `checkStorageRepository` alone must find what is left. In
 * every case, once the fixes it returns have run: every image is usable, holds what was
 * written, and a second check has no clean or mend fix.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Fix } from '../../api/image-status';
import type { StorageClient } from '../../client/storage-client';
import { startDevServer } from '../../workers/temporal-server';
import { Model, sameContent, writeImage } from '../harness/content';
import { clientFor, startHost, stopAllHosts, temporalAddress, TestHost } from '../harness/hosts';
import { uncleanVolumes } from '../harness/records';
import { localRepository, removeTempDirs } from '../harness/repositories';
import { eventually } from '../harness/wait';
import { StorageClient as Client } from '../../client/storage-client';

const MiB = 2 ** 20;
const SIZE = 48 * MiB;
const models = new Map<string, Model>();
let host: TestHost;
let client: StorageClient;
const paths: Record<string, string> = {};

beforeAll(async () => {
  host = await startHost('heal-host', { DISKFLOW_COPY_CHUNK: '4M', DISKFLOW_COPY_RANGE_SECONDS: '0', DISKFLOW_FIX_KEY: 'heal-key-at-least-thirty-two-bytes-long' });
  client = await clientFor('heal-host');
  paths.h = await localRepository(client, 'h');
  paths.h2 = await localRepository(client, 'h2');
  models.set('blank', Model.blank(SIZE));
}, 120_000);

afterAll(async () => {
  await client?.close();
  await stopAllHosts();
  removeTempDirs();
});

const usable = (id: string, repo = 'h') => eventually(() => client.getImageStatus(repo, id), (s) => s.status !== 'broken', 60_000);

/** A usable disk holding a pattern, tagged with the model of its content. */
async function patternedDisk(name: string, pattern: number): Promise<string> {
  const model = Model.blank(SIZE).write({ pattern, offset: 0, length: 12 * MiB }, { pattern: pattern + 1, offset: 30 * MiB, length: 4 * MiB });
  models.set(name, model);
  const id = await client.createVirtualDisk('h', SIZE, null, { model: name });
  await usable(id);
  await writeImage(client, 'h', id, { pattern, offset: 0, length: 12 * MiB }, { pattern: pattern + 1, offset: 30 * MiB, length: 4 * MiB });
  return id;
}

async function runAllFixes(c: StorageClient): Promise<void> {
  for (let round = 0; round < 4; round++) {
    let ran = 0;
    for (const repo of ['h', 'h2']) {
      for (const fix of await c.checkStorageRepository(repo)) {
        const { operationId } = await c.fixStorageRepository(repo, fix);
        await c.waitForOperation(operationId);
        ran++;
      }
    }
    if (!ran) return;
  }
}

async function expectHealed(c: StorageClient): Promise<void> {
  for (const repo of ['h', 'h2']) {
    const left = (await c.checkStorageRepository(repo)).filter((f: Fix) => f.type === 'clean' || f.type === 'mend');
    expect(left).toEqual([]);
    for (const image of await c.listImages(repo)) {
      expect(image.status, `${image.imageId} in ${repo}`).not.toBe('broken');
      const model = models.get(String(image.userData.model));
      expect(model, `image ${image.imageId} has a known model`).toBeDefined();
      expect(await sameContent(c, repo, image.imageId, model!), `content of ${image.imageId} in ${repo}`).toBe(true);
    }
    expect(uncleanVolumes(paths[repo])).toEqual([]);
  }
}

async function forgetRunningWorkflows(): Promise<void> {
  for await (const wf of client.temporal.workflow.list({ query: `ExecutionStatus = 'Running'` })) {
    await client.temporal.workflow.getHandle(wf.workflowId).terminate('forgotten: healing from storage alone').catch(() => undefined);
  }
}

type Scenario = [operation: string, failpoint: string, start: () => Promise<unknown>];

let source = '';
let snapshotForMerge = '';
const scenarios: Scenario[] = [
  ['createVirtualDisk', 'persist.image-created', () => client.createVirtualDisk('h', SIZE, null, { model: 'blank' })],
  ['createVirtualDisk', 'mend.volume-illegal', () => client.createVirtualDisk('h', SIZE, null, { model: 'blank' })],
  ['createVirtualDisk', 'mend.volume-created', () => client.createVirtualDisk('h', SIZE, null, { model: 'blank' }, { strategy: 'performance' })],
  ['createVirtualDisk', 'mend.volume-legal', () => client.createVirtualDisk('h', SIZE, null, { model: 'blank' })],
  ['createSnapshot', 'snapshot.disk-moved', () => client.createSnapshot('h', source, { model: 'source' })],
  ['createSnapshot', 'mend.volume-created', () => client.createSnapshot('h', source, { model: 'source' })],
  ['copyImage', 'persist.image-created', () => client.copyImage('h2', source)],
  ['copyImage', 'copy.range-done', () => client.copyImage('h2', source)],
  ['copyImage', 'copy.before-legal', () => client.copyImage('h2', source)],
  ['removeImage', 'remove.marked', async () => client.removeImage('h2', await client.copyImage('h2', source).then(async (id) => (await usable(id, 'h2'), id)))],
  ['removeImage', 'volume.renamed-for-removal', async () => client.removeImage('h2', await client.copyImage('h2', source).then(async (id) => (await usable(id, 'h2'), id)))],
  ['removeImage', 'clean.volume-removed', async () => client.removeImage('h2', await client.copyImage('h2', source).then(async (id) => (await usable(id, 'h2'), id)))],
  [
    'fixStorageRepository (optimize)',
    'optimize.before-switch',
    async () => {
      const snapshot = await client.createSnapshot('h', source, { model: 'source' });
      const fast = await client.createVirtualDisk('h', SIZE, snapshot, { model: 'source' }, { strategy: 'performance' });
      await usable(fast);
      const [fix] = (await client.checkStorageRepository('h')).filter((f) => f.type === 'optimize' && f.imageIds.includes(fast));
      return client.fixStorageRepository('h', fix);
    },
  ],
  [
    'fixStorageRepository (merge)',
    'merge.committed',
    async () => {
      snapshotForMerge = await client.createSnapshot('h', source, { model: 'source' });
      await usable(source);
      await client.removeImage('h', snapshotForMerge);
      const [fix] = (await client.checkStorageRepository('h')).filter((f) => f.type === 'merge' && f.imageIds.includes(source));
      return client.fixStorageRepository('h', fix);
    },
  ],
];

describe('healing from storage alone', () => {
  beforeAll(async () => {
    source = await patternedDisk('source', 0x31);
  });

  it.each(scenarios)('%s killed at %s: check and fix alone bring the repository back', async (_op, point, start) => {
    await host.restart({ DISKFLOW_FAILPOINTS: point });
    const started = start().catch(() => undefined);
    await Promise.race([host.exited(), new Promise((_, reject) => setTimeout(() => reject(new Error(`failpoint ${point} was not reached`)), 60_000))]);
    await forgetRunningWorkflows();
    await host.restart({ DISKFLOW_FAILPOINTS: '' });
    await started;
    await runAllFixes(client);
    await expectHealed(client);
  }, 180_000);

  it.each([
    ['copyImage', 'copy.range-done', () => client.copyImage('h2', source)],
    ['createSnapshot', 'snapshot.disk-moved', () => client.createSnapshot('h', source, { model: 'source' })],
    ['removeImage', 'volume.renamed-for-removal', async () => client.removeImage('h2', await client.copyImage('h2', source).then(async (id) => (await usable(id, 'h2'), id)))],
  ] as Scenario[])('%s killed at %s: with Temporal intact, the restarted worker finishes it by itself', async (_op, point, start) => {
    await host.restart({ DISKFLOW_FAILPOINTS: point });
    const started = start().catch(() => undefined);
    await host.exited();
    await host.restart({ DISKFLOW_FAILPOINTS: '' });
    await started;
    await eventually(
      async () => {
        let running = 0;
        for await (const _ of client.temporal.workflow.list({ query: `ExecutionStatus = 'Running'` })) running++;
        return running;
      },
      (n) => n === 0,
      90_000,
    );
    await expectHealed(client);
  }, 180_000);

  it('a repository attached to a fresh Temporal cluster is checked and fixed from disk alone', async () => {
    // Work left behind: a copy stopped mid-way, a disk never fixed, a removal never cleaned.
    await host.restart({ DISKFLOW_FAILPOINTS: 'copy.range-done' });
    void client.copyImage('h2', source).catch(() => undefined);
    await host.exited();
    await host.restart({ DISKFLOW_FAILPOINTS: '' });
    await forgetRunningWorkflows();
    await client.createVirtualDisk('h', SIZE, null, { model: 'blank' }, { autoFix: false });
    const removed = await client.copyImage('h2', source);
    await usable(removed, 'h2');
    await client.removeImage('h2', removed, { autoFix: false });

    const fresh = await startDevServer();
    try {
      await host.restart({ TEMPORAL_ADDRESS: fresh.address });
      const other = await Client.connect({ address: fresh.address, hostId: 'heal-host' });
      try {
        const fixes = [...(await other.checkStorageRepository('h')), ...(await other.checkStorageRepository('h2'))];
        expect(fixes.map((f) => f.type)).toEqual(expect.arrayContaining(['mend', 'clean']));
        await runAllFixes(other);
        await expectHealed(other);
      } finally {
        await other.close();
      }
    } finally {
      await host.restart({ TEMPORAL_ADDRESS: temporalAddress() });
      await fresh.stop();
    }
  }, 180_000);
});
