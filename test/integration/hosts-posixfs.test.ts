/**
 * Three hosts (three `diskflow worker` processes, each with its own DISKFLOW_HOME) sharing one
 * posixfs-1.0 repository: an xfs file system in a sparse file that every host mounts itself
 * with `mount -t xfs -o loop <file> <its home>/mnt/...`.
 *
 * Why this is real shared storage and safe: mount(8) finds the loop device already set up over
 * the same file and re-uses it, and the kernel gives a second mount of a block device the
 * superblock of the first: the three mount points are one xfs instance, one page cache,
 * coherent like the mounts of one NFS export on many clients. (Two loop devices over one file
 * with `-o nouuid` would be two xfs instances over the same blocks, incoherent and corrupting.)
 * What the hosts share is what hosts share in the field: files, link(2), rename(2), and the
 * lease files of ../../activities/repository/lease-lock.ts, across processes.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountArgs, mountPointFor } from '../../activities/host/mounts';
import { createFileExclusive } from '../../activities/repository/atomic-file';
import { nfsMountSpec } from '../../activities/repository/formats/nfs';
import { DiskflowError } from '../../api/errors';
import type { StorageClient } from '../../client/storage-client';
import { diskflow } from '../harness/cli';
import { Model, sameContent, writeImage } from '../harness/content';
import { clientFor, startHost, stopAllHosts, TestHost } from '../harness/hosts';
import { cleanUpMounts, mountsUnder, xfsImage } from '../harness/mounts';
import { imageRecord } from '../harness/records';
import { removeTempDirs } from '../harness/repositories';
import { operationsOn, stepsOf } from '../harness/history';
import { eventually } from '../harness/wait';

const MiB = 2 ** 20;
const HOSTS = ['h1', 'h2', 'h3'] as const;
type HostId = (typeof HOSTS)[number];
const LEASE_TTL_MS = 3000;

let file: string;
let params: { spec: string; vfsType: string; mountOptions: string };
const hosts = {} as Record<HostId, TestHost>;
const clients = {} as Record<HostId, StorageClient>;
let repoUuid: string;

/** Where a host sees the repository. */
const mountOf = (h: HostId) => mountPointFor(hosts[h].home, { vfsType: 'xfs', spec: file });

beforeAll(async () => {
  file = xfsImage('3G');
  params = { spec: file, vfsType: 'xfs', mountOptions: 'loop' };
  const env = { DISKFLOW_LEASE_TTL_MS: String(LEASE_TTL_MS), DISKFLOW_COPY_CHUNK: '8M', DISKFLOW_COPY_RATE_LIMIT: '32M', DISKFLOW_MAX_CONCURRENT_STEPS: '3' };
  await Promise.all(HOSTS.map(async (h) => (hosts[h] = await startHost(h, env))));
  for (const h of HOSTS) clients[h] = await clientFor(h);
  await clients.h1.initStorageRepository('posixfs-1.0', params);
  for (const h of HOSTS) await clients[h].connectStorageRepository('shared', 'posixfs-1.0', params);
  repoUuid = JSON.parse(readFileSync(join(mountOf('h1'), 'diskflow-repository.json'), 'utf8')).uuid;
});

afterAll(async () => {
  for (const c of Object.values(clients)) await c.close().catch(() => undefined);
  const homes = Object.values(hosts).map((h) => h.home);
  await Promise.all(Object.values(hosts).map((h) => h.stop('SIGKILL').catch(() => undefined)));
  cleanUpMounts(homes);
  await stopAllHosts();
  removeTempDirs();
  // Nothing of ours is left mounted or attached.
  for (const home of homes) expect(mountsUnder(home)).toEqual([]);
});

const usable = (c: StorageClient, id: string, timeoutMs = 60_000) =>
  eventually(() => c.getImageStatus('shared', id), (s) => s.status === 'optimized' || s.status === 'degraded', timeoutMs);

/** Where each activity of the operation of `type` on an image ran. */
const stepsOn = async (c: StorageClient, imageId: string, type: string) => stepsOf(c, (await operationsOn(c, type, imageId))[0]);

describe('posixfs-1.0 shared by three hosts', () => {
  it('each host mounts the repository under its own DISKFLOW_HOME, all on one loop device', () => {
    for (const h of HOSTS) expect(mountsUnder(hosts[h].home)).toEqual([mountOf(h)]);
    expect(execFileSync('losetup', ['-j', file], { encoding: 'utf8' }).trim().split('\n')).toHaveLength(1);
    for (const h of HOSTS) expect(JSON.parse(readFileSync(join(mountOf(h), 'diskflow-repository.json'), 'utf8')).uuid).toBe(repoUuid);
  });

  it('routing: the persist step runs on the caller\'s host, fixes on any host with the repository, or on the host the engine chose', async () => {
    const disk = await clients.h2.createVirtualDisk('shared', 16 * MiB);
    await usable(clients.h2, disk);
    const steps = await stepsOn(clients.h2, disk, 'createVirtualDisk');
    // The persist step is a local activity when h2's worker ran the workflow task (it answers
    // `here: true`), else an activity on h2's queue; either way h2 ran it, and only once.
    const persisted = steps.filter((s) => (s.activity === 'resolveAndPersistHere' && (s.result as { here: boolean }).here) || s.activity === 'resolveAndPersist');
    expect(persisted).toHaveLength(1);
    expect(persisted[0]).toMatchObject(persisted[0].local ? { host: 'h2' } : { taskQueue: 'diskflow.host.h2', host: 'h2' });
    const mend = steps.find((s) => s.activity === 'mendImage')!;
    expect(mend.taskQueue).toBe(`diskflow.repo.${repoUuid}`);
    expect(HOSTS).toContain(mend.host);

    // autoFix off, then the engine puts the fix on h3.
    const later = await clients.h1.createVirtualDisk('shared', 16 * MiB, null, {}, { autoFix: false });
    const fix = (await clients.h1.checkStorageRepository('shared')).find((f) => f.type === 'mend' && f.imageIds.includes(later))!;
    expect(fix).toBeDefined();
    const { operationId } = await clients.h1.fixStorageRepository('shared', fix, { hostId: 'h3' });
    await clients.h1.waitForOperation(operationId);
    expect((await usable(clients.h1, later)).hostId).toBe('h3');
    const fixSteps = await stepsOn(clients.h1, later, 'fixStorageRepository');
    const fixMend = fixSteps.find((s) => s.activity === 'mendImage')!;
    expect(fixMend.taskQueue).toBe('diskflow.host.h3');
    expect(fixMend.host).toBe('h3');
  });

  it('a fix put on a host that does not have the repository connected is refused clearly, before anything is claimed', async () => {
    const h4 = await startHost('h4');
    try {
      const id = await clients.h1.createVirtualDisk('shared', 16 * MiB, null, {}, { autoFix: false });
      const fix = (await clients.h1.checkStorageRepository('shared')).find((f) => f.type === 'mend' && f.imageIds.includes(id))!;
      const refused = await clients.h1.fixStorageRepository('shared', fix, { hostId: 'h4' }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(DiskflowError);
      expect(refused).toMatchObject({ code: 'REPO_NOT_CONNECTED' });
      expect((refused as Error).message).toMatch(/host h4 does not have repository shared connected/);
      // Nothing was claimed: the same fix still runs elsewhere.
      const { operationId } = await clients.h1.fixStorageRepository('shared', fix);
      await clients.h1.waitForOperation(operationId);
      await usable(clients.h1, id);
    } finally {
      await h4.stop();
    }
  });

  it('three hosts updating one image record at once lose no update (lease locks across hosts)', async () => {
    const disk = await clients.h1.createVirtualDisk('shared', 16 * MiB);
    await usable(clients.h1, disk);
    const start = imageRecord(mountOf('h1'), disk).generation;
    const ROUNDS = 4;
    for (let round = 0; round < ROUNDS; round++) {
      // prepareImage adds the host to the record's `prepared`, teardownImage removes it: both read-modify-write.
      await Promise.all(HOSTS.map((h) => clients[h].prepareImage('shared', disk)));
      expect(Object.keys(imageRecord(mountOf('h2'), disk).prepared).sort()).toEqual([...HOSTS]);
      await Promise.all(HOSTS.map((h) => clients[h].teardownImage('shared', disk)));
      expect(imageRecord(mountOf('h3'), disk).prepared).toEqual({});
    }
    // Every one of the 2 x 3 x ROUNDS updates was applied on top of the one before it.
    expect(imageRecord(mountOf('h1'), disk).generation).toBe(start + 2 * HOSTS.length * ROUNDS);
  }, 120_000);

  it('three hosts create, copy and remove images at once: no lost update, every image correct, nothing left to clean or mend', async () => {
    const SIZE = 32 * MiB;
    // One disk everybody copies at once (concurrent updates of one record from three hosts).
    const common = await clients.h1.createVirtualDisk('shared', SIZE);
    await usable(clients.h1, common);
    const commonModel = Model.blank(SIZE).write({ pattern: 0x5a, offset: 0, length: 4 * MiB });
    await writeImage(clients.h1, 'shared', common, { pattern: 0x5a, offset: 0, length: 4 * MiB });

    const perHost = await Promise.all(
      HOSTS.map(async (h, i) => {
        const c = clients[h];
        const ids = await Promise.all([0, 1, 2].map(() => c.createVirtualDisk('shared', SIZE, null, { host: h })));
        await Promise.all(ids.map((id) => usable(c, id)));
        const models: Model[] = [];
        for (const [j, id] of ids.entries()) {
          const w = { pattern: 0x10 + i * 3 + j, offset: (j + 1) * MiB, length: 2 * MiB };
          await writeImage(c, 'shared', id, w);
          models.push(Model.blank(SIZE).write(w));
        }
        return { h, c, ids, models };
      }),
    );
    // At once, from every host: copy two of its disks and the common one, remove its third.
    const copies = await Promise.all(
      perHost.map(async ({ c, ids, models }) => {
        const [a, b, doomed] = ids;
        const made = await Promise.all([c.copyImage('shared', a), c.copyImage('shared', b), c.copyImage('shared', common), c.removeImage('shared', doomed)]);
        return [
          { id: made[0] as string, model: models[0] },
          { id: made[1] as string, model: models[1] },
          { id: made[2] as string, model: commonModel },
        ];
      }),
    );
    const c = clients.h1;
    for (const { id, model } of copies.flat()) {
      await usable(c, id, 120_000);
      expect(await sameContent(c, 'shared', id, model)).toBe(true);
    }
    for (const { ids, models } of perHost) {
      for (const [j, id] of ids.slice(0, 2).entries()) expect(await sameContent(c, 'shared', id, models[j])).toBe(true);
    }
    expect(await sameContent(c, 'shared', common, commonModel)).toBe(true);
    const listed = new Set((await c.listImages('shared')).map((s) => s.imageId));
    for (const { ids } of perHost) {
      expect(listed.has(ids[2])).toBe(false);
      expect(listed.has(ids[0]) && listed.has(ids[1])).toBe(true);
    }
    // Work spread: copies ran on more than one host.
    const ranOn = new Set((await Promise.all(copies.flat().map(({ id }) => c.getImageStatus('shared', id)))).map((s) => s.hostId));
    expect(ranOn.size).toBeGreaterThan(1);
    const fixes = await eventually(() => c.checkStorageRepository('shared'), (f) => !f.some((x) => x.type === 'clean' || x.type === 'mend'), 60_000);
    expect(fixes.filter((f) => f.type === 'clean' || f.type === 'mend')).toEqual([]);
  }, 300_000);

  it('a lease left by a killed holder is taken over after DISKFLOW_LEASE_TTL_MS, and the operation goes on', async () => {
    const c = clients.h2;
    const disk = await c.createVirtualDisk('shared', 16 * MiB);
    await usable(c, disk);
    // A holder that died while holding the image's lock: a lease nobody renews.
    const dir = join(mountOf('h2'), 'locks', `image_${disk}`);
    mkdirSync(dir, { recursive: true });
    const top = Math.max(0, ...readdirSync(dir).map((n) => Number.parseInt(n, 10)).filter(Number.isFinite));
    const dead = { schema: 'diskflow.lease/1', holder: { hostId: 'dead-host', pid: 999999 }, state: 'held', acquiredAt: '', renewedAt: '', renewals: 7 };
    expect(await createFileExclusive(join(dir, `${top + 1}.lease`), JSON.stringify(dead), join(mountOf('h2'), 'tmp'))).toBe(true);
    const started = Date.now();
    await c.removeImage('shared', disk);
    await eventually(() => c.listImages('shared'), (list) => !list.some((s) => s.imageId === disk), 60_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(LEASE_TTL_MS - 100);
    // The dead holder's lease was replaced by a live holder's, now released.
    const files = readdirSync(dir);
    expect(files).not.toContain(`${top + 1}.lease`);
    const now = JSON.parse(readFileSync(join(dir, files.sort().at(-1)!), 'utf8'));
    expect(now.holder.hostId).not.toBe('dead-host');
    expect(now.state).toBe('released');
  }, 120_000);

  it('a host killed mid-copy: the step is retried on another host that has the repository connected, and the copy ends correct', async () => {
    const c = clients.h1;
    const SIZE = 256 * MiB;
    const source = await c.createVirtualDisk('shared', SIZE);
    await usable(c, source);
    const writes = [0, 1, 2].map((k) => ({ pattern: 0x70 + k, offset: k * 64 * MiB, length: 48 * MiB }));
    await writeImage(c, 'shared', source, ...writes);
    const model = Model.blank(SIZE).write(...writes);
    const copy = await c.copyImage('shared', source);
    // Find the host copying (at 32 MiB/s the copy takes about 5 s) and kill it.
    const running = await eventually(() => c.getImageStatus('shared', copy), (s) => s.status === 'broken' && s.hostId !== null && s.percentComplete > 0, 30_000);
    const victim = running.hostId as HostId;
    await hosts[victim].stop('SIGKILL');
    const survivor = clients[HOSTS.find((h) => h !== victim)!];
    const done = await usable(survivor, copy, 120_000);
    expect(done.hostId).not.toBe(victim);
    expect(await sameContent(survivor, 'shared', copy, model)).toBe(true);
    const steps = (await stepsOn(survivor, copy, 'copyImage')).filter((s) => s.activity === 'mendImage');
    expect(steps.at(-1)!.attempt).toBeGreaterThan(1);
    expect(steps.at(-1)!.host).not.toBe(victim);
    // The killed host comes back on its own home and re-uses the mount it left (one mount, not two).
    await hosts[victim].restart();
    expect(mountsUnder(hosts[victim].home)).toEqual([mountOf(victim)]);
    expect(hosts[victim].logs.some((l) => l.msg === 'repository reconnected')).toBe(true);
  }, 240_000);

  it('a step whose only host is gone waits visibly (progress says for what) and goes on when the host is back', async () => {
    const lonelyFile = xfsImage('1G');
    const lonely = { spec: lonelyFile, vfsType: 'xfs', mountOptions: 'loop' };
    const c = clients.h1;
    await c.initStorageRepository('posixfs-1.0', lonely);
    await c.connectStorageRepository('lonely', 'posixfs-1.0', lonely);
    const SIZE = 192 * MiB;
    const source = await c.createVirtualDisk('lonely', SIZE);
    await eventually(() => c.getImageStatus('lonely', source), (s) => s.status === 'optimized');
    const writes = [{ pattern: 0x33, offset: 0, length: 96 * MiB }];
    await writeImage(c, 'lonely', source, ...writes);
    const model = Model.blank(SIZE).write(...writes);
    const copy = await c.copyImage('lonely', source);
    await eventually(() => c.getImageStatus('lonely', copy), (s) => s.percentComplete > 0, 30_000);
    const workflowId = await eventually(
      async () => {
        for await (const wf of c.temporal.workflow.list({ query: `DiskflowImage = '${copy}' AND WorkflowType = 'copyImage'` })) return wf.workflowId;
        return '';
      },
      (id) => id !== '',
    );
    await hosts.h1.stop('SIGKILL');
    // h2 and h3 answer the query; neither has `lonely` connected, so the retried step waits.
    const progress = await eventually(() => clients.h2.operationProgress(workflowId), (p) => !!p?.waitingFor, 60_000);
    expect(progress!.waitingFor).toMatch(/a host with repository .* connected \(task queue diskflow\.repo\..*\), attempt 2/);
    await hosts.h1.restart();
    await eventually(() => c.getImageStatus('lonely', copy), (s) => s.status === 'optimized', 120_000);
    expect(await sameContent(c, 'lonely', copy, model)).toBe(true);
    await c.disconnectStorageRepository('lonely');
    expect(mountsUnder(hosts.h1.home)).toEqual([mountOf('h1')]);
  }, 240_000);

  it('a host at its DISKFLOW_MAX_CONCURRENT_STEPS takes no more steps; a fix waiting for one says so in `diskflow repo fix`', async () => {
    const h5 = await startHost('h5', { DISKFLOW_MAX_CONCURRENT_STEPS: '1', DISKFLOW_COPY_RATE_LIMIT: '8M', DISKFLOW_COPY_CHUNK: '8M' });
    const c = await clientFor('h5');
    try {
      const solo = { spec: xfsImage('1G'), vfsType: 'xfs', mountOptions: 'loop' };
      await c.initStorageRepository('posixfs-1.0', solo);
      await c.connectStorageRepository('solo', 'posixfs-1.0', solo);
      const source = await c.createVirtualDisk('solo', 128 * MiB);
      await eventually(() => c.getImageStatus('solo', source), (s) => s.status === 'optimized');
      await writeImage(c, 'solo', source, { pattern: 0x44, offset: 0, length: 96 * MiB });
      const blank = await c.createVirtualDisk('solo', 16 * MiB, null, {}, { autoFix: false });
      // A copy of about 12 s takes h5's only slot.
      const copy = await c.copyImage('solo', source);
      await eventually(() => c.getImageStatus('solo', copy), (s) => s.percentComplete > 0, 30_000);
      const fixed = await diskflow(['repo', 'fix', 'solo', '--type', 'mend'], { DISKFLOW_HOST_ID: 'h5' });
      expect(fixed.code).toBe(0);
      expect(fixed.stderr).toMatch(/mend: waiting for a host with repository [0-9a-f-]+ connected \(task queue diskflow\.repo\.[0-9a-f-]+\)/);
      // The mend ran after the copy had freed the slot.
      const [copied, mended] = await Promise.all([c.getImageStatus('solo', copy), c.getImageStatus('solo', blank)]);
      expect(copied.status).toBe('optimized');
      expect(mended.status).toBe('optimized');
      expect(imageRecord(mountPointFor(h5.home, { vfsType: 'xfs', spec: solo.spec }), blank).updatedAt >= imageRecord(mountPointFor(h5.home, { vfsType: 'xfs', spec: solo.spec }), copy).updatedAt).toBe(true);
      await c.disconnectStorageRepository('solo');
      expect(mountsUnder(h5.home)).toEqual([]);
    } finally {
      await c.close();
      await h5.stop();
    }
  }, 180_000);

  it('nfs-1.0 builds `mount -t nfs -o nosuid,nodev,<options> server:/export <point>`; without an NFS client the connect fails clearly and leaves nothing', async () => {
    const spec = nfsMountSpec({ server: 'filer.example', export: '/exports/vm', mountOptions: 'vers=4.2,hard' });
    expect(mountArgs(spec, '/home/x/mnt/p')).toEqual(['-t', 'nfs', '-o', 'nosuid,nodev,vers=4.2,hard', 'filer.example:/exports/vm', '/home/x/mnt/p']);
    expect(mountArgs(nfsMountSpec({ server: '10.0.0.1', export: '/e' }), '/p')).toEqual(['-t', 'nfs', '-o', 'nosuid,nodev', '10.0.0.1:/e', '/p']);
    const before = readFileSync(join(hosts.h2.home, 'connections.json'), 'utf8');
    const failed = await clients.h2.connectStorageRepository('filer', 'nfs-1.0', { server: '127.0.0.1', export: '/nothing', mountOptions: 'vers=4.2' }).catch((e: unknown) => e);
    expect(failed).toMatchObject({ code: 'STORAGE_ERROR' });
    expect((failed as Error).message).toMatch(/could not mount 127\.0\.0\.1:\/nothing \(nfs\)/);
    expect(readFileSync(join(hosts.h2.home, 'connections.json'), 'utf8')).toBe(before);
    expect(mountsUnder(hosts.h2.home)).toEqual([mountOf('h2')]);
    expect(readdirSync(join(hosts.h2.home, 'mnt')).filter((n) => n.startsWith('nfs_'))).toEqual([]);
  });

  it('bad connection parameters are refused with INVALID_ARGUMENT and nothing is mounted or recorded', async () => {
    const before = readFileSync(join(hosts.h3.home, 'connections.json'), 'utf8');
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['posixfs-1.0', { ...params, mountOptions: 'loop,exec' }, /mountOptions/],
      ['posixfs-1.0', { ...params, spec: '-oremount' }, /spec/],
      ['posixfs-1.0', { ...params, vfsType: 'xfs;rm' }, /vfsType/],
      ['posixfs-1.0', { spec: file }, /vfsType/],
      ['nfs-1.0', { server: 'bad host', export: '/e' }, /server/],
      ['nfs-1.0', { server: 'filer', export: 'relative' }, /export/],
    ];
    for (const [format, connectionParameters, field] of cases) {
      const refused = await clients.h3.connectStorageRepository('bad', format as 'posixfs-1.0', connectionParameters).catch((e: unknown) => e);
      expect(refused, JSON.stringify(connectionParameters)).toMatchObject({ code: 'INVALID_ARGUMENT' });
      expect((refused as Error).message).toMatch(field);
    }
    // A file system that is not a diskflow repository: mounted to look, refused, unmounted.
    const empty = xfsImage('512M');
    const notRepo = await clients.h3.connectStorageRepository('bad', 'posixfs-1.0', { spec: empty, vfsType: 'xfs', mountOptions: 'loop' }).catch((e: unknown) => e);
    expect(notRepo).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(readFileSync(join(hosts.h3.home, 'connections.json'), 'utf8')).toBe(before);
    expect(mountsUnder(hosts.h3.home)).toEqual([mountOf('h3')]);
    // init of a file system that holds something else is refused and changes nothing.
    const refusedInit = await clients.h3.initStorageRepository('posixfs-1.0', params).catch((e: unknown) => e);
    expect(refusedInit).toMatchObject({ code: 'REPO_NOT_EMPTY' });
    expect(existsSync(join(mountOf('h3'), 'diskflow-repository.json'))).toBe(true);
  });

  it('a worker that stops leaves its mount (VMs may use it) and its restart re-uses it; disconnect unmounts; connect mounts again', async () => {
    const disk = await clients.h3.createVirtualDisk('shared', MiB);
    await usable(clients.h3, disk);
    await hosts.h3.restart();
    expect(mountsUnder(hosts.h3.home)).toEqual([mountOf('h3')]);
    expect((await clients.h3.listImages('shared')).map((s) => s.imageId)).toContain(disk);
    // As an operator does it, with the CLI.
    expect((await diskflow(['repo', 'disconnect', 'shared', '--host', 'h3'])).code).toBe(0);
    expect(mountsUnder(hosts.h3.home)).toEqual([]);
    const connect = await diskflow(['repo', 'connect', 'shared', 'posixfs-1.0', '--param', `spec=${file}`, '--param', 'vfsType=xfs', '--param', 'mountOptions=loop', '--host', 'h3']);
    expect(connect.stderr).toBe('');
    expect(connect.code).toBe(0);
    expect(mountsUnder(hosts.h3.home)).toEqual([mountOf('h3')]);
  });
});
