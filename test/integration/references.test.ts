/**
 * An id the API returned never loses its base: disks made on a snapshot at the same time as the
 * snapshot is removed and cleaned, in its own repository and from another one, each end usable
 * with the snapshot's content or are refused with a code; nothing is left to clean or mend.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StorageClient } from '../../client/storage-client';
import { Model, sameContent, writeImage } from '../harness/content';
import { clientFor, startHost, stopAllHosts } from '../harness/hosts';
import { localRepository, removeTempDirs } from '../harness/repositories';
import { Hold, within } from '../harness/holds';
import { eventually } from '../harness/wait';

const MiB = 2 ** 20;
const SIZE = 8 * MiB;
let client: StorageClient;
/** A clean that has decided what is garbage, held before it purges it. */
const purgeHold = new Hold('clean.purging');

beforeAll(async () => {
  // Slow copies, so that a snapshot copied in from another repository is still being copied
  // while the other disks made on it are persisted.
  await startHost('ref-host', { DISKFLOW_COPY_CHUNK: '1M', DISKFLOW_COPY_RATE_LIMIT: '4M', ...purgeHold.env });
  client = await clientFor('ref-host');
  await localRepository(client, 'here');
  await localRepository(client, 'there');
});

afterAll(async () => {
  await client?.close();
  await stopAllHosts();
  removeTempDirs();
});

const usable = (repo: string, id: string) => eventually(() => client.getImageStatus(repo, id), (s) => s.status !== 'broken', 90_000);

async function snapshotWith(repo: string, model: Model): Promise<{ snapshot: string; disk: string }> {
  const disk = await client.createVirtualDisk(repo, SIZE);
  await usable(repo, disk);
  const writes = [{ pattern: 0xc1, offset: 0, length: 3 * MiB }, { pattern: 0xc2, offset: 5 * MiB, length: MiB }];
  await writeImage(client, repo, disk, ...writes);
  model.write(...writes);
  const snapshot = await client.createSnapshot(repo, disk);
  await usable(repo, disk);
  return { snapshot, disk };
}

/** Every disk made ends usable with `model`'s content; every refusal is IMAGE_NOT_FOUND. */
async function expectAllUsable(repo: string, results: PromiseSettledResult<string>[], model: Model): Promise<string[]> {
  const made = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  for (const r of results) if (r.status === 'rejected') expect((r.reason as { code?: string }).code).toBe('IMAGE_NOT_FOUND');
  await Promise.all(made.map((id) => usable(repo, id)));
  for (const id of made) expect(await sameContent(client, repo, id, model), id).toBe(true);
  return made;
}

/** A check after everything settled offers nothing to clean or mend. */
async function expectNothingLeft(repo: string): Promise<void> {
  const fixes = await eventually(() => client.checkStorageRepository(repo), (f) => !f.some((x) => x.type === 'clean' || x.type === 'mend'), 30_000);
  expect(fixes.filter((f) => f.type === 'clean' || f.type === 'mend')).toEqual([]);
}

describe('disks made on a snapshot while it is removed', () => {
  it('50 disks created at once from one snapshot while it is removed and cleaned: every id returned becomes usable with its content', async () => {
    const model = Model.blank(SIZE);
    const { snapshot } = await snapshotWith('here', model);
    const creates = Array.from({ length: 50 }, (_, i) =>
      new Promise((r) => setTimeout(r, i * 20)).then(() => client.createVirtualDisk('here', SIZE, snapshot)),
    );
    // The removal (and its clean, autoFix) lands in the middle of the burst.
    const removal = new Promise((r) => setTimeout(r, 400)).then(() => client.removeImage('here', snapshot));
    const results = await Promise.allSettled(creates);
    await removal;
    const made = await expectAllUsable('here', results, model);
    expect(made.length).toBeGreaterThan(0);
    await expectNothingLeft('here');
  }, 180_000);

  it('20 disks created at once from a snapshot in another repository: the first copies it in, the others wait for that copy, and all end usable', async () => {
    const model = Model.blank(SIZE);
    const { snapshot } = await snapshotWith('there', model);
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => client.createVirtualDisk('here', SIZE, snapshot)));
    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
    await expectAllUsable('here', results, model);
    await expectNothingLeft('here');
  }, 180_000);

  it('the snapshot removed from its own repository while it is copied in for new disks: its volumes stay until the copy is done, then go', async () => {
    const model = Model.blank(SIZE);
    const { snapshot, disk } = await snapshotWith('there', model);
    // Its disk gone, nothing but the snapshot holds its volume there.
    await client.removeImage('there', disk);
    await expectNothingLeft('there');
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => client.createVirtualDisk('here', SIZE, snapshot)));
    await client.removeImage('there', snapshot);
    await expectAllUsable('here', results, model);
    expect(await sameContent(client, 'here', snapshot, model)).toBe(true);
    await expectNothingLeft('there');
    await expectNothingLeft('here');
  }, 180_000);
});

describe('a clean purging volumes', () => {
  it('holds no lock a new reference waits for: a disk made on a snapshot while a removed disk is purged is persisted at once, and the purge then ends', async () => {
    const model = Model.blank(SIZE);
    const { snapshot } = await snapshotWith('here', model);
    const doomed = await client.createVirtualDisk('here', SIZE);
    await usable('here', doomed);
    const disk = await purgeHold.during(async () => {
      await client.removeImage('here', doomed);
      // Its clean has decided, under the chains lock, and waits before the purge.
      await purgeHold.reached();
      // A disk on a snapshot is a new reference, persisted under the same lock.
      return within(client.createVirtualDisk('here', SIZE, snapshot), 20_000, 'createVirtualDisk on a snapshot while a clean purges');
    });
    await usable('here', disk);
    expect(await sameContent(client, 'here', disk, model)).toBe(true);
    // The purge, let go, removes the disk's volume: nothing is left to clean.
    await expectNothingLeft('here');
  }, 120_000);
});
