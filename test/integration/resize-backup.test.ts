/**
 * Getting bigger and getting out: resizeVirtualDisk grows a disk (files and clvm LVs, offline,
 * or live under its VM where the daemon serving it can tell the VM), and serveBackup exposes a
 * snapshot or a stopped disk read-only over NBD, with the dirty bitmap since an earlier copy,
 * so a backup tool (nbdinfo, nbdcopy) pulls only what changed.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StorageClient } from '../../client/storage-client';
import { Model, sameContent, writeImage } from '../harness/content';
import { clientFor, startHost, stopAllHosts } from '../harness/hosts';
import { createLun, Lun, removeLun } from '../harness/lun';
import { imageRecord } from '../harness/records';
import { localRepository, removeTempDirs } from '../harness/repositories';
import { eventually } from '../harness/wait';

const MiB = 2 ** 20;
const SIZE = 16 * MiB;
const VG = `dfresize${process.pid}`;
let client: StorageClient;
let path: string;
let lun: Lun | undefined;

beforeAll(async () => {
  await startHost('resize-host', {
    DISKFLOW_CLVM_EXTENT_MB: '1',
    DISKFLOW_CLVM_METADATA_MB: '8',
    DISKFLOW_CLVM_CHUNK_MB: '2',
    DISKFLOW_FIX_KEY: 'resize-test-cluster-key-of-32-bytes!!',
  });
  client = await clientFor('resize-host');
  path = await localRepository(client, 'local');
  lun = createLun(256 * MiB);
  await client.initStorageRepository('clvm-1.0', { devices: [lun.device], vgName: VG });
  await client.connectStorageRepository('lvm', 'clvm-1.0', { devices: [lun.device], vgName: VG });
  await client.startRepositoryManager('lvm');
}, 120_000);

afterAll(async () => {
  await client?.close();
  await stopAllHosts();
  await removeLun(lun, VG);
  removeTempDirs();
}, 60_000);

const usable = (repo: string, id: string) => eventually(() => client.getImageStatus(repo, id), (s) => s.status !== 'broken', 60_000);

/** Resizes and waits for the fix that grows the volume. */
async function resize(repo: string, disk: string, newSize: number): Promise<void> {
  const requestId = randomUUID();
  await client.resizeVirtualDisk(repo, disk, newSize, { requestId });
  await client.waitForOperation(`resizeVirtualDisk:${requestId}`);
}

/** The virtual size qemu sees on the disk's prepared path. */
async function virtualSize(repo: string, disk: string): Promise<number> {
  const prepared = await client.prepareImage(repo, disk);
  try {
    return JSON.parse(execFileSync('qemu-img', ['info', '--output=json', '-U', '-f', prepared.format, prepared.path], { encoding: 'utf8' }))['virtual-size'];
  } finally {
    await client.teardownImage(repo, disk);
  }
}

describe('resizeVirtualDisk', () => {
  for (const repo of ['local', 'lvm']) {
    for (const strategy of ['space', 'performance'] as const) {
      it(`grows a ${strategy} disk on ${repo === 'local' ? 'localfs' : 'clvm'}, keeping its data, and the grown part is writable`, async () => {
        const disk = await client.createVirtualDisk(repo, SIZE, null, {}, { strategy });
        await usable(repo, disk);
        const write = { pattern: 0x5a, offset: SIZE - MiB, length: MiB };
        await writeImage(client, repo, disk, write);
        const model = Model.blank(SIZE).write(write).fork(3 * SIZE);
        await resize(repo, disk, 3 * SIZE);
        expect((await client.getImageStatus(repo, disk)).size).toBe(3 * SIZE);
        expect(await virtualSize(repo, disk)).toBe(3 * SIZE);
        const beyond = { pattern: 0x6b, offset: 3 * SIZE - MiB, length: MiB };
        await writeImage(client, repo, disk, beyond);
        model.write(beyond);
        expect(await sameContent(client, repo, disk, model)).toBe(true);
        // The same size again is nothing to do.
        await resize(repo, disk, 3 * SIZE);
        expect(await virtualSize(repo, disk)).toBe(3 * SIZE);
      });
    }
  }

  it('a smaller size is INVALID_ARGUMENT, a snapshot is not resized, and nothing changes', async () => {
    const disk = await client.createVirtualDisk('local', SIZE);
    await usable('local', disk);
    await expect(client.resizeVirtualDisk('local', disk, SIZE / 2)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('disks only grow') });
    await expect(client.resizeVirtualDisk('local', disk, SIZE + 100)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('multiple of 512') });
    const snapshot = await client.createSnapshot('local', disk);
    await usable('local', disk);
    await expect(client.resizeVirtualDisk('local', snapshot, 2 * SIZE)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('snapshot') });
    expect(imageRecord(path, disk)).toMatchObject({ size: SIZE, resizing: null });
    expect(await virtualSize('local', disk)).toBe(SIZE);
  });

  it('a prepared disk is IMAGE_IN_USE, and so is one served over NBD (its client would not see the size change)', async () => {
    const disk = await client.createVirtualDisk('local', SIZE);
    await usable('local', disk);
    await client.prepareImage('local', disk);
    await expect(client.resizeVirtualDisk('local', disk, 2 * SIZE)).rejects.toMatchObject({ code: 'IMAGE_IN_USE', message: expect.stringContaining('prepared for a VM') });
    await client.teardownImage('local', disk);
    await client.prepareImage('local', disk, { serve: 'nbd' });
    await expect(client.resizeVirtualDisk('local', disk, 2 * SIZE)).rejects.toMatchObject({ code: 'IMAGE_IN_USE', message: expect.stringContaining('NBD client learns the disk\'s size once') });
    await client.teardownImage('local', disk);
    expect(imageRecord(path, disk)).toMatchObject({ size: SIZE, resizing: null });
  });

  it('a disk served as a FUSE file grows live: its reader sees the new size and writes past the old end', async () => {
    const disk = await client.createVirtualDisk('local', SIZE);
    await usable('local', disk);
    const served = await client.prepareImage('local', disk, { serve: 'fuse' });
    expect(statSync(served.path).size).toBe(SIZE);
    await resize('local', disk, 4 * SIZE);
    expect(imageRecord(path, disk)).toMatchObject({ size: 4 * SIZE, resizing: null, operation: null });
    // FUSE attributes are cached for a second.
    await eventually(async () => statSync(served.path).size, (size) => size === 4 * SIZE, 10_000);
    const beyond = { pattern: 0x7c, offset: 4 * SIZE - MiB, length: MiB };
    execFileSync('qemu-io', ['-f', 'raw', '-c', `write -P 0x7c ${beyond.offset} ${beyond.length}`, served.path], { stdio: 'ignore' });
    await client.teardownImage('local', disk);
    expect(await virtualSize('local', disk)).toBe(4 * SIZE);
    expect(await sameContent(client, 'local', disk, Model.blank(4 * SIZE).write(beyond))).toBe(true);
  });
});
