/**
 * clvm-1.0 and its SRM with three hosts (three `diskflow worker` processes) on one shared LUN
 * (a sparse file attached as a loop device): election, fencing, an SRM killed mid-create, the
 * image API on LVs (activated as loop devices over their extents: no device-mapper here), and
 * thin qcow2 LVs growing by lvextend.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lvm } from '../../activities/volumes/lvm';
import type { StorageClient } from '../../client/storage-client';
import { WORKFLOW_TASK_QUEUE } from '../../api/task-queues';
import { diskflow, diskflowJson, temporalCli } from '../harness/cli';
import { chainOf, Model, sameContent, writeImage } from '../harness/content';
import { clientFor, startHost, stopAllHosts, TestHost } from '../harness/hosts';
import { createLun, loopsOver, Lun, removeLun } from '../harness/lun';
import { localRepository, removeTempDirs } from '../harness/repositories';
import { operationsOn, StepRun, stepsOf } from '../harness/history';
import { eventually } from '../harness/wait';

const MiB = 2 ** 20;
const SIZE = 16 * MiB;
// Short for a test, yet long enough that a holder on a loaded 2-core CI machine (each renewal
// is two dd processes) does not miss its deadline: at 3 s one did, and lost the role.
const LEASE_MS = 6000;
const VG = `dftest${process.pid}`;
const ENV = {
  DISKFLOW_SRM_LEASE_MS: String(LEASE_MS),
  DISKFLOW_CLVM_EXTENT_MB: '1',
  DISKFLOW_CLVM_METADATA_MB: '8',
  DISKFLOW_CLVM_CHUNK_MB: '2',
  DISKFLOW_COPY_CHUNK: String(2 * MiB),
  // Metadata changes sent to the SRM are signed with the cluster's key: every host has the same.
  DISKFLOW_FIX_KEY: 'srm-test-cluster-key-of-at-least-32-bytes',
};

let lun: Lun | undefined;
const hosts: Record<string, TestHost> = {};
const clients: Record<string, StorageClient> = {};

beforeAll(async () => {
  lun = createLun(512 * MiB);
  for (const id of ['h1', 'h2', 'h3']) {
    hosts[id] = await startHost(`srm-${id}`, ENV);
    clients[id] = await clientFor(`srm-${id}`);
  }
  // LVM reads its tunables from the environment of the process that inits the repository.
  await clients.h1.initStorageRepository('clvm-1.0', { devices: [lun.device], vgName: VG });
  for (const id of ['h1', 'h2', 'h3']) await clients[id].connectStorageRepository('shared', 'clvm-1.0', { devices: [lun.device], vgName: VG });
  await localRepository(clients.h1, 'local');
}, 120_000);

afterAll(async () => {
  for (const host of Object.values(hosts)) if (host.process.signalCode === null) host.process.kill('SIGCONT');
  for (const client of Object.values(clients)) await client.close();
  await stopAllHosts();
  await removeLun(lun, VG);
  removeTempDirs();
}, 60_000);

const usable = (client: StorageClient, repo: string, id: string, timeoutMs = 30_000) =>
  eventually(() => client.getImageStatus(repo, id), (s) => s.status === 'optimized' || s.status === 'degraded', timeoutMs);
const srmOf = async (client: StorageClient) => (await client.getStorageRepositoryConstraints('shared')).srmHostId;
const lvs = () => new Lvm([lun!.device], VG).lvs();
const logged = (host: TestHost, msg: string) => host.logs.filter((l) => l.msg === msg);

/** The metadata changes hosts sent to the SRM (srmMetadataStep workflows), finished ones only. */
async function metadataSteps(client: StorageClient): Promise<Map<string, StepRun[]>> {
  const found = new Map<string, StepRun[]>();
  for await (const wf of client.temporal.workflow.list({ query: `WorkflowType = 'srmMetadataStep' AND ExecutionStatus != 'Running'` })) {
    found.set(wf.workflowId, await stepsOf(client, wf.workflowId));
  }
  return found;
}

/**
 * srmMetadataStep needs a clvm repository and an SRM on another host, which the recorder
 * (scripts/record-histories.ts, one localfs host) has not: its history is recorded here, once
 * (an existing file is the past that new code must replay, and is kept), and replayed here too.
 */
async function recordMetadataStepHistory(client: StorageClient, workflowId: string): Promise<void> {
  const history = await client.temporal.workflow.getHandle(workflowId).fetchHistory();
  await Worker.runReplayHistory({ workflowsPath: join(__dirname, '..', '..', 'workflows', 'index.ts') }, history, workflowId);
  // clvm-copy.completed.json is the change as it was sent before changes were signed (kept: the past).
  const file = join(__dirname, '..', 'histories', 'srmMetadataStep.clvm-copy-signed.completed.json');
  if (!existsSync(file)) writeFileSync(file, historyToJSON(history) + '\n');
}

/** The operation that last ran a fix step on an image, and where that step ran. */
async function fixStepsOf(client: StorageClient, imageId: string, type: string): Promise<StepRun[]> {
  const [id] = await operationsOn(client, type, imageId, { extra: " AND ExecutionStatus = 'Completed'" });
  return stepsOf(client, id);
}

describe('clvm-1.0 with an elected SRM', () => {
  it('init refuses a device that is not empty, and a path that is no block device', async () => {
    await expect(clients.h2.initStorageRepository('clvm-1.0', { devices: [lun!.device], vgName: `${VG}x` })).rejects.toMatchObject({ code: 'REPO_NOT_EMPTY' });
    await expect(clients.h2.initStorageRepository('clvm-1.0', { devices: [lun!.file], vgName: `${VG}x` })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('not a block device'),
    });
    await expect(clients.h2.connectStorageRepository('other', 'clvm-1.0', { devices: [lun!.device], vgName: `${VG}x` })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining(`no volume group ${VG}x`),
    });
    expect((await new Lvm([lun!.device], VG).lvs()).map((lv) => lv.name)).toEqual(['diskflow_metadata']);
  });

  it('needs an SRM: none elected, objects cannot be created (SRM_REQUIRED)', async () => {
    expect(await clients.h1.getStorageRepositoryConstraints('shared')).toEqual({ needsSrm: true, srmHostId: null });
    await expect(clients.h1.createVirtualDisk('shared', SIZE)).rejects.toMatchObject({ code: 'SRM_REQUIRED' });
  });

  it('elects one SRM; a second host told to start fails with SRM_CONFLICT naming the holder', async () => {
    // As the README shows: `diskflow repo srm start <repoId> [--host H]`.
    expect(await diskflowJson(['repo', 'srm', 'start', 'shared', '--host', 'srm-h1'], { DISKFLOW_HOST_ID: 'srm-h3' })).toBeNull();
    for (const id of ['h1', 'h2', 'h3']) expect(await srmOf(clients[id])).toBe('srm-h1');
    const refused = await diskflow(['repo', 'srm', 'start', 'shared'], { DISKFLOW_HOST_ID: 'srm-h2' });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/^SRM_CONFLICT: .*srm-h1/);
    await expect(clients.h2.startRepositoryManager('shared')).rejects.toMatchObject({ code: 'SRM_CONFLICT', message: expect.stringContaining('srm-h1') });
    // Starting it again where it runs is a no-op.
    await clients.h1.startRepositoryManager('shared');
  });

  it('runs the image API on LVs: disk, writes, snapshot, disk from snapshot, copies both ways, remove and clean', async () => {
    const c = clients.h1;
    const model = Model.blank(SIZE);
    const lvsBefore = (await lvs()).length;
    const disk = await c.createVirtualDisk('shared', SIZE, null, { vm: 1 });
    await usable(c, 'shared', disk);
    // Its volume is an LV of the shared VG.
    expect((await lvs()).length).toBe(lvsBefore + 1);
    await writeImage(c, 'shared', disk, { pattern: 0x21, offset: 0, length: MiB }, { pattern: 0x22, offset: 9 * MiB, length: 512 * 1024 });
    model.write({ pattern: 0x21, offset: 0, length: MiB }, { pattern: 0x22, offset: 9 * MiB, length: 512 * 1024 });
    expect(await sameContent(c, 'shared', disk, model)).toBe(true);

    const snapshot = await c.createSnapshot('shared', disk);
    await usable(c, 'shared', disk);
    const child = await c.createVirtualDisk('shared', SIZE, snapshot);
    await usable(c, 'shared', child);
    const childModel = model.fork().write({ pattern: 0x23, offset: 4 * MiB, length: MiB });
    await writeImage(c, 'shared', child, { pattern: 0x23, offset: 4 * MiB, length: MiB });
    expect(await sameContent(c, 'shared', snapshot, model)).toBe(true);
    expect(await sameContent(c, 'shared', child, childModel)).toBe(true);

    // Another host reads what the SRM wrote, from the shared metadata LV.
    expect(await clients.h3.getImageStatus('shared', child)).toMatchObject({ kind: 'virtual-disk', size: SIZE });
    // A host that is not the SRM prepares a disk for its VM (the SRM writes the mark), writes, tears down.
    const { path } = await clients.h2.prepareImage('shared', child);
    expect(path).toContain(hosts.h2.home);
    try {
      // The mark is on the repository: a copy, asked on another host, sees the disk in use.
      await expect(c.copyImage('local', child)).rejects.toMatchObject({ code: 'IMAGE_IN_USE' });
    } finally {
      await clients.h2.teardownImage('shared', child);
    }
    await writeImage(clients.h2, 'shared', child, { pattern: 0x24, offset: 5 * MiB, length: 64 * 1024 });
    childModel.write({ pattern: 0x24, offset: 5 * MiB, length: 64 * 1024 });
    expect(await sameContent(c, 'shared', child, childModel)).toBe(true);

    const out = await c.copyImage('local', child);
    await usable(c, 'local', out);
    expect(await sameContent(c, 'local', out, childModel)).toBe(true);
    // Two disks from one snapshot prepared on one host: tearing one down keeps their shared base active.
    const sibling = await c.createVirtualDisk('shared', SIZE, snapshot);
    await usable(c, 'shared', sibling);
    const one = await clients.h2.prepareImage('shared', child);
    const two = await clients.h2.prepareImage('shared', sibling);
    await clients.h2.teardownImage('shared', child);
    try {
      execFileSync('qemu-img', ['compare', '-U', '-q', '-f', 'qcow2', '-F', 'raw', two.path, model.path]);
    } finally {
      await clients.h2.teardownImage('shared', sibling);
    }
    expect(existsSync(one.path)).toBe(false);
    expect(existsSync(two.path)).toBe(false);

    // A host that is not the SRM reads from the LVs (activated there) into its own repository.
    await localRepository(clients.h3, 'local3');
    const out3 = await clients.h3.copyImage('local3', child);
    await usable(clients.h3, 'local3', out3);
    expect(await sameContent(clients.h3, 'local3', out3, childModel)).toBe(true);
    const back = await c.copyImage('shared', out, null, {}, { strategy: 'performance' });
    await usable(c, 'shared', back);
    expect(await sameContent(c, 'shared', back, childModel)).toBe(true);

    const before = (await lvs()).length;
    await c.removeImage('shared', back);
    await expect(c.getImageStatus('shared', back)).rejects.toMatchObject({ code: 'IMAGE_NOT_FOUND' });
    await eventually(lvs, (all) => all.length === before - 1);
    // The clean removes the LV first and forgets the image's record last: once it has ended, a check offers no clean.
    const cleans = async () => (await c.checkStorageRepository('shared')).filter((f) => f.type === 'clean');
    expect(await eventually(cleans, (left) => left.length === 0)).toEqual([]);
  }, 120_000);

  it('check and fix: a mend sent to a host that is not the SRM runs there (the SRM makes its metadata changes); a clean runs on the SRM', async () => {
    const c = clients.h1;
    const disk = await c.createVirtualDisk('shared', SIZE, null, {}, { autoFix: false });
    expect((await c.getImageStatus('shared', disk)).status).toBe('broken');
    const mendOf = async () => (await clients.h3.checkStorageRepository('shared')).find((f) => f.type === 'mend' && f.imageIds.includes(disk));
    const mend = await mendOf();
    expect(mend).toBeDefined();
    // h2 has the repository connected but is not its SRM: it formats the volume, the SRM makes the LV and writes the records.
    const { operationId } = await clients.h3.fixStorageRepository('shared', mend!, { hostId: 'srm-h2' });
    await clients.h3.waitForOperation(operationId);
    await usable(c, 'shared', disk);
    expect((await c.getImageStatus('shared', disk)).hostId).toBe('srm-h2');
    expect(await sameContent(c, 'shared', disk, Model.blank(SIZE))).toBe(true);

    const lvsBefore = (await lvs()).length;
    await c.removeImage('shared', disk, { autoFix: false });
    expect((await lvs()).length).toBe(lvsBefore);
    const clean = (await clients.h2.checkStorageRepository('shared')).find((f) => f.type === 'clean' && f.imageIds.includes(disk));
    expect(clean).toBeDefined();
    await clients.h2.waitForOperation((await clients.h2.fixStorageRepository('shared', clean!)).operationId);
    expect((await lvs()).length).toBe(lvsBefore - 1);
  }, 90_000);

  it('optimize and merge sent to hosts that are not the SRM move the data there; what they replace is removed by a clean on the SRM', async () => {
    const c = clients.h1;
    const writes = [{ pattern: 0x51, offset: 0, length: 3 * MiB }];
    const model = Model.blank(SIZE).write(...writes);
    // A raw base (its LV whole from the start): without device-mapper a thin LV grows only into
    // the extents right after it, which the overlays made on it take.
    const disk = await c.createVirtualDisk('shared', SIZE, null, {}, { strategy: 'performance' });
    await usable(c, 'shared', disk);
    await writeImage(c, 'shared', disk, ...writes);
    const snapshot = await c.createSnapshot('shared', disk);
    await usable(c, 'shared', disk);
    await writeImage(c, 'shared', disk, { pattern: 0x52, offset: 4 * MiB, length: MiB });
    const diskModel = model.fork().write({ pattern: 0x52, offset: 4 * MiB, length: MiB });
    const fast = await c.createVirtualDisk('shared', SIZE, snapshot, {}, { strategy: 'performance' });
    await usable(c, 'shared', fast);
    await c.removeImage('shared', snapshot);

    const fixOf = async (imageId: string, type: string) =>
      eventually(async () => (await c.checkStorageRepository('shared')).find((f) => f.type === type && f.imageIds.includes(imageId)), (f) => f !== undefined);
    const volumesOf = async (imageId: string) => (await chainOf(c, 'shared', imageId)).map((v) => basename(v.filename));
    const optimizeOp = (await c.fixStorageRepository('shared', (await fixOf(fast, 'optimize'))!, { hostId: 'srm-h2' })).operationId;
    await c.waitForOperation(optimizeOp);
    expect(await c.getImageStatus('shared', fast)).toMatchObject({ status: 'optimized', hostId: 'srm-h2' });
    const [top] = await volumesOf(disk);
    const mergeOp = (await c.fixStorageRepository('shared', (await fixOf(disk, 'merge'))!, { hostId: 'srm-h3' })).operationId;
    await c.waitForOperation(mergeOp);
    expect((await volumesOf(disk)).includes(top)).toBe(false);
    expect((await lvs()).map((lv) => lv.name)).not.toContain(top);

    for (const [operationId, dataStep, host] of [[optimizeOp, 'optimizeImage', 'srm-h2'], [mergeOp, 'mergeVolumes', 'srm-h3']]) {
      const steps = await stepsOf(c, operationId);
      expect(steps.filter((s) => s.activity === dataStep).map((s) => s.host)).toEqual([host]);
      expect(steps.filter((s) => s.activity === 'cleanOrphans').map((s) => s.host)).toEqual(['srm-h1']);
    }
    expect(await sameContent(c, 'shared', fast, model)).toBe(true);
    expect(await sameContent(c, 'shared', disk, diskModel)).toBe(true);
    await c.removeImage('shared', fast);
    await c.removeImage('shared', disk);
  }, 120_000);

  it('a thin qcow2 LV grows by lvextend as a copy fills it', async () => {
    const c = clients.h1;
    const big = 64 * MiB;
    const source = await c.createVirtualDisk('local', big);
    await usable(c, 'local', source);
    const writes = [0, 3, 6, 9].map((at, i) => ({ pattern: 0x40 + i, offset: at * MiB, length: 2 * MiB }));
    await writeImage(c, 'local', source, ...writes);
    const model = Model.blank(big).write(...writes);
    const before = new Set((await lvs()).map((l) => l.name));
    const copy = await c.copyImage('shared', source);
    await usable(c, 'shared', copy);
    const made = (await lvs()).filter((l) => !before.has(l.name));
    expect(made).toHaveLength(1);
    // Created at the 2 MiB chunk, extended as the 8 MiB of data came in (with the copy's
    // headroom), never to the full virtual size.
    expect(made[0].tags).toContain('diskflow.format=qcow2');
    expect(made[0].size).toBeGreaterThan(8 * MiB);
    expect(made[0].size).toBeLessThan(big);
    expect(await sameContent(c, 'shared', copy, model)).toBe(true);
  }, 60_000);

  it('a thin qcow2 LV prepared for a VM on a host that is not the SRM holds the whole disk; the last teardown shrinks it to what it uses', async () => {
    const c = clients.h1;
    expect(await srmOf(c)).toBe('srm-h1');
    const big = 64 * MiB;
    const before = new Set((await lvs()).map((l) => l.name));
    const disk = await c.createVirtualDisk('shared', big);
    await usable(c, 'shared', disk);
    const made = (await lvs()).filter((l) => !before.has(l.name));
    expect(made).toHaveLength(1);
    const lvSize = async () => (await lvs()).find((l) => l.name === made[0].name)!.size;
    // Thin: it starts at the 2 MiB chunk.
    expect(await lvSize()).toBeLessThan(big);
    const model = Model.blank(big).write({ pattern: 0x5a, offset: 0, length: 60 * MiB });
    const qemuIo = (path: string, command: string) => execFileSync('qemu-io', ['-f', 'qcow2', '-c', command, path], { encoding: 'utf8' });

    const { path } = await clients.h2.prepareImage('shared', disk);
    try {
      // The SRM made the LV hold the whole disk before h2 activated it.
      const fullyAllocated = Number(/fully allocated size: (\d+)/.exec(execFileSync('qemu-img', ['measure', '-O', 'qcow2', '--size', String(big)], { encoding: 'utf8' }))![1]);
      expect(await lvSize()).toBeGreaterThanOrEqual(fullyAllocated);
      // The VM writes 60 MiB: without room it would get ENOSPC (qemu-io reports it on stdout).
      expect(qemuIo(path, 'write -P 0x5a 0 60M')).not.toMatch(/failed|error/i);
      expect(qemuIo(path, 'read -P 0x5a 0 60M')).not.toMatch(/failed|error|mismatch/i);
    } finally {
      await clients.h2.teardownImage('shared', disk);
    }
    // Torn down everywhere: the SRM shrank the LV back, below the whole disk but not below its data.
    const shrunk = await lvSize();
    expect(shrunk).toBeLessThan(big);
    expect(shrunk).toBeGreaterThan(60 * MiB);

    // Prepared again, on h3 and on the SRM itself: nothing was cut, and the LV is whole again.
    const again = await clients.h3.prepareImage('shared', disk);
    const onSrm = await c.prepareImage('shared', disk).catch(async (error: unknown) => {
      await clients.h3.teardownImage('shared', disk);
      throw error;
    });
    const whole = await lvSize();
    try {
      const end = (JSON.parse(execFileSync('qemu-img', ['check', '-U', '--output=json', '-f', 'qcow2', again.path], { encoding: 'utf8' })) as { 'image-end-offset': number })[
        'image-end-offset'
      ];
      expect(end).toBeLessThanOrEqual(shrunk);
      expect(whole).toBeGreaterThan(big);
      execFileSync('qemu-img', ['compare', '-U', '-q', '-f', 'qcow2', '-F', 'raw', again.path, model.path]);
    } finally {
      await clients.h3.teardownImage('shared', disk);
    }
    try {
      // The SRM still has it prepared: no shrink yet, and its VM writes on.
      expect(await lvSize()).toBe(whole);
      expect(qemuIo(onSrm.path, 'write -P 0x5b 60M 1M')).not.toMatch(/failed|error/i);
      model.write({ pattern: 0x5b, offset: 60 * MiB, length: MiB });
    } finally {
      await c.teardownImage('shared', disk);
    }
    // The SRM's own teardown shrinks it too, keeping the new MiB.
    expect(await lvSize()).toBeLessThan(whole);
    expect(await lvSize()).toBeGreaterThan(61 * MiB);
    expect(await sameContent(c, 'shared', disk, model)).toBe(true);

    // A disk the VG cannot hold whole is refused (NO_SPACE), and nothing is marked: it can be removed.
    const huge = await c.createVirtualDisk('shared', 2048 * MiB);
    await usable(c, 'shared', huge);
    await expect(clients.h2.prepareImage('shared', huge)).rejects.toMatchObject({ code: 'NO_SPACE' });
    await c.removeImage('shared', huge);
    await c.removeImage('shared', disk);
  }, 90_000);

  // Last of this block: the LVs it removes leave holes, where (loop activation: contiguous
  // allocation) a thin LV made later could not grow.
  it('copies, snapshots and disks from snapshots: data steps on several hosts, metadata changes only on the SRM', async () => {
    const c = clients.h1;
    await c.startRepositoryManager('shared'); // a no-op where it runs (the election test started it)
    expect(await srmOf(c)).toBe('srm-h1');
    const before = new Set((await metadataSteps(c)).keys());
    const writes = [
      { pattern: 0x61, offset: 0, length: 2 * MiB },
      { pattern: 0x62, offset: 10 * MiB, length: MiB },
    ];
    const model = Model.blank(SIZE).write(...writes);
    // Raw LVs (performance), made whole at once: the holes earlier tests left do not limit them.
    const disk = await c.createVirtualDisk('shared', SIZE, null, {}, { strategy: 'performance' });
    await usable(c, 'shared', disk);
    await writeImage(c, 'shared', disk, ...writes);
    // Asked on h2: persisted by the SRM.
    const snapshot = await clients.h2.createSnapshot('shared', disk);
    await usable(c, 'shared', disk);

    // Copies of the disk, their data moved on the hosts that are not the SRM.
    const made: { id: string; host: string; model: Model; operationId?: string }[] = [];
    for (const host of ['srm-h2', 'srm-h3']) {
      const copy = await clients.h3.copyImage('shared', disk, null, {}, { autoFix: false, strategy: 'performance' });
      // Offered once the copy operation (which answered at persist) has finished.
      const mend = await eventually(
        async () => (await c.checkStorageRepository('shared')).find((f) => f.type === 'mend' && f.imageIds.includes(copy)),
        (f) => f !== undefined,
      );
      const { operationId } = await c.fixStorageRepository('shared', mend!, { hostId: host });
      await c.waitForOperation(operationId);
      made.push({ id: copy, host, model, operationId });
    }
    // A disk from the snapshot, performance strategy (a copy of its chain): its step goes to any host with the repository.
    const fast = await clients.h2.createVirtualDisk('shared', SIZE, snapshot, {}, { strategy: 'performance' });
    await usable(c, 'shared', fast);
    made.push({ id: fast, host: (await c.getImageStatus('shared', fast)).hostId!, model });

    for (const { id, host, model: expected } of made) {
      const status = await usable(c, 'shared', id);
      expect(status.hostId).toBe(host);
      expect(await sameContent(clients.h2, 'shared', id, expected)).toBe(true);
    }
    // Each fix's data step (the mend) ran on its chosen host.
    for (const { host, operationId } of made.slice(0, 2)) {
      const steps = await stepsOf(c, operationId!);
      expect(steps.filter((s) => s.activity === 'mendImage').map((s) => s.host)).toEqual([host]);
    }
    // The persist steps ran on the SRM.
    const created = await fixStepsOf(c, fast, 'createVirtualDisk');
    expect(created.filter((s) => s.activity === 'persist').map((s) => s.host)).toEqual(['srm-h1']);
    expect(created.filter((s) => s.activity === 'mendImage').map((s) => s.taskQueue)).toEqual([expect.stringMatching(/^diskflow\.repo\./)]);

    // Every metadata change those hosts sent ran on the SRM, on the SRM queue (its local check
    // of the signed change runs wherever the workflow task ran: workflows/srm-metadata-step.ts).
    const sent = await eventually(
      async () => [...(await metadataSteps(c)).entries()].filter(([id]) => !before.has(id)).flatMap(([, steps]) => steps.filter((s) => !s.local)),
      (steps) => steps.length >= 2,
    );
    expect(new Set(sent.map((s) => s.activity))).toEqual(new Set(['applyMetadataOnSrm']));
    expect(new Set(sent.map((s) => s.host))).toEqual(new Set(['srm-h1']));
    expect(sent.filter((s) => !s.taskQueue.startsWith('diskflow.srm.'))).toEqual([]);
    await recordMetadataStepHistory(c, [...(await metadataSteps(c)).keys()].find((id) => !before.has(id))!);

    // Removed, asked on a host that is not the SRM: the SRM removes the LVs.
    const lvsBefore = (await lvs()).length;
    for (const { id } of made) await clients.h3.removeImage('shared', id);
    await eventually(lvs, (all) => all.length === lvsBefore - made.length);
    await c.removeImage('shared', snapshot);
    await c.removeImage('shared', disk);

    // Into clvm from another repository, asked on a host that is not the SRM: copied there, into
    // a thin LV the SRM grows (lvextend) as the data comes in.
    const source = await clients.h3.createVirtualDisk('local3', SIZE);
    await usable(clients.h3, 'local3', source);
    await writeImage(clients.h3, 'local3', source, ...writes);
    const lvsBeforeCopy = new Set((await lvs()).map((l) => l.name));
    const grown = await clients.h3.copyImage('shared', source);
    await usable(c, 'shared', grown);
    expect((await c.getImageStatus('shared', grown)).hostId).toBe('srm-h3');
    expect(await sameContent(c, 'shared', grown, model)).toBe(true);
    const made3 = (await lvs()).filter((l) => !lvsBeforeCopy.has(l.name));
    expect(made3).toHaveLength(1);
    // Created at the 2 MiB chunk, grown for the 3 MiB of data.
    expect(made3[0].size).toBeGreaterThan(3 * MiB);
  }, 180_000);

  it('srmMetadataStep started from outside changes nothing: unsigned, forged, or a signed change replayed once its operation is over fails at once with INVALID_ARGUMENT', async () => {
    const c = clients.h1;
    expect(await srmOf(c)).toBe('srm-h1');
    const namesBefore = new Set((await lvs()).map((l) => l.name));
    const disk = await c.createVirtualDisk('shared', SIZE);
    await usable(c, 'shared', disk);
    const [volumeId] = (await lvs()).map((l) => l.name).filter((n) => !namesBefore.has(n));
    const repoUuid = (await new Lvm([lun!.device], VG).vg())!.tags.find((t) => t.startsWith('diskflow.uuid='))!.slice('diskflow.uuid='.length);
    const removeVolume = { method: 'removeVolume', volumeId };
    // A signed change an earlier test sent, read back from its history (its operation has ended).
    const [sentBefore] = [...(await metadataSteps(c)).keys()];
    const history = await c.temporal.workflow.getHandle(sentBefore).fetchHistory();
    const payload = history.events![0].workflowExecutionStartedEventAttributes!.input!.payloads![0];
    const replayed = JSON.parse(Buffer.from(payload.data!).toString('utf8')) as Record<string, unknown>;
    expect(replayed.signature).toEqual(expect.any(String));

    const hostile: [string, unknown][] = [
      ['unsigned, as the issue found it', { repoUuid, call: removeVolume }],
      ['a forged signature', { repoUuid, operationId: `createVirtualDisk:${disk}`, call: removeVolume, signature: 'A'.repeat(43) }],
      ['a signed change replayed after its operation ended', replayed],
      ['a signed change bent to another volume', { ...replayed, call: removeVolume }],
      ['no input at all', null],
    ];
    for (const [what, input] of hostile) {
      const workflowId = `hostile-srm-${randomUUID()}`;
      const started = Date.now();
      await temporalCli(['workflow', 'start', '--type', 'srmMetadataStep', '--task-queue', WORKFLOW_TASK_QUEUE, '--workflow-id', workflowId, '--input', JSON.stringify(input)]);
      const failure = await c.temporal.workflow.getHandle(workflowId).result().then(() => undefined, (e: unknown) => e);
      expect(failure, what).toBeInstanceOf(WorkflowFailedError);
      expect(((failure as WorkflowFailedError).cause as ApplicationFailure).type, what).toBe('INVALID_ARGUMENT');
      expect(Date.now() - started, what).toBeLessThan(15_000);
    }
    expect((await lvs()).map((l) => l.name)).toContain(volumeId);
    expect(await sameContent(c, 'shared', disk, Model.blank(SIZE))).toBe(true);
    await c.removeImage('shared', disk);
  }, 120_000);
});

describe('SRM fencing and takeover', () => {
  it('a stopped holder loses the role only after its lease expires; on SIGCONT it knows and does no SRM work', async () => {
    const h1 = hosts.h1.process;
    h1.kill('SIGSTOP');
    const stoppedAt = Date.now();
    try {
      // (While the holder is fresh, h2 is refused: SRM_CONFLICT; the election test shows that.
      // Here the call may also reach a worker only after h1's workflow tasks time out.)
      const taken = await eventually(
        async () => {
          await clients.h2.startRepositoryManager('shared');
          return Date.now();
        },
        () => true,
        60_000,
      );
      // Never before the stopped holder's lease ran out and the taker saw it silent for a lease
      // timeout plus the margin (half a lease).
      expect(taken - stoppedAt).toBeGreaterThanOrEqual(1.5 * LEASE_MS);
      expect(await srmOf(clients.h3)).toBe('srm-h2');
    } finally {
      h1.kill('SIGCONT');
    }
    await eventually(async () => logged(hosts.h1, 'SRM lease lost: this host is no longer the SRM').length, (n) => n > 0);
    // It stopped polling the SRM queue: no SRM step reaches it any more.
    await eventually(async () => logged(hosts.h1, 'stopped polling').filter((l) => String(l.taskQueue).startsWith('diskflow.srm.')).length, (n) => n > 0);
    expect(await srmOf(clients.h1)).toBe('srm-h2');
    // New objects are made by the new SRM (their data step runs on any host with the repository).
    const disk = await clients.h1.createVirtualDisk('shared', SIZE);
    await usable(clients.h1, 'shared', disk);
    expect((await fixStepsOf(clients.h1, disk, 'createVirtualDisk')).filter((s) => s.activity === 'persist').map((s) => s.host)).toEqual(['srm-h2']);
    // h1 asked to act as SRM is refused by its own lease check.
    await expect(clients.h1.startRepositoryManager('shared')).rejects.toMatchObject({ code: 'SRM_CONFLICT' });
  }, 120_000);

  it('an SRM killed mid-create: after its lease expires a newly elected SRM completes the creation', async () => {
    await clients.h2.stopRepositoryManager('shared');
    // Killed right after it made the LV, whichever host's mend asked for it.
    await hosts.h2.restart({ DISKFLOW_FAILPOINTS: 'clvm.volume-allocated' });
    await clients.h2.startRepositoryManager('shared');
    const disk = await clients.h3.createVirtualDisk('shared', SIZE);
    await hosts.h2.exited();
    expect((await clients.h3.getImageStatus('shared', disk)).status).toBe('broken');
    await eventually(() => clients.h3.startRepositoryManager('shared'), () => true, 60_000);
    expect(await srmOf(clients.h1)).toBe('srm-h3');
    const status = await usable(clients.h3, 'shared', disk, 60_000);
    // The data step, retried or waiting for an SRM, finished on a host that is alive.
    expect(['srm-h1', 'srm-h3']).toContain(status.hostId);
    expect(await sameContent(clients.h3, 'shared', disk, Model.blank(SIZE))).toBe(true);
    await hosts.h2.restart({ DISKFLOW_FAILPOINTS: '' });
  }, 180_000);

  it('leaves no loop device of a host that stopped', async () => {
    await clients.h3.stopRepositoryManager('shared');
    for (const id of ['h1', 'h2', 'h3']) await clients[id].disconnectStorageRepository('shared');
    expect(loopsOver(lun!.device)).toEqual([]);
  }, 60_000);
});
