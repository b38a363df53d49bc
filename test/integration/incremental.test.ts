/**
 * Incremental copies (issue 6): the RFC's eight-step flow, what the new overlay holds, the
 * content-compare fallback, a chain of backups restored from the middle, and a cancelled
 * incremental copy that a mend completes. Real qemu-img/qemu-io/qemu-storage-daemon, real
 * Temporal, qemu-io writes standing in for the VM.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageStatus } from '../../api/image-status';
import type { StorageClient } from '../../client/storage-client';
import { diskflowJson } from '../harness/cli';
import { Model, sameContent, Write, writeImage } from '../harness/content';
import { clientFor, startHost, stopAllHosts, TestHost } from '../harness/hosts';
import { imageRecord, qemuProcessesFor, uncleanVolumes } from '../harness/records';
import { localRepository, removeTempDirs } from '../harness/repositories';
import { operationOn } from '../harness/history';
import { eventually } from '../harness/wait';

const MiB = 2 ** 20;
const KiB = 1024;
const SIZE = 256 * MiB;
const HOST = { DISKFLOW_HOST_ID: 'incr-host' };
let host: TestHost;
let client: StorageClient;
let pathA: string;
let pathB: string;

beforeAll(async () => {
  // A limited copy rate, so the large incremental copy of the cancel test lasts a few seconds.
  host = await startHost('incr-host', { DISKFLOW_COPY_RATE_LIMIT: '40M', DISKFLOW_PROGRESS_INTERVAL_MS: '300' });
  client = await clientFor('incr-host');
  pathA = await localRepository(client, 'ia');
  pathB = await localRepository(client, 'ib');
}, 120_000);

afterAll(async () => {
  await client?.close();
  await stopAllHosts();
  removeTempDirs();
});

const usable = (repo: string, id: string) => eventually(() => client.getImageStatus(repo, id), (s) => s.status === 'optimized', 60_000);

/** Step 1-3: a disk written by its "VM". */
async function diskWith(model: Model, ...writes: Write[]): Promise<string> {
  const id = await client.createVirtualDisk('ia', SIZE);
  await usable('ia', id);
  await write(id, model, ...writes);
  return id;
}

async function write(disk: string, model: Model, ...writes: Write[]): Promise<void> {
  await writeImage(client, 'ia', disk, ...writes);
  model.write(...writes);
}

/** A backup: a snapshot copy of the disk in the other repository, based on the previous one. */
async function backup(disk: string, base: string | null = null): Promise<string> {
  const copy = await client.copyImage('ib', disk, base, {}, { kind: 'snapshot' });
  await usable('ib', copy);
  return copy;
}

/** Whether a disk made from the backup holds `model`'s content (the restore, step 8's proof). */
async function restoresTo(backupId: string, model: Model): Promise<boolean> {
  const restored = await client.createVirtualDisk('ib', SIZE, backupId);
  await usable('ib', restored);
  return sameContent(client, 'ib', restored, model);
}

const volumePath = (repoPath: string, imageId: string) => join(repoPath, 'volumes', `${imageRecord(repoPath, imageId).volumeId}.qcow2`);

/** Bytes a qcow2 volume holds itself (depth 0 of `qemu-img map`): not what its backing chain holds. */
function ownBytes(path: string): number {
  const map = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', '-U', path], { encoding: 'utf8' })) as { length: number; depth: number; present: boolean }[];
  return map.filter((e) => e.depth === 0 && e.present).reduce((sum, e) => sum + e.length, 0);
}

/**
 * What every incremental copy of CHANGES must be: an overlay on `base` made by `method`, holding
 * the changed clusters and little else (qcow2 metadata), from which `model` restores.
 */
async function expectIncremental(copy: string, base: string, method: 'bitmap' | 'compare', model: Model): Promise<void> {
  expect(imageRecord(pathB, copy).incremental).toEqual({ baseImageId: base, method });
  const own = ownBytes(volumePath(pathB, copy));
  expect(own).toBeGreaterThanOrEqual(CHANGED);
  expect(own).toBeLessThanOrEqual(CHANGED + 256 * KiB);
  expect(await restoresTo(copy, model)).toBe(true);
}

/** The name of the bitmap counting changes since `copy` (a copy in repository ib). */
const bitmapOf = (copy: string) => imageRecord(pathB, copy).changeTracking!.bitmap;

function bitmapsOf(path: string): string[] {
  const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', '-U', path], { encoding: 'utf8' }));
  return ((info['format-specific']?.data?.bitmaps ?? []) as { name: string }[]).map((b) => b.name);
}

const CHANGES: Write[] = [
  { pattern: 0x51, offset: 0, length: 64 * KiB },
  { pattern: 0x52, offset: 5 * MiB, length: 2 * MiB },
  { pattern: 0x53, offset: 130 * MiB, length: 192 * KiB },
  { pattern: 0x54, offset: 250 * MiB, length: MiB },
];
const CHANGED = CHANGES.reduce((sum, w) => sum + w.length, 0);

describe('incremental copies', () => {
  it('RFC flow, steps 1-8: the second copy, based on the first, holds only the changes, and a disk made from it equals the disk', async () => {
    const model = Model.blank(SIZE);
    // 1-3: run a VM on disk A, write, stop.
    const disk = await diskWith(model, { pattern: 0x41, offset: 0, length: 40 * MiB }, { pattern: 0x42, offset: 128 * MiB, length: 24 * MiB });
    // 4: copy A to repository B (through the CLI, as a user would).
    const first = await diskflowJson<string>(['image', 'copy', 'ib', disk, '--kind', 'snapshot'], HOST);
    await usable('ib', first);
    expect(imageRecord(pathB, first).changeTracking).toMatchObject({ imageId: disk, bitmap: bitmapOf(first), volumeId: imageRecord(pathA, disk).volumeId });
    expect(bitmapsOf(volumePath(pathA, disk))).toEqual([bitmapOf(first)]);
    const atFirst = model.fork();
    // 5-7: run the VM again, write, stop.
    await write(disk, model, ...CHANGES);
    // 8: copy A again, based on the first copy.
    const second = await diskflowJson<string>(['image', 'copy', 'ib', disk, '--base', first, '--kind', 'snapshot'], HOST);
    const status = await eventually(() => diskflowJson<ImageStatus>(['image', 'status', 'ib', second], HOST), (s) => s.status === 'optimized', 60_000);
    expect(status).toMatchObject({ kind: 'snapshot', size: SIZE, stage: { current: 2, total: 2 }, percentComplete: 100 });
    const record = imageRecord(pathB, second);
    expect(record.incremental).toEqual({ baseImageId: first, method: 'bitmap' });
    // The overlay holds the changed clusters and nothing else; its backing is the first copy.
    const own = ownBytes(volumePath(pathB, second));
    expect(own).toBeGreaterThanOrEqual(CHANGED);
    expect(own).toBeLessThanOrEqual(CHANGED + 256 * KiB);
    expect(JSON.parse(execFileSync('qemu-img', ['info', '--output=json', '-U', volumePath(pathB, second)], { encoding: 'utf8' }))['backing-filename']).toBe(
      `${imageRecord(pathB, first).volumeId}.qcow2`,
    );
    // Changes are now counted for the next copy, from the second one.
    expect(bitmapsOf(volumePath(pathA, disk))).toEqual([bitmapOf(second)]);
    expect(await restoresTo(second, model)).toBe(true);
    expect(await restoresTo(first, atFirst)).toBe(true);
    expect(uncleanVolumes(pathB)).toEqual([]);
  });

  it('falls back to comparing content when the base has no usable bitmap: same bytes written, same result', async () => {
    const model = Model.blank(SIZE);
    const disk = await diskWith(model, { pattern: 0x61, offset: 0, length: 64 * MiB });
    const first = await backup(disk);
    // The bitmap is lost (as if another tool removed it): the record alone is never trusted.
    execFileSync('qemu-img', ['bitmap', '--remove', '-f', 'qcow2', volumePath(pathA, disk), bitmapOf(first)]);
    await write(disk, model, ...CHANGES);
    const second = await backup(disk, first);
    await expectIncremental(second, first, 'compare', model);
    // The fallback started tracking again: the next copy uses a bitmap.
    await write(disk, model, { pattern: 0x62, offset: 100 * MiB, length: MiB });
    const third = await backup(disk, second);
    expect(imageRecord(pathB, third).incremental?.method).toBe('bitmap');
    expect(ownBytes(volumePath(pathB, third))).toBe(MiB);
    expect(await restoresTo(third, model)).toBe(true);
  });

  it('falls back after a snapshot moved the disk onto a new volume (writes there are not in the bitmap)', async () => {
    const model = Model.blank(SIZE);
    const disk = await diskWith(model, { pattern: 0x71, offset: 0, length: 16 * MiB });
    const first = await backup(disk);
    await client.createSnapshot('ia', disk);
    await usable('ia', disk);
    await write(disk, model, ...CHANGES);
    await expectIncremental(await backup(disk, first), first, 'compare', model);
  });

  it('a raw disk (performance) holds no bitmap: its incremental copies compare content', async () => {
    const model = Model.blank(SIZE);
    const disk = await client.createVirtualDisk('ia', SIZE, null, {}, { strategy: 'performance' });
    await usable('ia', disk);
    await write(disk, model, { pattern: 0x75, offset: 0, length: 16 * MiB });
    const first = await backup(disk);
    expect(imageRecord(pathB, first).changeTracking).toBeNull();
    await write(disk, model, ...CHANGES);
    await expectIncremental(await backup(disk, first), first, 'compare', model);
  });

  it('bitmaps of copies removed from a repository are dropped by the next copy into it; those of copies elsewhere are kept', async () => {
    const model = Model.blank(SIZE);
    const disk = await diskWith(model, { pattern: 0x85, offset: 0, length: MiB });
    const gone = await backup(disk);
    const elsewhere = await client.copyImage('ia', disk);
    await usable('ia', elsewhere);
    const kept = imageRecord(pathA, elsewhere).changeTracking!.bitmap;
    expect(bitmapsOf(volumePath(pathA, disk)).sort()).toEqual([bitmapOf(gone), kept].sort());
    await client.removeImage('ib', gone);
    const next = await backup(disk);
    expect(bitmapsOf(volumePath(pathA, disk)).sort()).toEqual([bitmapOf(next), kept].sort());
  });

  it('refuses a base that is not a snapshot in the target repository, changing nothing', async () => {
    const model = Model.blank(SIZE);
    const disk = await diskWith(model, { pattern: 0x81, offset: 0, length: MiB });
    const plainCopy = await client.copyImage('ib', disk);
    await usable('ib', plainCopy);
    const before = (await client.listImages('ib')).length;
    await expect(client.copyImage('ib', disk, plainCopy)).rejects.toMatchObject({ code: 'NOT_A_SNAPSHOT' });
    await expect(client.copyImage('ib', disk, '00000000-0000-4000-8000-000000000000')).rejects.toMatchObject({ code: 'IMAGE_NOT_FOUND' });
    expect((await client.listImages('ib')).length).toBe(before);
  });

  it('a chain of five backups: a disk made from the third holds the content of that time; removing and merging older ones changes no newer one', async () => {
    const model = Model.blank(SIZE);
    const disk = await diskWith(model, { pattern: 0x90, offset: 0, length: 32 * MiB });
    const backups: string[] = [];
    const states: Model[] = [];
    for (let i = 0; i < 5; i++) {
      if (i > 0) await write(disk, model, { pattern: 0x90 + i, offset: i * 7 * MiB, length: 3 * MiB }, { pattern: 0xa0 + i, offset: 200 * MiB + i * MiB, length: 64 * KiB });
      backups.push(await backup(disk, backups[i - 1] ?? null));
      states.push(model.fork());
    }
    expect(backups.slice(1).map((id) => imageRecord(pathB, id).incremental?.method)).toEqual(['bitmap', 'bitmap', 'bitmap', 'bitmap']);
    expect(await restoresTo(backups[2], states[2])).toBe(true);
    // Old backups go: removed, then every fix a check offers for them runs (clean forgets
    // them; the fifth, alone in needing its volume and the removed fourth's, is merged).
    const volumesOfFifth = imageRecord(pathB, backups[4]).volumeId;
    for (const i of [0, 1, 3]) await client.removeImage('ib', backups[i], { autoFix: false });
    const ran = new Set<string>();
    for (let round = 0; round < 3; round++) {
      const fixes = (await client.checkStorageRepository('ib')).filter((f) => f.imageIds.some((id) => backups.includes(id)));
      if (!fixes.length) break;
      for (const fix of fixes) {
        const { operationId } = await client.fixStorageRepository('ib', fix);
        await client.waitForOperation(operationId);
        ran.add(fix.type);
      }
    }
    expect([...ran].sort()).toEqual(['clean', 'merge']);
    expect(imageRecord(pathB, backups[4]).volumeId).not.toBe(volumesOfFifth);
    expect(uncleanVolumes(pathB)).toEqual([]);
    for (const i of [2, 4]) expect(await restoresTo(backups[i], states[i])).toBe(true);
    // ... and the chain goes on from the newest.
    await write(disk, model, { pattern: 0xb0, offset: 9 * MiB, length: MiB });
    const sixth = await backup(disk, backups[4]);
    expect(ownBytes(volumePath(pathB, sixth))).toBe(MiB);
    expect(imageRecord(pathB, sixth).incremental?.method).toBe('bitmap');
    expect(await restoresTo(sixth, model)).toBe(true);
  });

  /**
   * A disk backed up once, then about 160 MiB changed (four seconds at the host's copy rate),
   * and its incremental copy started and a tenth of the way through its data stage.
   */
  async function incrementalCopyUnderWay(basePattern: number, changePattern: number) {
    const model = Model.blank(SIZE);
    const disk = await diskWith(model, { pattern: basePattern, offset: 0, length: 8 * MiB });
    const first = await backup(disk);
    await write(disk, model, ...[0, 1, 2, 3, 4].map((i) => ({ pattern: changePattern + i, offset: 16 * MiB + i * 40 * MiB, length: 32 * MiB })));
    const copy = await client.copyImage('ib', disk, first, {}, { kind: 'snapshot' });
    await eventually(() => client.getImageStatus('ib', copy), (s) => s.status === 'broken' && s.stage?.current === 1 && s.percentComplete > 10, 30_000);
    return { model, copy, volumeId: imageRecord(pathB, copy).volumeId as string, handle: await copyWorkflow(copy) };
  }

  it('cancelled mid-copy, leaves no daemon or socket behind; a mend then completes it correctly', async () => {
    const { model, copy, volumeId, handle } = await incrementalCopyUnderWay(0xc1, 0xd0);
    expect(qemuProcessesFor(volumeId).length).toBe(1);
    await handle.cancel();
    const stopped = await eventually(() => client.getImageStatus('ib', copy), (s) => s.lastError?.includes('cancelled') ?? false, 10_000);
    expect(stopped.status).toBe('broken');
    expect(qemuProcessesFor(volumeId)).toEqual([]);
    expect(readdirSync(tmpdir()).filter((name) => name.startsWith('diskflow-qsd-'))).toEqual([]);
    // The mend a check offers starts the incremental copy again, into a fresh overlay.
    const [mend] = (await client.checkStorageRepository('ib')).filter((f) => f.type === 'mend' && f.imageIds.includes(copy));
    expect(mend).toBeDefined();
    const { operationId } = await client.fixStorageRepository('ib', mend);
    await client.waitForOperation(operationId);
    await usable('ib', copy);
    expect(imageRecord(pathB, copy).incremental?.method).toBe('bitmap');
    expect(await restoresTo(copy, model)).toBe(true);
  });

  it('paused, stops its daemon; resumed, starts again into a fresh overlay and ends correct', async () => {
    const { model, copy, volumeId, handle } = await incrementalCopyUnderWay(0xb1, 0xb8);
    await handle.signal('pause');
    await eventually(() => client.getImageStatus('ib', copy), (s) => s.lastError?.includes('paused') ?? false, 10_000);
    expect(qemuProcessesFor(volumeId)).toEqual([]);
    expect(readdirSync(tmpdir()).filter((name) => name.startsWith('diskflow-qsd-'))).toEqual([]);
    await handle.signal('resume');
    await usable('ib', copy);
    await handle.result();
    expect(imageRecord(pathB, copy).incremental?.method).toBe('bitmap');
    expect(await restoresTo(copy, model)).toBe(true);
  });

  it('survives its worker being killed mid-copy: the daemon dies with it, and the restarted copy ends correct', async () => {
    const model = Model.blank(SIZE);
    const disk = await diskWith(model, { pattern: 0xe1, offset: 0, length: 8 * MiB });
    const first = await backup(disk);
    await write(disk, model, ...[0, 1, 2, 3, 4].map((i) => ({ pattern: 0xe8 + i, offset: 16 * MiB + i * 40 * MiB, length: 32 * MiB })));
    const copy = await client.copyImage('ib', disk, first, {}, { kind: 'snapshot' });
    await eventually(() => client.getImageStatus('ib', copy), (s) => s.status === 'broken' && s.stage?.current === 1 && s.percentComplete > 10, 30_000);
    const volumeId = imageRecord(pathB, copy).volumeId;
    await host.stop('SIGKILL');
    await eventually(async () => qemuProcessesFor(volumeId), (p) => p.length === 0, 5_000);
    await host.restart();
    await eventually(() => client.getImageStatus('ib', copy), (s) => s.status === 'optimized', 90_000);
    expect(imageRecord(pathB, copy).incremental?.method).toBe('bitmap');
    expect(uncleanVolumes(pathB)).toEqual([]);
    expect(readdirSync(tmpdir()).filter((name) => name.startsWith('diskflow-qsd-'))).toEqual([]);
    expect(await restoresTo(copy, model)).toBe(true);
  }, 120_000);
});

describe('an incremental copy killed at any instant (failpoints) is mended from what is on disk', () => {
  it.each(['persist.image-created', 'incremental.overlay-created', 'incremental.data-copied', 'copy.before-legal'])(
    'killed at %s, forgotten by Temporal: the mend a check offers ends it correct',
    async (point) => {
      const model = Model.blank(SIZE);
      const disk = await diskWith(model, { pattern: 0xf1, offset: 0, length: 8 * MiB });
      const first = await backup(disk);
      await write(disk, model, ...CHANGES);
      const before = new Set((await client.listImages('ib')).map((i) => i.imageId));
      await host.restart({ DISKFLOW_FAILPOINTS: point });
      const started = client.copyImage('ib', disk, first, {}, { kind: 'snapshot' }).catch(() => undefined);
      await Promise.race([host.exited(), new Promise((_, reject) => setTimeout(() => reject(new Error(`failpoint ${point} was not reached`)), 60_000))]);
      for await (const wf of client.temporal.workflow.list({ query: `ExecutionStatus = 'Running'` })) {
        await client.temporal.workflow.getHandle(wf.workflowId).terminate('forgotten: healing from storage alone').catch(() => undefined);
      }
      await host.restart({ DISKFLOW_FAILPOINTS: '' });
      await started;
      const copy = (await client.listImages('ib')).find((i) => !before.has(i.imageId))!.imageId;
      expect((await client.getImageStatus('ib', copy)).status).toBe('broken');
      const fixes = (await client.checkStorageRepository('ib')).filter((f) => f.imageIds.includes(copy));
      expect(fixes.map((f) => f.type)).toEqual(['mend']);
      const { operationId } = await client.fixStorageRepository('ib', fixes[0]);
      await client.waitForOperation(operationId);
      await usable('ib', copy);
      expect(uncleanVolumes(pathB)).toEqual([]);
      await expectIncremental(copy, first, 'bitmap', model);
    },
    120_000,
  );
});

const copyWorkflow = (imageId: string) => operationOn(client, 'copyImage', imageId);
