import { statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Fix } from '../../api/image-status';
import type { StorageClient } from '../../client/storage-client';
import { diskflow, diskflowJson } from '../harness/cli';
import { chainOf, Model, qcow2ChainFiles, sameContent, writeImage } from '../harness/content';
import { clientFor, startHost, stopAllHosts } from '../harness/hosts';
import { imageRecord, uncleanVolumes, volumeFiles } from '../harness/records';
import { localRepository, removeTempDirs, snapshotTree } from '../harness/repositories';
import { eventually } from '../harness/wait';

const MiB = 2 ** 20;
const SIZE = 32 * MiB;
let client: StorageClient;
let path: string;

beforeAll(async () => {
  await startHost('fix-host', { DISKFLOW_MAX_CHAIN: '3', DISKFLOW_FIX_KEY: 'test-cluster-key-at-least-thirty-two-bytes' });
  client = await clientFor('fix-host');
  path = await localRepository(client, 'fx');
  await localRepository(client, 'other');
});

afterAll(async () => {
  await client?.close();
  await stopAllHosts();
  removeTempDirs();
});

const status = (id: string, repo = 'fx') => client.getImageStatus(repo, id);
const usable = (id: string, s: 'optimized' | 'degraded' = 'optimized', repo = 'fx') => eventually(() => status(id, repo), (x) => x.status === s);
const run = async (fix: Fix, options = {}) => {
  const { operationId } = await client.fixStorageRepository('fx', fix, options);
  await client.waitForOperation(operationId);
  return operationId;
};
const fixesFor = async (id: string, type?: Fix['type']) => (await client.checkStorageRepository('fx')).filter((f) => f.imageIds.includes(id) && (!type || f.type === type));

async function diskWith(model: Model, ...writes: Parameters<Model['write']>): Promise<string> {
  const id = await client.createVirtualDisk('fx', SIZE);
  await usable(id);
  await writeImage(client, 'fx', id, ...writes);
  model.write(...writes);
  return id;
}

describe('check and fix', () => {
  it('after a removal with autoFix off, check lists a clean fix with the bytes it frees; running it frees them', async () => {
    const disk = await diskWith(Model.blank(SIZE), { pattern: 0x11, offset: 0, length: 8 * MiB });
    const volume = imageRecord(path, disk).volumeId;
    const allocated = statSync(join(path, 'volumes', `${volume}.qcow2`)).blocks * 512;
    await client.removeImage('fx', disk, { autoFix: false });
    const [clean] = await fixesFor(disk, 'clean');
    expect(clean).toMatchObject({ type: 'clean', imageIds: [disk], bytes: allocated });
    expect(clean.description).toContain(disk);
    await run(clean);
    expect(volumeFiles(path).some((f) => f.startsWith(volume))).toBe(false);
    expect((await client.checkStorageRepository('fx')).filter((f) => f.type === 'clean')).toEqual([]);
  });

  it('a copy made with autoFix off is broken and has a mend fix that completes it with the right data', async () => {
    const model = Model.blank(SIZE);
    const disk = await diskWith(model, { pattern: 0x21, offset: 4 * MiB, length: 12 * MiB });
    const copy = await client.copyImage('fx', disk, null, {}, { autoFix: false });
    expect((await status(copy)).status).toBe('broken');
    const [mend] = await fixesFor(copy, 'mend');
    expect(mend.description).toContain('copy');
    expect(mend.bytes).toBe(SIZE);
    await run(mend);
    expect((await status(copy)).status).toBe('optimized');
    expect(await sameContent(client, 'fx', copy, model)).toBe(true);
    expect(await fixesFor(copy)).toEqual([]);
  });

  it('a fix whose data has one character changed is refused with FIX_INVALID, and nothing changes', async () => {
    const disk = await client.createVirtualDisk('fx', SIZE, null, {}, { autoFix: false });
    const [mend] = await fixesFor(disk, 'mend');
    const before = snapshotTree(path);
    const at = Math.floor(mend.data.length / 3);
    const altered = { ...mend, data: mend.data.slice(0, at) + (mend.data[at] === 'A' ? 'B' : 'A') + mend.data.slice(at + 1) };
    await expect(client.fixStorageRepository('fx', altered)).rejects.toMatchObject({ code: 'FIX_INVALID' });
    const forged = { ...mend, data: `${Buffer.from(JSON.stringify({ v: 1, plan: { type: 'clean', images: {} } })).toString('base64url')}.c2lnbmF0dXJl` };
    await expect(client.fixStorageRepository('fx', forged)).rejects.toMatchObject({ code: 'FIX_INVALID' });
    await expect(client.fixStorageRepository('fx', { ...mend, data: 'garbage' })).rejects.toMatchObject({ code: 'FIX_INVALID' });
    // One encoding only: the same bytes written another way are another fix, and none is valid.
    for (const data of [`${mend.data}!!`, `${mend.data}=`, mend.data.replace('.', '=.'), ` ${mend.data}`]) {
      await expect(client.fixStorageRepository('fx', { ...mend, data })).rejects.toMatchObject({ code: 'FIX_INVALID' });
    }
    expect(snapshotTree(path)).toEqual(before);
    expect((await status(disk)).status).toBe('broken');
  });

  it('a fix checked on one repository is refused on another, and still runs where it belongs', async () => {
    const disk = await diskWith(Model.blank(SIZE), { pattern: 1, offset: 0, length: MiB });
    await client.removeImage('fx', disk, { autoFix: false });
    const [clean] = await fixesFor(disk, 'clean');
    await expect(client.fixStorageRepository('other', clean)).rejects.toMatchObject({ code: 'FIX_INVALID', message: expect.stringContaining('another repository') });
    await run(clean);
    expect(await fixesFor(disk)).toEqual([]);
  });

  it('the same fix asked twice is one run with one operationId; replayed once it ran (its image changed since), FIX_INVALID', async () => {
    const disk = await client.createVirtualDisk('fx', SIZE, null, {}, { autoFix: false });
    const [mend] = await fixesFor(disk, 'mend');
    const [a, b] = await Promise.all([client.fixStorageRepository('fx', mend), client.fixStorageRepository('fx', mend)]);
    expect(b.operationId).toBe(a.operationId);
    await client.waitForOperation(a.operationId);
    const ran = await status(disk);
    expect(ran.status).toBe('optimized');
    await expect(client.fixStorageRepository('fx', mend)).rejects.toMatchObject({ code: 'FIX_INVALID', message: expect.stringContaining(a.operationId) });
    expect(await status(disk)).toEqual(ran);
  });

  it('a stale fix is refused: the image changed between check and fix', async () => {
    const model = Model.blank(SIZE);
    const disk = await diskWith(model, { pattern: 0x31, offset: 0, length: MiB });
    const snapshot = await client.createSnapshot('fx', disk);
    const fast = await client.createVirtualDisk('fx', SIZE, snapshot, {}, { strategy: 'performance' });
    await usable(fast, 'degraded');
    const [optimize] = await fixesFor(fast, 'optimize');
    await client.prepareImage('fx', fast);
    await client.teardownImage('fx', fast);
    await expect(client.fixStorageRepository('fx', optimize)).rejects.toMatchObject({ code: 'FIX_INVALID', message: expect.stringContaining('changed') });
  });

  it('optimize flattens a thin overlay made for performance into a standalone raw volume', async () => {
    const model = Model.blank(SIZE);
    const disk = await diskWith(model, { pattern: 0x41, offset: 2 * MiB, length: 6 * MiB });
    const snapshot = await client.createSnapshot('fx', disk);
    const fast = await client.createVirtualDisk('fx', SIZE, snapshot, {}, { strategy: 'performance' });
    await usable(fast, 'degraded');
    const [optimize] = await fixesFor(fast, 'optimize');
    expect(optimize.description).toContain('raw');
    await run(optimize);
    expect(await status(fast)).toMatchObject({ status: 'optimized', lastError: null });
    const chain = await chainOf(client, 'fx', fast);
    expect(chain.map((v) => v.format)).toEqual(['raw']);
    expect(await sameContent(client, 'fx', fast, model)).toBe(true);
    expect(await sameContent(client, 'fx', snapshot, model)).toBe(true);
    expect((await fixesFor(fast)).length).toBe(0);
  });

  it('optimize collapses a chain longer than the limit, leaving every snapshot as it was', async () => {
    const model = Model.blank(SIZE);
    const disk = await diskWith(model, { pattern: 0x51, offset: 0, length: MiB });
    const snapshots: [string, Model][] = [];
    for (let i = 0; i < 3; i++) {
      snapshots.push([await client.createSnapshot('fx', disk), model.fork()]);
      await usable(disk);
      await writeImage(client, 'fx', disk, { pattern: 0x52 + i, offset: (i + 1) * MiB, length: MiB });
      model.write({ pattern: 0x52 + i, offset: (i + 1) * MiB, length: MiB });
    }
    expect((await chainOf(client, 'fx', disk)).length).toBe(4);
    const [optimize] = await fixesFor(disk, 'optimize');
    expect(optimize.description).toContain('collapse');
    await run(optimize);
    expect((await chainOf(client, 'fx', disk)).length).toBe(1);
    expect(await sameContent(client, 'fx', disk, model)).toBe(true);
    for (const [id, m] of snapshots) expect(await sameContent(client, 'fx', id, m)).toBe(true);
  });

  it('removing a snapshot that a disk is built on keeps its data, and offers a merge that folds the chain', async () => {
    const model = Model.blank(SIZE);
    const disk = await diskWith(model, { pattern: 0x61, offset: 0, length: 8 * MiB });
    const snapshot = await client.createSnapshot('fx', disk);
    await usable(disk);
    await writeImage(client, 'fx', disk, { pattern: 0x62, offset: 4 * MiB, length: 2 * MiB });
    model.write({ pattern: 0x62, offset: 4 * MiB, length: 2 * MiB });
    expect(await fixesFor(disk, 'merge')).toEqual([]);
    await client.removeImage('fx', snapshot);
    expect(await sameContent(client, 'fx', disk, model)).toBe(true);
    const [merge] = await fixesFor(disk, 'merge');
    expect(merge.description).toContain('fold');
    const volumesBefore = volumeFiles(path).length;
    await run(merge);
    expect((await chainOf(client, 'fx', disk)).length).toBe(1);
    expect(await sameContent(client, 'fx', disk, model)).toBe(true);
    expect(volumeFiles(path).length).toBe(volumesBefore - 1);
    expect(await fixesFor(disk)).toEqual([]);
  });

  it('no merge while two disks share the snapshot\'s data; one once only one is left', async () => {
    const model = Model.blank(SIZE);
    const disk = await diskWith(model, { pattern: 0x71, offset: 0, length: 2 * MiB });
    const snapshot = await client.createSnapshot('fx', disk);
    const [a, b] = [await client.createVirtualDisk('fx', SIZE, snapshot), await client.createVirtualDisk('fx', SIZE, snapshot)];
    await usable(a);
    await usable(b);
    await client.removeImage('fx', snapshot);
    await client.removeImage('fx', disk);
    expect([...(await fixesFor(a, 'merge')), ...(await fixesFor(b, 'merge'))]).toEqual([]);
    await client.removeImage('fx', a);
    const [merge] = await fixesFor(b, 'merge');
    await run(merge);
    expect(await sameContent(client, 'fx', b, model)).toBe(true);
  });

  it('leftovers of interrupted operations (unreferenced volumes, old temporary files) are cleaned', async () => {
    const orphan = '0b0b0b0b-0000-4000-8000-000000000001';
    writeFileSync(join(path, 'volumes', `${orphan}.raw`), Buffer.alloc(MiB, 1));
    const stray = join(path, 'tmp', 'image.json.dead.tmp');
    writeFileSync(stray, '{');
    const old = new Date(Date.now() - 3600_000);
    utimesSync(stray, old, old);
    const fixes = (await client.checkStorageRepository('fx')).filter((f) => f.type === 'clean' && f.imageIds.length === 0);
    expect(fixes).toHaveLength(1);
    expect(fixes[0].bytes).toBeGreaterThanOrEqual(MiB);
    await run(fixes[0]);
    expect(volumeFiles(path).some((f) => f.includes(orphan))).toBe(false);
    expect((await client.checkStorageRepository('fx')).filter((f) => f.type === 'clean' && f.imageIds.length === 0)).toEqual([]);
  });

  it('the command line: repo check prints the fixes, repo fix --all runs them, and a second check has nothing to do', async () => {
    const env = { DISKFLOW_HOST_ID: 'fix-host' };
    await client.createVirtualDisk('fx', SIZE, null, {}, { autoFix: false });
    const gone = await client.createVirtualDisk('fx', SIZE);
    await usable(gone);
    await client.removeImage('fx', gone, { autoFix: false });
    const listed = await diskflow(['repo', 'check', 'fx'], env);
    expect(listed.stdout).toMatch(/mend/);
    expect(listed.stdout).toMatch(/clean/);
    const fixed = await diskflow(['repo', 'fix', 'fx', '--all', '--json'], env);
    expect(fixed.stderr).toBe('');
    const outcomes = JSON.parse(fixed.stdout) as { outcome: string; error?: unknown }[];
    expect(outcomes.filter((r) => r.outcome !== 'done')).toEqual([]);
    expect(fixed.code).toBe(0);
    const again = await diskflowJson<Fix[]>(['repo', 'check', 'fx'], env);
    expect(again.filter((f) => f.type === 'clean' || f.type === 'mend')).toEqual([]);
    const none = await diskflow(['repo', 'fix', 'fx', '--type', 'mend'], env);
    expect(none.stdout).toBe('nothing to do\n');
    const bad = await diskflow(['repo', 'fix', 'fx'], env);
    expect(bad.stderr).toMatch(/^INVALID_ARGUMENT/);
  });

  it('a check answers the most urgent fixes that fit in one answer; repo fix --all checks again until all are done', async () => {
    // A host whose answers hold about two fixes stands in for a repository with thousands.
    await startHost('fix-small', { DISKFLOW_ANSWER_BYTES: '1500', DISKFLOW_FIX_KEY: 'test-cluster-key-at-least-thirty-two-bytes' });
    const small = await clientFor('fix-small');
    try {
      await localRepository(small, 'many');
      const ids: string[] = [];
      for (let n = 0; n < 5; n++) ids.push(await small.createVirtualDisk('many', MiB));
      await Promise.all(ids.map((id) => eventually(() => small.getImageStatus('many', id), (x) => x.status === 'optimized')));
      for (const id of ids) await small.removeImage('many', id, { autoFix: false });
      const first = await small.checkStorageRepository('many');
      expect(first.length).toBeGreaterThan(0);
      expect(first.length).toBeLessThan(5);
      expect(JSON.stringify(first).length).toBeLessThanOrEqual(1500);
      const fixed = await diskflow(['repo', 'fix', 'many', '--all', '--json'], { DISKFLOW_HOST_ID: 'fix-small' });
      const outcomes = JSON.parse(fixed.stdout) as { outcome: string; fix: Fix }[];
      expect(outcomes.map((r) => r.outcome)).toEqual(ids.map(() => 'done'));
      expect(outcomes.flatMap((r) => r.fix.imageIds).sort()).toEqual([...ids].sort());
      expect(await small.checkStorageRepository('many')).toEqual([]);
    } finally {
      await small.close();
    }
  });

  it('leaves every qcow2 volume clean by qemu-img check', async () => {
    // Made here, so that the check has fixed volumes to check even when this test runs alone: a
    // chain over the limit (DISKFLOW_MAX_CHAIN=3), collapsed by the optimize fix check offers.
    const disk = await diskWith(Model.blank(SIZE), { pattern: 0x5a, offset: 0, length: 4 * MiB });
    for (const pattern of [0x5b, 0x5c, 0x5d]) {
      await client.createSnapshot('fx', disk);
      await usable(disk);
      await writeImage(client, 'fx', disk, { pattern, offset: 2 * MiB, length: MiB });
    }
    const optimize = await fixesFor(disk, 'optimize');
    expect(optimize).toHaveLength(1);
    await run(optimize[0]);
    const made = await qcow2ChainFiles(client, 'fx', disk);
    expect(made.length).toBeGreaterThan(0);
    expect(volumeFiles(path)).toEqual(expect.arrayContaining(made));
    expect(uncleanVolumes(path)).toEqual([]);
  });
});
