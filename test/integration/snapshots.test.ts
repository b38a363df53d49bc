import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StorageClient } from '../../client/storage-client';
import { chainOf, Model, qcow2ChainFiles, sameContent, writeImage } from '../harness/content';
import { clientFor, startHost, stopAllHosts } from '../harness/hosts';
import { uncleanVolumes, volumeFiles } from '../harness/records';
import { localRepository, removeTempDirs } from '../harness/repositories';
import { eventually } from '../harness/wait';

const MiB = 2 ** 20;
const SIZE = 32 * MiB;
let client: StorageClient;
let snapsPath: string;

beforeAll(async () => {
  await startHost('snap-host');
  client = await clientFor('snap-host');
  snapsPath = await localRepository(client, 'snaps');
});

afterAll(async () => {
  await client?.close();
  await stopAllHosts();
  removeTempDirs();
});

const usable = (repo: string, id: string, status: 'optimized' | 'degraded' = 'optimized') =>
  eventually(() => client.getImageStatus(repo, id), (s) => s.status === status);

async function diskWith(model: Model, ...writes: Parameters<Model['write']>): Promise<string> {
  const id = await client.createVirtualDisk('snaps', SIZE);
  await usable('snaps', id);
  await writeImage(client, 'snaps', id, ...writes);
  model.write(...writes);
  return id;
}

describe('snapshots', () => {
  it('a snapshot freezes the disk\'s content, and the disk stays writable on top of it', async () => {
    const before = Model.blank(SIZE);
    const disk = await diskWith(before, { pattern: 0x11, offset: 0, length: 4 * MiB }, { pattern: 0x22, offset: 20 * MiB, length: MiB });
    const snapshot = await client.createSnapshot('snaps', disk, { purpose: 'before upgrade' });
    expect(await client.getImageStatus('snaps', snapshot)).toMatchObject({ kind: 'snapshot', status: 'optimized', size: SIZE, userData: { purpose: 'before upgrade' } });
    await usable('snaps', disk);

    const after = before.fork().write({ pattern: 0x33, offset: 2 * MiB, length: 4 * MiB });
    await writeImage(client, 'snaps', disk, { pattern: 0x33, offset: 2 * MiB, length: 4 * MiB });

    expect(await sameContent(client, 'snaps', snapshot, before)).toBe(true);
    expect(await sameContent(client, 'snaps', disk, after)).toBe(true);
    expect(await sameContent(client, 'snaps', snapshot, after)).toBe(false);
    // The disk is a thin overlay on what the snapshot froze.
    expect((await chainOf(client, 'snaps', disk)).length).toBe(2);
  });

  it('any number of disks from one snapshot are thin and independent, and removing one touches no other', async () => {
    const base = Model.blank(SIZE);
    const disk = await diskWith(base, { pattern: 0x41, offset: 0, length: 8 * MiB });
    const snapshot = await client.createSnapshot('snaps', disk);
    const children = await Promise.all([1, 2, 3].map(() => client.createVirtualDisk('snaps', SIZE, snapshot)));
    for (const child of children) await usable('snaps', child);
    const models = children.map((_, i) => base.fork().write({ pattern: 0x50 + i, offset: i * MiB, length: MiB }));
    for (const [i, child] of children.entries()) await writeImage(client, 'snaps', child, { pattern: 0x50 + i, offset: i * MiB, length: MiB });

    await client.removeImage('snaps', children[0]);
    for (const [i, child] of children.entries()) {
      if (i === 0) continue;
      expect(await sameContent(client, 'snaps', child, models[i])).toBe(true);
      const chain = await chainOf(client, 'snaps', child);
      expect(chain[0].format).toBe('qcow2');
      expect(chain.length).toBe(2);
    }
    expect(await sameContent(client, 'snaps', snapshot, base)).toBe(true);
  });

  it('a larger size grows the new disk, with the snapshot\'s content and zeros after it', async () => {
    const base = Model.blank(SIZE);
    const disk = await diskWith(base, { pattern: 0x61, offset: SIZE - MiB, length: MiB });
    const snapshot = await client.createSnapshot('snaps', disk);
    const bigger = await client.createVirtualDisk('snaps', 2 * SIZE, snapshot);
    expect((await usable('snaps', bigger)).size).toBe(2 * SIZE);
    const model = base.fork(2 * SIZE).write({ pattern: 0x62, offset: SIZE + MiB, length: MiB });
    await writeImage(client, 'snaps', bigger, { pattern: 0x62, offset: SIZE + MiB, length: MiB });
    expect(await sameContent(client, 'snaps', bigger, model)).toBe(true);
  });

  it('a smaller size than the snapshot is INVALID_ARGUMENT', async () => {
    const disk = await diskWith(Model.blank(SIZE), { pattern: 1, offset: 0, length: MiB });
    const snapshot = await client.createSnapshot('snaps', disk);
    await expect(client.createVirtualDisk('snaps', SIZE / 2, snapshot)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('size') });
  });

  it('for performance, the quickest usable disk from a snapshot is a thin overlay, degraded', async () => {
    const base = Model.blank(SIZE);
    const disk = await diskWith(base, { pattern: 0x71, offset: MiB, length: 2 * MiB });
    const snapshot = await client.createSnapshot('snaps', disk);
    const fast = await client.createVirtualDisk('snaps', SIZE, snapshot, {}, { strategy: 'performance' });
    await usable('snaps', fast, 'degraded');
    expect(await sameContent(client, 'snaps', fast, base)).toBe(true);
  });

  it('a disk prepared for a VM cannot be snapshotted (IMAGE_IN_USE); a snapshot is not a virtual disk, nor a disk a snapshot', async () => {
    const disk = await diskWith(Model.blank(SIZE), { pattern: 1, offset: 0, length: MiB });
    await client.prepareImage('snaps', disk);
    await expect(client.createSnapshot('snaps', disk)).rejects.toMatchObject({ code: 'IMAGE_IN_USE' });
    await client.teardownImage('snaps', disk);
    const snapshot = await client.createSnapshot('snaps', disk);
    await expect(client.createSnapshot('snaps', snapshot)).rejects.toMatchObject({ code: 'NOT_A_VIRTUAL_DISK' });
    await expect(client.createVirtualDisk('snaps', SIZE, disk)).rejects.toMatchObject({ code: 'NOT_A_SNAPSHOT' });
    await expect(client.createSnapshot('snaps', '00000000-0000-4000-8000-000000000000')).rejects.toMatchObject({ code: 'IMAGE_NOT_FOUND' });
  });

  it('with autoFix off, the snapshot is usable at once and the disk waits, broken, for its overlay', async () => {
    const model = Model.blank(SIZE);
    const disk = await diskWith(model, { pattern: 0x19, offset: 0, length: MiB });
    const snapshot = await client.createSnapshot('snaps', disk, {}, { autoFix: false });
    expect((await client.getImageStatus('snaps', snapshot)).status).toBe('optimized');
    expect((await client.getImageStatus('snaps', disk)).status).toBe('broken');
    await expect(client.prepareImage('snaps', disk)).rejects.toMatchObject({ code: 'STORAGE_ERROR' });
    // A second snapshot of a disk with work pending is refused, not interleaved.
    await expect(client.createSnapshot('snaps', disk)).rejects.toMatchObject({ code: 'IMAGE_BUSY' });
    expect(await sameContent(client, 'snaps', snapshot, model)).toBe(true);
  });

  it('leaves every qcow2 volume it made clean by qemu-img check', async () => {
    // Made here, so that the check has a snapshot's volumes to check even when this test runs alone.
    const disk = await diskWith(Model.blank(SIZE), { pattern: 0x5a, offset: 0, length: 4 * MiB });
    await client.createSnapshot('snaps', disk);
    await usable('snaps', disk);
    await writeImage(client, 'snaps', disk, { pattern: 0x5b, offset: 2 * MiB, length: MiB });
    const made = await qcow2ChainFiles(client, 'snaps', disk);
    expect(made.length).toBeGreaterThanOrEqual(2);
    expect(volumeFiles(snapsPath)).toEqual(expect.arrayContaining(made));
    expect(uncleanVolumes(snapsPath)).toEqual([]);
  });
});
