import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StorageClient } from '../../client/storage-client';
import { chainOf, Model, qcow2ChainFiles, sameContent, writeImage } from '../harness/content';
import { clientFor, startHost, stopAllHosts } from '../harness/hosts';
import { imageRecord, uncleanVolumes, volumeFiles } from '../harness/records';
import { localRepository, removeTempDirs } from '../harness/repositories';
import { eventually } from '../harness/wait';

const MiB = 2 ** 20;
const SIZE = 64 * MiB;
let client: StorageClient;
let pathA: string;
let pathB: string;

beforeAll(async () => {
  // Small ranges, so even test-sized copies are resumed range by range.
  await startHost('copy-host', { DISKFLOW_COPY_CHUNK: '4M' });
  client = await clientFor('copy-host');
  pathA = await localRepository(client, 'a');
  pathB = await localRepository(client, 'b');
});

afterAll(async () => {
  await client?.close();
  await stopAllHosts();
  removeTempDirs();
});

const usable = (repo: string, id: string) => eventually(() => client.getImageStatus(repo, id), (s) => s.status === 'optimized');

async function diskWith(repo: string, model: Model, ...writes: Parameters<Model['write']>): Promise<string> {
  const id = await client.createVirtualDisk(repo, SIZE);
  await usable(repo, id);
  await writeImage(client, repo, id, ...writes);
  model.write(...writes);
  return id;
}

describe('copies', () => {
  it('a virtual disk copied to another repository gets a new id and, once its data is in, holds the same content as its source', async () => {
    const model = Model.blank(SIZE);
    const disk = await diskWith('a', model, { pattern: 0x11, offset: 0, length: 10 * MiB }, { pattern: 0x12, offset: 40 * MiB, length: 6 * MiB });
    const copy = await client.copyImage('b', disk, null, { backup: 1 });
    expect(copy).not.toBe(disk);
    const status = await usable('b', copy);
    expect(status).toMatchObject({ kind: 'virtual-disk', size: SIZE, userData: { backup: 1 }, stage: { current: 2, total: 2 }, percentComplete: 100 });
    expect(await sameContent(client, 'b', copy, model)).toBe(true);
    // Copied range by range (4 MiB ranges here), sparse: holes were not written.
    expect(imageRecord(pathB, copy).pending).toBeNull();
    const [top] = await chainOf(client, 'b', copy);
    expect(top['backing-filename']).toBeUndefined();
  });

  it('a chain is copied as its content, not as its structure', async () => {
    const model = Model.blank(SIZE);
    const disk = await diskWith('a', model, { pattern: 0x21, offset: 0, length: 4 * MiB });
    await client.createSnapshot('a', disk);
    await usable('a', disk);
    await writeImage(client, 'a', disk, { pattern: 0x22, offset: 2 * MiB, length: 4 * MiB });
    model.write({ pattern: 0x22, offset: 2 * MiB, length: 4 * MiB });
    expect((await chainOf(client, 'a', disk)).length).toBe(2);
    const copy = await client.copyImage('b', disk);
    await usable('b', copy);
    expect((await chainOf(client, 'b', copy)).length).toBe(1);
    expect(await sameContent(client, 'b', copy, model)).toBe(true);
  });

  it('a snapshot keeps its id, and copying it where it already is moves nothing', async () => {
    const model = Model.blank(SIZE);
    const disk = await diskWith('a', model, { pattern: 0x31, offset: MiB, length: MiB });
    const snapshot = await client.createSnapshot('a', disk, { tag: 'golden' });
    expect(await client.copyImage('b', snapshot)).toBe(snapshot);
    const status = await usable('b', snapshot);
    expect(status).toMatchObject({ kind: 'snapshot', userData: { tag: 'golden' } });
    const volumes = volumeFiles(pathB).length;
    expect(await client.copyImage('b', snapshot)).toBe(snapshot);
    expect(await client.copyImage('a', snapshot)).toBe(snapshot);
    expect(volumeFiles(pathB).length).toBe(volumes);
    expect(await sameContent(client, 'b', snapshot, model)).toBe(true);
  });

  it('options.kind makes a writable disk from a snapshot copy, with a new id', async () => {
    const model = Model.blank(SIZE);
    const disk = await diskWith('a', model, { pattern: 0x41, offset: 0, length: MiB });
    const snapshot = await client.createSnapshot('a', disk);
    const writable = await client.copyImage('b', snapshot, null, {}, { kind: 'virtual-disk' });
    expect(writable).not.toBe(snapshot);
    expect((await usable('b', writable)).kind).toBe('virtual-disk');
    await writeImage(client, 'b', writable, { pattern: 0x42, offset: 0, length: MiB });
    expect(await sameContent(client, 'b', writable, model.fork().write({ pattern: 0x42, offset: 0, length: MiB }))).toBe(true);
    expect(await sameContent(client, 'a', snapshot, model)).toBe(true);
  });

  it('a base snapshot found only in another repository is first copied into the target, with its id', async () => {
    const model = Model.blank(SIZE);
    const disk = await diskWith('a', model, { pattern: 0x51, offset: 8 * MiB, length: 8 * MiB });
    const snapshot = await client.createSnapshot('a', disk);
    const child = await client.createVirtualDisk('b', SIZE, snapshot);
    await usable('b', child);
    expect((await client.getImageStatus('b', snapshot)).kind).toBe('snapshot');
    expect(await sameContent(client, 'b', child, model)).toBe(true);
    expect((await chainOf(client, 'b', child)).length).toBe(2);
  });

  it('imageHints force where a source is looked for; participatingRepositories narrow it', async () => {
    const disk = await diskWith('a', Model.blank(SIZE), { pattern: 1, offset: 0, length: MiB });
    await expect(client.copyImage('b', disk, null, {}, { imageHints: { [disk]: 'b' } })).rejects.toMatchObject({ code: 'IMAGE_NOT_FOUND', message: expect.stringContaining('imageHints') });
    await expect(client.copyImage('b', disk, null, {}, { participatingRepositories: ['b'] })).rejects.toMatchObject({ code: 'IMAGE_NOT_FOUND' });
    const copy = await client.copyImage('b', disk, null, {}, { imageHints: { [disk]: 'a' } });
    await usable('b', copy);
  });

  it('a disk prepared for a VM is not copied (its content is changing): IMAGE_IN_USE', async () => {
    const disk = await diskWith('a', Model.blank(SIZE), { pattern: 1, offset: 0, length: MiB });
    await client.prepareImage('a', disk);
    try {
      await expect(client.copyImage('b', disk)).rejects.toMatchObject({ code: 'IMAGE_IN_USE' });
    } finally {
      await client.teardownImage('a', disk);
    }
  });

  it('a disk made from a snapshot, written, snapshotted again and copied holds at every step what the writes say', async () => {
    const original = Model.blank(SIZE);
    const disk = await diskWith('a', original, { pattern: 0x61, offset: 0, length: 16 * MiB });
    const first = await client.createSnapshot('a', disk);
    const fromFirst = await client.createVirtualDisk('a', SIZE, first);
    await usable('a', fromFirst);
    const child = original.fork().write({ pattern: 0x62, offset: 4 * MiB, length: 4 * MiB });
    await writeImage(client, 'a', fromFirst, { pattern: 0x62, offset: 4 * MiB, length: 4 * MiB });
    expect(await sameContent(client, 'a', fromFirst, child)).toBe(true);

    const second = await client.createSnapshot('a', fromFirst);
    await usable('a', fromFirst);
    expect(await sameContent(client, 'a', second, child)).toBe(true);

    const copy = await client.copyImage('b', fromFirst);
    await usable('b', copy);
    expect(await sameContent(client, 'b', copy, child)).toBe(true);

    // More writes to the originals change neither the snapshots nor the copy.
    await writeImage(client, 'a', disk, { pattern: 0x63, offset: 0, length: MiB });
    await writeImage(client, 'a', fromFirst, { pattern: 0x64, offset: 0, length: MiB });
    expect(await sameContent(client, 'a', first, original)).toBe(true);
    expect(await sameContent(client, 'a', second, child)).toBe(true);
    expect(await sameContent(client, 'b', copy, child)).toBe(true);
    expect(await sameContent(client, 'a', fromFirst, child.fork().write({ pattern: 0x64, offset: 0, length: MiB }))).toBe(true);
  });

  it('leaves every qcow2 volume it made clean by qemu-img check', async () => {
    // Made here, so that the check has a source and its copy to check even when this test runs alone.
    const source = await diskWith('a', Model.blank(SIZE), { pattern: 0x5a, offset: 0, length: 8 * MiB });
    const copy = await client.copyImage('b', source);
    await usable('b', copy);
    const [inA, inB] = [await qcow2ChainFiles(client, 'a', source), await qcow2ChainFiles(client, 'b', copy)];
    expect(inA.length).toBeGreaterThan(0);
    expect(inB.length).toBeGreaterThan(0);
    expect(volumeFiles(pathA)).toEqual(expect.arrayContaining(inA));
    expect(volumeFiles(pathB)).toEqual(expect.arrayContaining(inB));
    expect(uncleanVolumes(pathA)).toEqual([]);
    expect(uncleanVolumes(pathB)).toEqual([]);
  });
});
