/**
 * Restarts resume by themselves: a worker SIGKILLed and restarted again and again while many
 * copies run between two repositories (on its own host queue) ends with every copy usable and
 * right, without any fix run by hand: a restarted host takes work only once its repositories
 * are connected again, and a step that reaches it before is retried, never failed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StorageClient } from '../../client/storage-client';
import { Model, sameContent, writeImage } from '../harness/content';
import { clientFor, startHost, stopAllHosts, TestHost } from '../harness/hosts';
import { localRepository, removeTempDirs } from '../harness/repositories';
import { eventually } from '../harness/wait';

const MiB = 2 ** 20;
const SIZE = 16 * MiB;
let host: TestHost;
let client: StorageClient;

beforeAll(async () => {
  host = await startHost('storm-host', { DISKFLOW_COPY_CHUNK: '2M', DISKFLOW_COPY_RATE_LIMIT: '8M' });
  client = await clientFor('storm-host');
  await localRepository(client, 'from');
  await localRepository(client, 'to');
});

afterAll(async () => {
  await client?.close();
  await stopAllHosts();
  removeTempDirs();
});

describe('a worker killed again and again while copies run', () => {
  it('15 copies between two repositories, the worker SIGKILLed and restarted 10 times: every copy ends usable and right, and no fix is needed', async () => {
    const sources: { id: string; model: Model }[] = [];
    for (let i = 0; i < 3; i++) {
      const model = Model.blank(SIZE);
      const id = await client.createVirtualDisk('from', SIZE);
      await eventually(() => client.getImageStatus('from', id), (s) => s.status === 'optimized');
      const writes = [{ pattern: 0xd0 + i, offset: i * MiB, length: 6 * MiB }];
      await writeImage(client, 'from', id, ...writes);
      model.write(...writes);
      sources.push({ id, model });
    }
    const copies = await Promise.all(Array.from({ length: 15 }, async (_, i) => ({ id: await client.copyImage('to', sources[i % 3].id), model: sources[i % 3].model })));

    for (let kill = 0; kill < 10; kill++) {
      await new Promise((r) => setTimeout(r, 1500));
      await host.stop('SIGKILL');
      await host.restart();
    }

    for (const copy of copies) {
      // A copy that stopped with an error would need a fix by hand: that ends the wait too.
      const status = await eventually(() => client.getImageStatus('to', copy.id), (s) => s.status !== 'broken' || s.lastError !== null, 180_000);
      expect(status).toMatchObject({ status: 'optimized', lastError: null });
    }
    for (const copy of copies) expect(await sameContent(client, 'to', copy.id, copy.model), copy.id).toBe(true);
    const fixes = await client.checkStorageRepository('to');
    expect(fixes.filter((f) => f.type === 'mend')).toEqual([]);
  }, 300_000);
});
