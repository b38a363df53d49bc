/**
 * Served disks and live operations: a prepared disk served by diskflow's own qemu-storage-daemon
 * (NBD, vhost-user-blk, FUSE), with a VM stand-in (qemu-io) writing a logged sequence of
 * patterns through the NBD export while snapshots, copies, merges and optimizes run live.
 * Afterwards every acknowledged write is on the disk, and every snapshot and copy holds the
 * disk's content at one instant of that sequence.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Fix } from '../../api/image-status';
import type { StorageClient } from '../../client/storage-client';
import { instantOf, Model, sameContent, Write, writeImage } from '../harness/content';
import { clientFor, startHost, stopAllHosts, TestHost } from '../harness/hosts';
import { imageRecord } from '../harness/records';
import { localRepository, removeTempDirs } from '../harness/repositories';
import { sequenceOf, stopAllVms, Vm, WriteSequence } from '../harness/vm';
import { eventually } from '../harness/wait';

const MiB = 2 ** 20;
const SIZE = 64 * MiB;
let host: TestHost;
let client: StorageClient;
let path: string;

beforeAll(async () => {
  // Live jobs at a limited rate, so that they last while the VM writes.
  host = await startHost('live-host', { DISKFLOW_COPY_RATE_LIMIT: '16M', DISKFLOW_SERVED_WATCH_MS: '500', DISKFLOW_FIX_KEY: 'served-test-cluster-key-of-32-bytes!' });
  client = await clientFor('live-host');
  path = await localRepository(client, 'live');
  backups = await localRepository(client, 'backups');
});

afterEach(async () => {
  await stopAllVms();
});

afterAll(async () => {
  await client?.close();
  await stopAllHosts();
  removeTempDirs();
});

const usable = (id: string, repo = 'live') => eventually(() => client.getImageStatus(repo, id), (s) => s.status !== 'broken', 60_000);
const servedDir = (imageId: string) => join(host.home, 'served', imageId);
const daemonPid = (imageId: string) => Number(readFileSync(join(servedDir(imageId), 'qsd.pid'), 'utf8'));
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** A disk with data, served as `mode`; its VM (qemu-io through NBD) is returned for NBD. */
async function servedDisk(model: Model, mode: 'nbd' | 'vhost-user-blk' | 'fuse' = 'nbd', ...writes: Write[]): Promise<{ disk: string; address: string }> {
  const disk = await client.createVirtualDisk('live', SIZE);
  await usable(disk);
  if (writes.length) {
    await writeImage(client, 'live', disk, ...writes);
    model.write(...writes);
  }
  const prepared = await client.prepareImage('live', disk, { serve: mode });
  expect(prepared).toMatchObject({ served: mode, format: 'raw', readOnly: false });
  return { disk, address: prepared.path };
}

describe('served disks', () => {
  it('prepared with serve, the disk is an NBD export, a vhost-user-blk socket or a FUSE file; the VM writes through it; teardown stops the daemon', async () => {
    const model = Model.blank(SIZE);
    const { disk, address } = await servedDisk(model, 'nbd', { pattern: 0x11, offset: 0, length: MiB });
    expect(address).toMatch(new RegExp(`^nbd\\+unix:///${disk}\\?socket=`));
    const vm = Vm.start(address, 'raw');
    for (const w of sequenceOf(8, 0x20, 64 * 1024, MiB, 2 * MiB)) {
      await vm.write(w);
      model.write(w);
    }
    await vm.stop();
    // Asked again on the same host: the same answer, the same daemon.
    const pid = daemonPid(disk);
    expect((await client.prepareImage('live', disk, { serve: 'nbd' })).path).toBe(address);
    expect(daemonPid(disk)).toBe(pid);
    // One opener of a served chain.
    await expect(client.prepareImage('live', disk)).rejects.toMatchObject({ code: 'IMAGE_IN_USE', message: expect.stringContaining(address) });
    await client.teardownImage('live', disk);
    expect(alive(pid)).toBe(false);
    expect(existsSync(servedDir(disk))).toBe(false);
    expect(imageRecord(path, disk).served).toBeNull();
    expect(await sameContent(client, 'live', disk, model)).toBe(true);

    const fuse = await client.prepareImage('live', disk, { serve: 'fuse' });
    expect(existsSync(fuse.path)).toBe(true);
    execFileSync('qemu-io', ['-f', 'raw', '-c', `write -P 0x31 ${10 * MiB} ${MiB}`, fuse.path], { stdio: 'ignore' });
    model.write({ pattern: 0x31, offset: 10 * MiB, length: MiB });
    await client.teardownImage('live', disk);
    expect(await sameContent(client, 'live', disk, model)).toBe(true);

    const vhost = await client.prepareImage('live', disk, { serve: 'vhost-user-blk' });
    expect(readdirSync(servedDir(disk))).toContain('vhost.sock');
    expect(vhost.path).toBe(join(servedDir(disk), 'vhost.sock'));
    await client.teardownImage('live', disk);
  });

  it('the daemon outlives its worker: the worker SIGKILLed and restarted, the VM goes on writing, and teardown stops it', async () => {
    const model = Model.blank(SIZE);
    const { disk, address } = await servedDisk(model);
    const pid = daemonPid(disk);
    const vm = Vm.start(address, 'raw');
    const writes = sequenceOf(6, 0x40, 64 * 1024, MiB);
    const sequence = new WriteSequence(vm, writes, 300).start();
    await host.stop('SIGKILL');
    await host.restart();
    const written = await sequence.finished();
    await vm.stop();
    expect(written).toEqual(writes);
    expect(daemonPid(disk)).toBe(pid);
    await client.teardownImage('live', disk);
    expect(alive(pid)).toBe(false);
    model.write(...writes);
    expect(await sameContent(client, 'live', disk, model)).toBe(true);
  });

  it('a daemon that dies is reported (its VM lost its disk): check offers the mend that serves it again', async () => {
    const model = Model.blank(SIZE);
    const { disk, address } = await servedDisk(model, 'nbd', { pattern: 0x51, offset: 0, length: MiB });
    process.kill(daemonPid(disk), 'SIGKILL');
    const lost = await eventually(() => client.getImageStatus('live', disk), (s) => s.lastError !== null, 20_000);
    expect(lost.lastError).toMatch(/daemon serving it on live-host is gone/);
    await expect(client.createSnapshot('live', disk)).rejects.toMatchObject({ code: 'STORAGE_ERROR', message: expect.stringContaining('is gone') });
    const mend = (await client.checkStorageRepository('live')).find((f) => f.type === 'mend' && f.imageIds.includes(disk));
    expect(mend?.description).toMatch(/serve image .* again on live-host/);
    await client.waitForOperation((await client.fixStorageRepository('live', mend!)).operationId);
    expect(await client.getImageStatus('live', disk)).toMatchObject({ lastError: null });
    const vm = Vm.start(address, 'raw');
    await vm.write({ pattern: 0x52, offset: MiB, length: MiB });
    await vm.stop();
    model.write({ pattern: 0x52, offset: MiB, length: MiB });
    await client.teardownImage('live', disk);
    expect(await sameContent(client, 'live', disk, model)).toBe(true);
  });
});

describe('live operations while the VM writes', () => {
  it('a live snapshot: the snapshot holds the disk at one instant of the VM\'s writes, the disk holds every write, and the chain is sound', async () => {
    const base = Model.blank(SIZE);
    const { disk, address } = await servedDisk(base, 'nbd', { pattern: 0x61, offset: 0, length: 4 * MiB });
    const vm = Vm.start(address, 'raw');
    const writes = sequenceOf(30, 0x70, 64 * 1024, MiB, 8 * MiB);
    const sequence = new WriteSequence(vm, writes, 30).start();
    await new Promise((r) => setTimeout(r, 200));
    const snapshot = await client.createSnapshot('live', disk);
    await usable(snapshot);
    const written = await sequence.finished();
    await vm.stop();
    expect(written).toEqual(writes);
    // The snapshot is one instant of the sequence; the disk has it all.
    const snap = await client.prepareImage('live', snapshot);
    const k = instantOf(snap.path, snap.format, writes);
    await client.teardownImage('live', snapshot);
    expect(await sameContent(client, 'live', snapshot, base.fork().write(...writes.slice(0, k)))).toBe(true);
    await client.teardownImage('live', disk);
    expect(await sameContent(client, 'live', disk, base.fork().write(...writes))).toBe(true);
    const record = imageRecord(path, disk);
    expect(record.served).toBeNull();
    expect(record.operation).toBeNull();
    expect(execFileSync('qemu-img', ['check', '-q', join(path, 'volumes', `${record.volumeId}.qcow2`)]).length).toBe(0);
  });

  it('the RFC\'s incremental flow without stopping the VM: two backups while it writes, each restoring to its instant, the second holding only the changed clusters', async () => {
    const base = Model.blank(SIZE);
    const { disk, address } = await servedDisk(base, 'nbd', { pattern: 0x81, offset: 0, length: 16 * MiB });
    const vm = Vm.start(address, 'raw');
    const first = sequenceOf(20, 0x90, 64 * 1024, 512 * 1024, 20 * MiB);
    const firstWriting = new WriteSequence(vm, first, 20).start();
    const backup1 = await client.copyImage('backups', disk, null, {}, { kind: 'snapshot' });
    await usable(backup1, 'backups');
    await firstWriting.finished();
    const second = sequenceOf(20, 0xb0, 64 * 1024, 512 * 1024, 40 * MiB);
    const secondWriting = new WriteSequence(vm, second, 20).start();
    const backup2 = await client.copyImage('backups', disk, backup1, {}, { kind: 'snapshot' });
    await usable(backup2, 'backups');
    await secondWriting.finished();
    await vm.stop();
    const all = [...first, ...second];
    const instant = async (id: string) => {
      const opened = await client.prepareImage('backups', id);
      try {
        return instantOf(opened.path, opened.format, all);
      } finally {
        await client.teardownImage('backups', id);
      }
    };
    const [k1, k2] = [await instant(backup1), await instant(backup2)];
    expect(k1).toBeLessThanOrEqual(first.length);
    expect(k2).toBeGreaterThanOrEqual(first.length);
    expect(await sameContent(client, 'backups', backup1, base.fork().write(...all.slice(0, k1)))).toBe(true);
    expect(await sameContent(client, 'backups', backup2, base.fork().write(...all.slice(0, k2)))).toBe(true);
    // The second backup is an overlay of the first holding only what changed between them.
    const record = imageRecord(backupsPath(), backup2);
    expect(record.incremental).toMatchObject({ baseImageId: backup1, method: 'bitmap' });
    const allocated = allocatedBytes(join(backupsPath(), 'volumes', `${record.volumeId}.qcow2`));
    expect(allocated).toBeGreaterThanOrEqual((k2 - k1) * 64 * 1024);
    expect(allocated).toBeLessThanOrEqual((k2 - k1 + 2) * 64 * 1024);
    // A disk made from the second backup is the disk at its instant.
    const restored = await client.createVirtualDisk('backups', SIZE, backup2);
    await usable(restored, 'backups');
    expect(await sameContent(client, 'backups', restored, base.fork().write(...all.slice(0, k2)))).toBe(true);
    await client.teardownImage('live', disk);
    expect(await sameContent(client, 'live', disk, base.fork().write(...all))).toBe(true);
  }, 120_000);

  it('live merges of the top fold the chain while the VM writes: the VM is moved onto the volume below, no write is lost, the other snapshot keeps its instant', async () => {
    const base = Model.blank(SIZE);
    const { disk, address } = await servedDisk(base, 'nbd', { pattern: 0xc1, offset: 0, length: 8 * MiB });
    const vm = Vm.start(address, 'raw');
    const writes = sequenceOf(60, 0xd0, 64 * 1024, 512 * 1024, 10 * MiB);
    const writing = new WriteSequence(vm, writes, 40).start();
    const snapshots: string[] = [];
    for (let i = 0; i < 2; i++) {
      snapshots.push(await client.createSnapshot('live', disk));
      await usable(snapshots[i]);
    }
    const chainLength = () => execFileSync('qemu-img', ['info', '--backing-chain', '-U', join(path, 'volumes', `${imageRecord(path, disk).volumeId}.qcow2`)], { encoding: 'utf8' }).split('image:').length - 1;
    expect(chainLength()).toBe(3);
    const opened = await client.prepareImage('live', snapshots[0]);
    const k = instantOf(opened.path, opened.format, writes);
    await client.teardownImage('live', snapshots[0]);
    // The newest snapshot removed: its volume is the disk's alone, and the top is folded into it.
    await client.removeImage('live', snapshots[1]);
    await runFixes('merge', disk);
    expect(chainLength()).toBe(2);
    expect(await sameContent(client, 'live', snapshots[0], base.fork().write(...writes.slice(0, k)))).toBe(true);
    // The other one too: the disk ends on one volume.
    await client.removeImage('live', snapshots[0]);
    await runFixes('merge', disk);
    expect(chainLength()).toBe(1);
    await writing.finished();
    await vm.stop();
    expect(vm.acknowledged).toEqual(writes);
    await client.teardownImage('live', disk);
    expect(await sameContent(client, 'live', disk, base.fork().write(...writes))).toBe(true);
    expect((await client.checkStorageRepository('live')).filter((f) => f.type === 'clean' || f.type === 'mend')).toEqual([]);
  }, 120_000);

  it('a live optimize flattens a served degraded disk into one raw volume while the VM writes, and moves the VM onto it', async () => {
    const base = Model.blank(SIZE);
    const source = await client.createVirtualDisk('live', SIZE);
    await usable(source);
    await writeImage(client, 'live', source, { pattern: 0xe1, offset: 0, length: 24 * MiB });
    base.write({ pattern: 0xe1, offset: 0, length: 24 * MiB });
    const snapshot = await client.createSnapshot('live', source);
    await usable(source);
    const disk = await client.createVirtualDisk('live', SIZE, snapshot, {}, { strategy: 'performance' });
    await usable(disk);
    const { path: address } = await client.prepareImage('live', disk, { serve: 'nbd' });
    const vm = Vm.start(address, 'raw');
    const writes = sequenceOf(40, 0xf0, 64 * 1024, 512 * 1024, 30 * MiB);
    const writing = new WriteSequence(vm, writes, 40).start();
    await runFixes('optimize', disk);
    await writing.finished();
    await vm.stop();
    const record = imageRecord(path, disk);
    expect(record).toMatchObject({ status: 'optimized', served: { mode: 'nbd' } });
    expect(existsSync(join(path, 'volumes', `${record.volumeId}.raw`))).toBe(true);
    await client.teardownImage('live', disk);
    expect(await sameContent(client, 'live', disk, base.fork().write(...writes))).toBe(true);
  }, 120_000);
});

/** Runs the fixes of `type` offered for `imageId`, each to its end. */
async function runFixes(type: Fix['type'], imageId: string): Promise<void> {
  const fixes = (await client.checkStorageRepository('live')).filter((f) => f.type === type && f.imageIds.includes(imageId));
  expect(fixes.length, `a ${type} fix for ${imageId}`).toBeGreaterThan(0);
  for (const fix of fixes) await client.waitForOperation((await client.fixStorageRepository('live', fix)).operationId);
}

let backups = '';
const backupsPath = () => backups;

/** Bytes of data a qcow2 volume holds itself (not its backing chain). */
function allocatedBytes(volume: string): number {
  const map = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', '-U', volume], { encoding: 'utf8' })) as { length: number; depth: number; data: boolean }[];
  return map.filter((e) => e.depth === 0 && e.data).reduce((sum, e) => sum + e.length, 0);
}

describe('a worker killed in the middle of a live operation', () => {
  /** Every fix a check offers, run until a check offers none of clean or mend. */
  async function healAll(): Promise<void> {
    for (let round = 0; round < 5; round++) {
      let ran = 0;
      for (const repo of ['live', 'backups']) {
        for (const fix of await client.checkStorageRepository(repo)) {
          // A fix run before may have done this one's work too (it is then stale): the next check tells.
          const started = await client.fixStorageRepository(repo, fix).catch(() => null);
          if (started) await client.waitForOperation(started.operationId).catch(() => undefined);
          ran++;
        }
      }
      if (!ran) break;
    }
    for (const repo of ['live', 'backups']) expect((await client.checkStorageRepository(repo)).filter((f) => f.type === 'clean' || f.type === 'mend'), repo).toEqual([]);
  }

  async function forgetRunningWorkflows(): Promise<void> {
    for await (const wf of client.temporal.workflow.list({ query: `ExecutionStatus = 'Running'` })) {
      await client.temporal.workflow.getHandle(wf.workflowId).terminate('forgotten: healing from storage alone').catch(() => undefined);
    }
  }

  type Live = 'snapshot' | 'merge' | 'optimize' | 'copy';
  const scenarios: [Live, string][] = [
    ['snapshot', 'live.snapshot-overlay-added'],
    ['snapshot', 'live.snapshot-switched'],
    ['merge', 'live.merge-pivoting'],
    ['merge', 'live.merge-committed'],
    ['optimize', 'live.optimize-pivoting'],
    ['optimize', 'live.optimize-pivoted'],
    ['copy', 'live.copy-done'],
  ];

  it.each(scenarios)('a live %s killed at %s: the VM goes on writing, and check and fix alone complete or undo it', async (kind, point) => {
    const base = Model.blank(SIZE);
    let disk: string;
    let fix: Fix | undefined;
    if (kind === 'optimize') {
      const source = await client.createVirtualDisk('live', SIZE);
      await usable(source);
      await writeImage(client, 'live', source, { pattern: 0x21, offset: 0, length: 8 * MiB });
      base.write({ pattern: 0x21, offset: 0, length: 8 * MiB });
      const snapshot = await client.createSnapshot('live', source);
      await usable(source);
      disk = await client.createVirtualDisk('live', SIZE, snapshot, {}, { strategy: 'performance' });
      await usable(disk);
    } else {
      disk = await client.createVirtualDisk('live', SIZE);
      await usable(disk);
      await writeImage(client, 'live', disk, { pattern: 0x21, offset: 0, length: 8 * MiB });
      base.write({ pattern: 0x21, offset: 0, length: 8 * MiB });
    }
    const { path: address } = await client.prepareImage('live', disk, { serve: 'nbd' });
    const vm = Vm.start(address, 'raw');
    // Long enough to outlast the worker's death and restart; stopped once all is healed.
    const writes = sequenceOf(400, 0x40, 64 * 1024, 128 * 1024, 10 * MiB);
    const writing = new WriteSequence(vm, writes, 25).start();
    if (kind === 'merge') {
      const snapshot = await client.createSnapshot('live', disk);
      await usable(snapshot);
      await client.removeImage('live', snapshot);
      fix = (await client.checkStorageRepository('live')).find((f) => f.type === 'merge' && f.imageIds.includes(disk));
    }
    if (kind === 'optimize') fix = (await client.checkStorageRepository('live')).find((f) => f.type === 'optimize' && f.imageIds.includes(disk));

    await host.restart({ DISKFLOW_FAILPOINTS: point });
    let started: Promise<string | null> = Promise.resolve(null);
    try {
      const made =
        kind === 'snapshot'
          ? client.createSnapshot('live', disk)
          : kind === 'copy'
            ? client.copyImage('backups', disk)
            : client.fixStorageRepository('live', fix!).then(() => null);
      started = made.catch(() => null);
      await Promise.race([host.exited(), new Promise((_, reject) => setTimeout(() => reject(new Error(`failpoint ${point} was not reached`)), 60_000))]);
      // The worker is gone; the daemon serving the disk is not, and the VM goes on writing.
      const acknowledged = vm.acknowledged.length;
      await eventually(async () => vm.acknowledged.length, (n) => n > acknowledged + 2, 20_000);
      await forgetRunningWorkflows();
    } finally {
      await host.restart({ DISKFLOW_FAILPOINTS: '' });
    }
    const id = await started;
    await healAll();
    const written = await writing.stop();
    await vm.stop();
    expect(written).toEqual(writes.slice(0, written.length));
    await client.teardownImage('live', disk);
    expect(await sameContent(client, 'live', disk, base.fork().write(...written))).toBe(true);
    if (id) {
      const repo = kind === 'copy' ? 'backups' : 'live';
      expect(await client.getImageStatus(repo, id)).toMatchObject({ status: 'optimized' });
      const opened = await client.prepareImage(repo, id);
      const k = instantOf(opened.path, opened.format, writes);
      await client.teardownImage(repo, id);
      expect(await sameContent(client, repo, id, base.fork().write(...writes.slice(0, k)))).toBe(true);
    }
    if (kind === 'optimize') expect(await client.getImageStatus('live', disk)).toMatchObject({ status: 'optimized' });
  }, 180_000);

  it('the daemon killed in the middle of a live optimize: reported, served again from the volumes (the mirror undone), and the optimize runs again', async () => {
    const base = Model.blank(SIZE);
    const source = await client.createVirtualDisk('live', SIZE);
    await usable(source);
    await writeImage(client, 'live', source, { pattern: 0x61, offset: 0, length: 32 * MiB });
    base.write({ pattern: 0x61, offset: 0, length: 32 * MiB });
    const snapshot = await client.createSnapshot('live', source);
    await usable(source);
    const disk = await client.createVirtualDisk('live', SIZE, snapshot, {}, { strategy: 'performance' });
    await usable(disk);
    await client.prepareImage('live', disk, { serve: 'nbd' });
    const fix = (await client.checkStorageRepository('live')).find((f) => f.type === 'optimize' && f.imageIds.includes(disk))!;
    const { operationId } = await client.fixStorageRepository('live', fix);
    await eventually(async () => imageRecord(path, disk).served?.live?.kind, (k) => k === 'optimize', 20_000);
    process.kill(daemonPid(disk), 'SIGKILL');
    await expect(client.waitForOperation(operationId)).rejects.toBeDefined();
    await eventually(() => client.getImageStatus('live', disk), (s) => /is gone/.test(s.lastError ?? ''), 20_000);
    const mend = (await client.checkStorageRepository('live')).find((f) => f.type === 'mend' && f.imageIds.includes(disk))!;
    expect(mend.description).toMatch(/settling its live optimize from its volumes/);
    await client.waitForOperation((await client.fixStorageRepository('live', mend)).operationId);
    const again = (await client.checkStorageRepository('live')).find((f) => f.type === 'optimize' && f.imageIds.includes(disk))!;
    await client.waitForOperation((await client.fixStorageRepository('live', again)).operationId);
    await client.teardownImage('live', disk);
    expect(await client.getImageStatus('live', disk)).toMatchObject({ status: 'optimized' });
    expect(await sameContent(client, 'live', disk, base)).toBe(true);
  }, 120_000);
});
