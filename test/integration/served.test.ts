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
  await localRepository(client, 'backups');
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
});

