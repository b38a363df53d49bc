/**
 * Disks in use by VMs: a VM's write is sacred. A qemu-io process holding a prepared disk open
 * plays the VM; while it writes, every operation and fix that would change, swap, delete or copy
 * what it writes is refused with IMAGE_IN_USE, and afterwards every write it was answered is on
 * the disk. Prepare of a disk an operation is changing or copying is refused with IMAGE_BUSY.
 * Races between the two run many times at once: never does a snapshot or a copy see a VM's
 * write it should not, and never is a write lost.
 */
import { existsSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Fix } from '../../api/image-status';
import type { StorageClient } from '../../client/storage-client';
import { Model, sameContent, Write, writeImage } from '../harness/content';
import { clientFor, startHost, stopAllHosts } from '../harness/hosts';
import { localRepository, removeTempDirs } from '../harness/repositories';
import { stopAllVms, Vm } from '../harness/vm';
import { eventually } from '../harness/wait';

const MiB = 2 ** 20;
const SIZE = 16 * MiB;
let client: StorageClient;

beforeAll(async () => {
  // Copies are slowed down, so that one of a few MiB lasts long enough to race a prepare with.
  await startHost('vm-host', { DISKFLOW_COPY_CHUNK: '4M', DISKFLOW_COPY_RATE_LIMIT: '8M', DISKFLOW_FIX_KEY: 'in-use-test-cluster-key-of-32-bytes!' });
  client = await clientFor('vm-host');
  await localRepository(client, 'vms');
  await localRepository(client, 'backup');
});

afterEach(async () => {
  await stopAllVms();
});

afterAll(async () => {
  await client?.close();
  await stopAllHosts();
  removeTempDirs();
});

const status = (id: string, repo = 'vms') => client.getImageStatus(repo, id);
const usable = (id: string, repo = 'vms') => eventually(() => status(id, repo), (s) => s.status !== 'broken', 60_000);
const fixFor = async (id: string, type: Fix['type']) => {
  const fix = (await client.checkStorageRepository('vms')).find((f) => f.imageIds.includes(id) && f.type === type);
  if (!fix) throw new Error(`no ${type} fix offered for ${id}`);
  return fix;
};
const run = async (fix: Fix) => client.waitForOperation((await client.fixStorageRepository('vms', fix)).operationId);

async function diskWith(model: Model, ...writes: Write[]): Promise<string> {
  const id = await client.createVirtualDisk('vms', SIZE);
  await usable(id);
  if (writes.length) {
    await writeImage(client, 'vms', id, ...writes);
    model.write(...writes);
  }
  return id;
}

/** A VM started on the disk: prepared on this host, opened read-write. */
async function startVm(diskId: string): Promise<Vm> {
  const { path, format, readOnly } = await client.prepareImage('vms', diskId);
  expect(readOnly).toBe(false);
  return Vm.start(path, format);
}

/** The VM writes `write`, and the model of the disk with it once it is answered. */
async function vmWrites(vm: Vm, model: Model, write: Write): Promise<void> {
  await vm.write(write);
  model.write(write);
}

describe('a disk in use by a VM', () => {
  it('snapshot, copy, optimize, merge and removal are refused with IMAGE_IN_USE while the VM writes, and every write it was answered survives them; after teardown they run and the disk holds what the VM wrote', async () => {
    // D: a thin overlay made for performance (an optimize fix flattens it). M: a disk whose
    // snapshot was removed (a merge fix folds its chain).
    const base = Model.blank(SIZE);
    const a = await diskWith(base, { pattern: 0x11, offset: 0, length: 2 * MiB });
    const s = await client.createSnapshot('vms', a);
    await usable(a);
    const d = await client.createVirtualDisk('vms', SIZE, s, {}, { strategy: 'performance' });
    await usable(d);
    const dModel = base.fork();
    const mModel = Model.blank(SIZE);
    const m = await diskWith(mModel, { pattern: 0x21, offset: 1 * MiB, length: 1 * MiB });
    const s2 = await client.createSnapshot('vms', m);
    await usable(m);
    await client.removeImage('vms', s2);

    const vmD = await startVm(d);
    const vmM = await startVm(m);
    await vmWrites(vmD, dModel, { pattern: 0x31, offset: 3 * MiB, length: 512 * 1024 });
    await vmWrites(vmM, mModel, { pattern: 0x41, offset: 4 * MiB, length: 512 * 1024 });

    // Offered while prepared (what storage says is left to do), refused when asked for.
    const optimize = await fixFor(d, 'optimize');
    const merge = await fixFor(m, 'merge');
    const attempts: [string, () => Promise<unknown>][] = [
      ['optimize fix', () => client.fixStorageRepository('vms', optimize)],
      ['merge fix', () => client.fixStorageRepository('vms', merge)],
      ['snapshot', () => client.createSnapshot('vms', d)],
      ['copy', () => client.copyImage('backup', d)],
      ['copy into its own repository', () => client.copyImage('vms', m, null, {}, { kind: 'snapshot' })],
      ['removal', () => client.removeImage('vms', d)],
    ];
    for (const [what, attempt] of attempts) {
      await expect(attempt(), what).rejects.toMatchObject({ code: 'IMAGE_IN_USE', message: expect.stringContaining('vm-host') });
      // The VM goes on writing between the refusals; the file it writes is still there.
      await vmWrites(vmD, dModel, { pattern: 0x50 + attempts.findIndex(([w]) => w === what), offset: 5 * MiB, length: 64 * 1024 });
      expect(existsSync(vmD.path)).toBe(true);
    }
    await vmWrites(vmM, mModel, { pattern: 0x42, offset: 6 * MiB, length: 512 * 1024 });
    await vmD.stop();
    await vmM.stop();
    expect(vmD.acknowledged.length).toBe(attempts.length + 1);
    await client.teardownImage('vms', d);
    await client.teardownImage('vms', m);
    expect(await sameContent(client, 'vms', d, dModel)).toBe(true);
    expect(await sameContent(client, 'vms', m, mModel)).toBe(true);

    // Torn down: the same work runs, and the content is what the VM wrote.
    await run(await fixFor(d, 'optimize'));
    await run(await fixFor(m, 'merge'));
    expect(await status(d)).toMatchObject({ status: 'optimized' });
    const snapshot = await client.createSnapshot('vms', d);
    await usable(d);
    const copy = await client.copyImage('backup', d);
    await usable(copy, 'backup');
    for (const [repo, id, model] of [['vms', d, dModel], ['vms', m, mModel], ['vms', snapshot, dModel], ['backup', copy, dModel]] as const) {
      expect(await sameContent(client, repo, id, model), `${repo}/${id}`).toBe(true);
    }
  }, 120_000);

  it('prepare is refused with IMAGE_BUSY, naming the operation, while a copy reads the disk or an optimize rewrites it; once they end, the VM gets the disk', async () => {
    const model = Model.blank(SIZE);
    const disk = await diskWith(model, { pattern: 0x61, offset: 0, length: 12 * MiB });
    const copy = await client.copyImage('backup', disk);
    await expect(client.prepareImage('vms', disk)).rejects.toMatchObject({ code: 'IMAGE_BUSY', message: expect.stringMatching(/a copy is reading it \(operation /) });
    await expect(client.prepareImage('backup', copy)).rejects.toMatchObject({ code: 'IMAGE_BUSY', message: expect.stringContaining('not complete yet') });
    await usable(copy, 'backup');
    expect(await sameContent(client, 'backup', copy, model)).toBe(true);

    const snapshot = await client.createSnapshot('vms', disk);
    await usable(disk);
    const thin = await client.createVirtualDisk('vms', SIZE, snapshot, {}, { strategy: 'performance' });
    await usable(thin);
    const { operationId } = await client.fixStorageRepository('vms', await fixFor(thin, 'optimize'));
    await expect(client.prepareImage('vms', thin)).rejects.toMatchObject({ code: 'IMAGE_BUSY', message: expect.stringContaining(`fix:optimize is working on it (operation ${operationId}`) });
    await client.waitForOperation(operationId);
    const vm = await startVm(thin);
    await vmWrites(vm, model, { pattern: 0x62, offset: 13 * MiB, length: MiB });
    await vm.stop();
    await client.teardownImage('vms', thin);
    expect(await sameContent(client, 'vms', thin, model)).toBe(true);
  });

  it('a copy persisted with autoFix off is refused with IMAGE_IN_USE when it runs while the VM writes, and after teardown copies the disk as it then is', async () => {
    const model = Model.blank(SIZE);
    const disk = await diskWith(model, { pattern: 0x71, offset: 0, length: 2 * MiB });
    const copy = await client.copyImage('backup', disk, null, {}, { autoFix: false });
    const vm = await startVm(disk);
    await vmWrites(vm, model, { pattern: 0x72, offset: 2 * MiB, length: MiB });
    const mend = (await client.checkStorageRepository('backup')).find((f) => f.type === 'mend' && f.imageIds.includes(copy))!;
    const { operationId } = await client.fixStorageRepository('backup', mend);
    await expect(client.waitForOperation(operationId)).rejects.toMatchObject({ code: 'IMAGE_IN_USE' });
    expect(await status(copy, 'backup')).toMatchObject({ status: 'broken', lastError: expect.stringContaining('prepared for a VM on vm-host') });
    await vmWrites(vm, model, { pattern: 0x73, offset: 4 * MiB, length: MiB });
    await vm.stop();
    await client.teardownImage('vms', disk);
    const again = (await client.checkStorageRepository('backup')).find((f) => f.type === 'mend' && f.imageIds.includes(copy))!;
    await client.waitForOperation((await client.fixStorageRepository('backup', again)).operationId);
    expect(await sameContent(client, 'backup', copy, model)).toBe(true);
  });

  it('a host that died with a disk prepared keeps its mark until the engine, knowing it fenced, releases it from another host', async () => {
    const disk = await diskWith(Model.blank(SIZE));
    await client.prepareImage('vms', disk);
    await expect(client.createSnapshot('vms', disk)).rejects.toMatchObject({ code: 'IMAGE_IN_USE' });
    // Another host tearing down for itself releases nothing of the dead host's.
    await client.teardownImage('vms', disk, { fencedHostId: 'other-host' });
    await expect(client.createSnapshot('vms', disk)).rejects.toMatchObject({ code: 'IMAGE_IN_USE', message: expect.stringContaining('vm-host') });
    await client.teardownImage('vms', disk, { fencedHostId: 'vm-host' });
    await expect(client.createSnapshot('vms', disk)).resolves.toEqual(expect.any(String));
  });
});

describe('races between a VM starting and an operation', () => {
  const ROUNDS = 20;

  it(`prepare against snapshot, ${ROUNDS} at once: when both succeed the snapshot never holds the VM's write, and the disk always does`, async () => {
    const first: Write = { pattern: 0x81, offset: 0, length: MiB };
    const vmWrite: Write = { pattern: 0x82, offset: MiB, length: MiB };
    const rounds = await Promise.all(
      Array.from({ length: ROUNDS }, async () => {
        const before = Model.blank(SIZE);
        const disk = await diskWith(before, first);
        const snapshotCall = client.createSnapshot('vms', disk);
        const snapshotAnswered = snapshotCall.then(
          () => undefined,
          () => undefined,
        );
        const [prepared, snapshot] = await Promise.allSettled([
          (async () => {
            const vm = await startVm(disk);
            await vm.write(vmWrite);
            // The VM runs until the snapshot call has answered: a snapshot taken after its
            // teardown would rightly hold its write, and say nothing about the race.
            await snapshotAnswered;
            await vm.stop();
            await client.teardownImage('vms', disk);
          })(),
          snapshotCall,
        ]);
        return { disk, before, prepared, snapshot };
      }),
    );
    for (const { disk, before, prepared, snapshot } of rounds) {
      for (const r of [prepared, snapshot]) if (r.status === 'rejected') expect(['IMAGE_BUSY', 'IMAGE_IN_USE']).toContain((r.reason as { code?: string }).code);
      expect(prepared.status === 'fulfilled' || snapshot.status === 'fulfilled').toBe(true);
      if (snapshot.status === 'fulfilled') expect(await sameContent(client, 'vms', snapshot.value, before)).toBe(true);
      await usable(disk);
      expect(await sameContent(client, 'vms', disk, prepared.status === 'fulfilled' ? before.fork().write(vmWrite) : before)).toBe(true);
    }
  }, 240_000);

  it(`prepare against an optimize being accepted, ${ROUNDS} at once: no write is lost, and the disk ends optimized`, async () => {
    const base = Model.blank(SIZE);
    const source = await diskWith(base, { pattern: 0x91, offset: 0, length: 2 * MiB });
    const snapshot = await client.createSnapshot('vms', source);
    await usable(source);
    const vmWrite: Write = { pattern: 0x92, offset: 3 * MiB, length: MiB };
    const disks = await Promise.all(Array.from({ length: ROUNDS }, () => client.createVirtualDisk('vms', SIZE, snapshot, {}, { strategy: 'performance' })));
    await Promise.all(disks.map((d) => usable(d)));
    const fixes = (await client.checkStorageRepository('vms')).filter((f) => f.type === 'optimize');
    const rounds = await Promise.all(
      disks.map(async (disk) => {
        const fix = fixes.find((f) => f.imageIds.includes(disk))!;
        const [prepared, optimized] = await Promise.allSettled([
          (async () => {
            const vm = await startVm(disk);
            await vm.write(vmWrite);
            await vm.stop();
            await client.teardownImage('vms', disk);
          })(),
          (async () => client.waitForOperation((await client.fixStorageRepository('vms', fix)).operationId))(),
        ]);
        return { disk, prepared, optimized };
      }),
    );
    for (const { disk, prepared, optimized } of rounds) {
      // Prepared first: the fix is stale (the prepare moved the disk's generation) or the disk in use.
      if (optimized.status === 'rejected') expect(['FIX_INVALID', 'IMAGE_IN_USE']).toContain((optimized.reason as { code?: string }).code);
      if (prepared.status === 'rejected') expect((prepared.reason as { code?: string }).code).toBe('IMAGE_BUSY');
      await usable(disk);
      expect(await sameContent(client, 'vms', disk, prepared.status === 'fulfilled' ? base.fork().write(vmWrite) : base)).toBe(true);
    }
    // Whatever is left to optimize, optimizes now, keeping every write.
    for (const fix of (await client.checkStorageRepository('vms')).filter((f) => f.type === 'optimize' && disks.includes(f.imageIds[0]))) await run(fix);
    for (const { disk, prepared } of rounds) {
      expect(await status(disk)).toMatchObject({ status: 'optimized' });
      expect(await sameContent(client, 'vms', disk, prepared.status === 'fulfilled' ? base.fork().write(vmWrite) : base)).toBe(true);
    }
  }, 240_000);
});
