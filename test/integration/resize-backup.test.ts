/**
 * Getting bigger and getting out: resizeVirtualDisk grows a disk (files and clvm LVs, offline,
 * or live under its VM where the daemon serving it can tell the VM), and serveBackup exposes a
 * snapshot or a stopped disk read-only over NBD, with the dirty bitmap since an earlier copy,
 * so a backup tool (nbdinfo, nbdcopy) pulls only what changed.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StorageClient } from '../../client/storage-client';
import { Model, sameContent, writeImage } from '../harness/content';
import { clientFor, startHost, stopAllHosts, TestHost } from '../harness/hosts';
import { createLun, Lun, removeLun } from '../harness/lun';
import { diskflow, diskflowJson } from '../harness/cli';
import { imageRecord } from '../harness/records';
import { localRepository, removeTempDirs, tempDir } from '../harness/repositories';
import { eventually } from '../harness/wait';

const MiB = 2 ** 20;
const SIZE = 16 * MiB;
const VG = `dfresize${process.pid}`;
let client: StorageClient;
let host: TestHost;
let path: string;
let lun: Lun | undefined;

beforeAll(async () => {
  host = await startHost('resize-host', {
    DISKFLOW_CLVM_EXTENT_MB: '1',
    DISKFLOW_CLVM_METADATA_MB: '8',
    DISKFLOW_CLVM_CHUNK_MB: '2',
    DISKFLOW_FIX_KEY: 'resize-test-cluster-key-of-32-bytes!!',
  });
  client = await clientFor('resize-host');
  path = await localRepository(client, 'local');
  await localRepository(client, 'backups');
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

/** The extents `nbdinfo --map` lists for the context (`base:allocation`, `qemu:dirty-bitmap:NAME`) with the flag set. */
function mapped(address: string, context: string, flag: number): { offset: number; length: number }[] {
  const extents = JSON.parse(execFileSync('nbdinfo', [`--map=${context}`, '--json', address], { encoding: 'utf8' })) as { offset: number; length: number; type: number }[];
  return extents.filter((e) => (e.type & flag) !== 0).map(({ offset, length }) => ({ offset, length }));
}

const DIRTY = 1;
const exportDir = (imageId: string) => join(host.home, 'backups', imageId);

describe('a resize interrupted by a worker killed after the volume grew converges', () => {
  /** Kills the worker at the failpoint once `start` runs; starts it again without failpoints. */
  async function killedAt(point: string, start: () => Promise<unknown>): Promise<void> {
    await host.restart({ DISKFLOW_FAILPOINTS: point });
    try {
      await start();
      await Promise.race([host.exited(), new Promise((_, reject) => setTimeout(() => reject(new Error(`failpoint ${point} was not reached`)), 60_000))]);
    } finally {
      await host.restart({ DISKFLOW_FAILPOINTS: '' });
    }
  }

  it('offline: the retried step finds the volume grown and completes the record', async () => {
    const disk = await client.createVirtualDisk('local', SIZE);
    await usable('local', disk);
    await killedAt('resize.grown', () => client.resizeVirtualDisk('local', disk, 2 * SIZE, { requestId: `crash-${disk}` }));
    expect(imageRecord(path, disk)).toMatchObject({ size: 2 * SIZE, resizing: { from: SIZE } });
    await client.waitForOperation(`resizeVirtualDisk:crash-${disk}`);
    expect(imageRecord(path, disk)).toMatchObject({ size: 2 * SIZE, resizing: null, operation: null });
    expect(await virtualSize('local', disk)).toBe(2 * SIZE);
  }, 120_000);

  it('live, its operation gone: check offers the mend that grows it, run on the host serving it', async () => {
    const disk = await client.createVirtualDisk('local', SIZE);
    await usable('local', disk);
    const served = await client.prepareImage('local', disk, { serve: 'fuse' });
    await killedAt('resize.grown', () => client.resizeVirtualDisk('local', disk, 2 * SIZE, { requestId: `crash-${disk}` }));
    await client.temporal.workflow.getHandle(`resizeVirtualDisk:crash-${disk}`).terminate('lost with its worker');
    const fix = (await client.checkStorageRepository('local')).find((f) => f.type === 'mend' && f.imageIds.includes(disk));
    expect(fix?.description).toContain(`grow virtual disk ${disk} from ${SIZE} to ${2 * SIZE} bytes`);
    await client.waitForOperation((await client.fixStorageRepository('local', fix!)).operationId);
    expect(imageRecord(path, disk)).toMatchObject({ size: 2 * SIZE, resizing: null, operation: null });
    await eventually(async () => statSync(served.path).size, (size) => size === 2 * SIZE, 10_000);
    await client.teardownImage('local', disk);
  }, 120_000);
});

describe('the CLI', () => {
  it('`diskflow disk resize` grows a disk and refuses to shrink it; `diskflow image serve-backup` prints the export, `--stop` ends it', async () => {
    const env = { DISKFLOW_HOST_ID: 'resize-host' };
    const disk = await client.createVirtualDisk('local', SIZE);
    await usable('local', disk);
    const grown = await diskflow(['disk', 'resize', 'local', disk, '32M'], env);
    expect(grown).toMatchObject({ code: 0, stdout: `resized ${disk} to 32M\n` });
    await eventually(async () => imageRecord(path, disk), (r) => r.resizing === null, 20_000);
    expect(await virtualSize('local', disk)).toBe(32 * MiB);
    const shrunk = await diskflow(['disk', 'resize', 'local', disk, '1M'], env);
    expect(shrunk.code).not.toBe(0);
    expect(shrunk.stderr).toContain('INVALID_ARGUMENT');

    const exported = await diskflowJson<{ address: string; operationId: string }>(['image', 'serve-backup', 'local', disk], env);
    expect(Number(execFileSync('nbdinfo', ['--size', exported.address], { encoding: 'utf8' }))).toBe(32 * MiB);
    expect(await diskflow(['image', 'serve-backup', 'local', disk, '--stop'], env)).toMatchObject({ code: 0, stdout: `stopped ${exported.operationId}\n` });
    expect(await diskflow(['image', 'serve-backup', 'local', disk, '--stop'], env)).toMatchObject({ code: 0, stdout: `no backup export of ${disk} runs\n` });
  });
});

describe('serveBackup', () => {
  /** A disk with data, copied once (the copy's bitmap counts what changes after), then written again. */
  async function diskWithChanges(): Promise<{ disk: string; copy: string; model: Model; changed: { offset: number; length: number }[] }> {
    const disk = await client.createVirtualDisk('local', SIZE);
    await usable('local', disk);
    const before = [
      { pattern: 0x11, offset: 0, length: MiB },
      { pattern: 0x12, offset: 8 * MiB, length: MiB },
    ];
    await writeImage(client, 'local', disk, ...before);
    const copy = await client.copyImage('backups', disk, null, {}, { kind: 'snapshot' });
    await usable('backups', copy);
    const after = [
      { pattern: 0x21, offset: 4 * MiB, length: 512 * 1024 },
      { pattern: 0x22, offset: 12 * MiB, length: MiB },
    ];
    await writeImage(client, 'local', disk, ...after);
    return { disk, copy, model: Model.blank(SIZE).write(...before, ...after), changed: after.map(({ offset, length }) => ({ offset, length })) };
  }

  it('a stopped disk served since an earlier copy: nbdinfo --map lists only the extents written since, nbdcopy pulls the whole disk; prepare and removal are refused until the export is stopped', async () => {
    const { disk, copy, model, changed } = await diskWithChanges();
    const exported = await client.serveBackup('local', disk, copy);
    expect(exported).toMatchObject({ exportName: disk, hostId: 'resize-host', bitmap: expect.stringContaining(copy) });
    expect(exported.address).toBe(`nbd+unix:///${disk}?socket=${join(exportDir(disk), 'nbd.sock')}`);
    expect(mapped(exported.address, `qemu:dirty-bitmap:${exported.bitmap}`, DIRTY)).toEqual(changed);
    // The whole content is there too, read-only.
    const pulled = join(tempDir('pulled'), 'disk.raw');
    execFileSync('nbdcopy', [exported.address, pulled]);
    execFileSync('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'raw', pulled, model.path]);
    expect(() => execFileSync('qemu-io', ['-f', 'raw', '-c', 'write 0 4096', exported.address], { stdio: 'pipe' })).toThrow();
    expect(imageRecord(path, disk).backupExport).toMatchObject({ operationId: exported.operationId, hostId: 'resize-host' });

    await expect(client.prepareImage('local', disk)).rejects.toMatchObject({ code: 'IMAGE_BUSY', message: expect.stringContaining('exported for a backup') });
    await expect(client.removeImage('local', disk)).rejects.toMatchObject({ code: 'IMAGE_IN_USE', message: expect.stringContaining('exported for a backup') });
    // One export of an image at a time.
    await expect(client.serveBackup('local', disk)).rejects.toMatchObject({ code: 'IMAGE_BUSY' });

    expect(await client.stopBackupExport('local', disk)).toEqual([exported.operationId]);
    expect((await client.temporal.workflow.getHandle(exported.operationId).describe()).status.name).toBe('COMPLETED');
    expect(existsSync(exportDir(disk))).toBe(false);
    expect(imageRecord(path, disk)).toMatchObject({ backupExport: null, readers: {} });
    expect(() => execFileSync('nbdinfo', ['--size', exported.address], { stdio: 'pipe' })).toThrow();
    await client.prepareImage('local', disk);
    await client.teardownImage('local', disk);
  });

  it('a snapshot taken after the writes, served since the copy, lists the same changed extents; unused, the export ends by itself after its idle timeout', async () => {
    const { disk, copy, changed } = await diskWithChanges();
    const snapshot = await client.createSnapshot('local', disk);
    await usable('local', disk);
    const exported = await client.serveBackup('local', snapshot, copy, { idleTimeoutSeconds: 3 });
    expect(mapped(exported.address, `qemu:dirty-bitmap:${exported.bitmap}`, DIRTY)).toEqual(changed);
    // In use, the export stays: a client every second for longer than the timeout.
    for (let i = 0; i < 5; i++) {
      execFileSync('nbdinfo', ['--size', exported.address]);
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect((await client.temporal.workflow.getHandle(exported.operationId).describe()).status.name).toBe('RUNNING');
    await client.waitForOperation(exported.operationId);
    expect(existsSync(exportDir(snapshot))).toBe(false);
    expect(imageRecord(path, snapshot)).toMatchObject({ backupExport: null, readers: {} });
  });

  it('a disk on clvm is exported too (its records written by the SRM), and nbdcopy pulls what it holds', async () => {
    // The worker was restarted by the tests above: it takes the SRM role again.
    await client.startRepositoryManager('lvm');
    const disk = await client.createVirtualDisk('lvm', SIZE);
    await usable('lvm', disk);
    const write = { pattern: 0x33, offset: 2 * MiB, length: 3 * MiB };
    await writeImage(client, 'lvm', disk, write);
    const exported = await client.serveBackup('lvm', disk);
    const pulled = join(tempDir('pulled'), 'lvm.raw');
    execFileSync('nbdcopy', [exported.address, pulled]);
    execFileSync('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'raw', pulled, Model.blank(SIZE).write(write).path]);
    await expect(client.removeImage('lvm', disk)).rejects.toMatchObject({ code: 'IMAGE_IN_USE' });
    expect(await client.stopBackupExport('lvm', disk)).toEqual([exported.operationId]);
    await client.removeImage('lvm', disk);
  });

  it('refused: a disk prepared for a VM (IMAGE_IN_USE), a copy whose changes are not known (INVALID_ARGUMENT); a full export has no bitmap, and a cancel ends it', async () => {
    const { disk } = await diskWithChanges();
    await client.prepareImage('local', disk);
    await expect(client.serveBackup('local', disk)).rejects.toMatchObject({ code: 'IMAGE_IN_USE', message: expect.stringContaining('export a snapshot') });
    await client.teardownImage('local', disk);
    const other = await client.createVirtualDisk('local', SIZE);
    await usable('local', other);
    const unrelated = await client.copyImage('backups', other, null, {}, { kind: 'snapshot' });
    await usable('backups', unrelated);
    await expect(client.serveBackup('local', disk, unrelated)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining(`no bitmap of copy ${unrelated}`) });
    expect(imageRecord(path, disk)).toMatchObject({ backupExport: null, readers: {} });

    const full = await client.serveBackup('local', disk);
    expect(full.bitmap).toBeNull();
    expect(Number(execFileSync('nbdinfo', ['--size', full.address], { encoding: 'utf8' }))).toBe(SIZE);
    await client.temporal.workflow.getHandle(full.operationId).cancel();
    await expect(client.waitForOperation(full.operationId)).rejects.toBeDefined();
    await eventually(async () => imageRecord(path, disk).backupExport, (e) => e === null, 10_000);
    expect(existsSync(exportDir(disk))).toBe(false);
  });
});
