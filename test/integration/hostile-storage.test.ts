/**
 * A repository's files can be written by anyone with access to the storage: diskflow reads them
 * as untrusted input. Links, forged records and headers, qcow2 volumes naming files outside
 * their chain: each is refused with a code, never followed or opened, and no call deletes or
 * writes anything outside the repository and DISKFLOW_HOME (hashes before and after).
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findMount, mountPointFor } from '../../activities/host/mounts';
import type { StorageClient } from '../../client/storage-client';
import { clientFor, startHost, stopAllHosts, TestHost } from '../harness/hosts';
import { cleanUpMounts, xfsImage } from '../harness/mounts';
import { imageRecord } from '../harness/records';
import { localRepository, removeTempDirs, tempDir, treeHash } from '../harness/repositories';
import { eventually } from '../harness/wait';

const MiB = 2 ** 20;
let host: TestHost;
let client: StorageClient;
let repoPath: string;

beforeAll(async () => {
  host = await startHost('storage-host');
  client = await clientFor('storage-host');
  repoPath = await localRepository(client, 'victim');
});

afterAll(async () => {
  await client?.close();
  await stopAllHosts();
  cleanUpMounts([]);
  removeTempDirs();
});

/** An outside directory holding a file a clean of `tmp/` would take for a stray, an hour old. */
function outsideWithStray(): { dir: string; stray: string } {
  const dir = tempDir('outside');
  const stray = `${randomUUID()}.json.${randomUUID()}.tmp`;
  writeFileSync(join(dir, stray), 'precious');
  const hourAgo = new Date(Date.now() - 3600_000);
  utimesSync(join(dir, stray), hourAgo, hourAgo);
  return { dir, stray };
}

const usable = (repo: string, id: string) => eventually(() => client.getImageStatus(repo, id), (s) => s.status === 'optimized');

describe('a repository read as untrusted input', () => {
  it.each(['tmp', 'volumes', 'images'])('whose %s/ is a link is refused at connect, clearly, and nothing is written', async (dir) => {
    const path = tempDir('linked');
    await client.initStorageRepository('localfs-1.0', { path });
    // tmp/ to an outside directory; volumes/ and images/ to those of another repository.
    const target = dir === 'tmp' ? outsideWithStray().dir : join(repoPath, dir);
    rmSync(join(path, dir), { recursive: true });
    symlinkSync(target, join(path, dir));
    const before = treeHash(host.home, path, target);
    await expect(client.connectStorageRepository(`linked-${dir}`, 'localfs-1.0', { path })).rejects.toMatchObject({
      code: 'STORAGE_ERROR',
      message: expect.stringContaining(`${join(path, dir)} is a symbolic link`),
    });
    expect(treeHash(host.home, path, target)).toBe(before);
  });

  it('a tmp/ swapped for a link after a check offered a clean: the clean deletes nothing outside the repository', async () => {
    const stray = `${randomUUID()}.json.${randomUUID()}.tmp`;
    writeFileSync(join(repoPath, 'tmp', stray), 'left by a writer that died');
    const hourAgo = new Date(Date.now() - 3600_000);
    utimesSync(join(repoPath, 'tmp', stray), hourAgo, hourAgo);
    const clean = (await client.checkStorageRepository('victim')).find((f) => f.type === 'clean' && f.description.includes('temporary file'));
    expect(clean).toBeDefined();
    const outside = tempDir('outside');
    writeFileSync(join(outside, stray), 'precious');
    rmSync(join(repoPath, 'tmp'), { recursive: true });
    symlinkSync(outside, join(repoPath, 'tmp'));
    const before = treeHash(outside);
    try {
      const { operationId } = await client.fixStorageRepository('victim', clean!);
      await expect(client.waitForOperation(operationId)).rejects.toMatchObject({ code: 'STORAGE_ERROR', message: expect.stringContaining('symbolic link') });
      expect(readFileSync(join(outside, stray), 'utf8')).toBe('precious');
      expect(treeHash(outside)).toBe(before);
    } finally {
      rmSync(join(repoPath, 'tmp'));
      mkdirSync(join(repoPath, 'tmp'));
    }
  });

  it('forged records (an id that is a path, another record under its name, a link to a secret, a reserved key) are STORAGE_ERROR, used for nothing', async () => {
    const secret = join(tempDir('secret'), 'shadow');
    writeFileSync(secret, 'root:$6$very-secret-hash:19000:0:99999:7:::\n');
    const disk = await client.createVirtualDisk('victim', MiB);
    await usable('victim', disk);
    const real = imageRecord(repoPath, disk);
    const forgedId = randomUUID();
    const forgeries: [string, () => void, string][] = [
      ['a volume id that is a path', () => writeFileSync(join(repoPath, 'images', `${forgedId}.json`), JSON.stringify({ ...real, imageId: forgedId, volumeId: `../../../${secret}` })), 'volumeId'],
      ['the record of another image', () => writeFileSync(join(repoPath, 'images', `${forgedId}.json`), JSON.stringify(real)), `holds the record of ${disk}`],
      ['a link to a secret', () => symlinkSync(secret, join(repoPath, 'images', `${forgedId}.json`)), 'symbolic link'],
      ['a __proto__ key', () => writeFileSync(join(repoPath, 'images', `${forgedId}.json`), JSON.stringify({ ...real, imageId: forgedId }).replace('"userData":{}', '"userData":{"__proto__":{"admin":true}}')), '__proto__'],
    ];
    for (const [what, forge, names] of forgeries) {
      forge();
      try {
        const before = treeHash(host.home, repoPath);
        for (const call of [() => client.getImageStatus('victim', forgedId), () => client.checkStorageRepository('victim'), () => client.removeImage('victim', forgedId)]) {
          const error = await call().then(() => undefined, (e: unknown) => e);
          expect(error, what).toMatchObject({ code: 'STORAGE_ERROR', message: expect.stringContaining(names) });
          expect((error as Error).message, what).not.toContain('very-secret');
        }
        expect(treeHash(host.home, repoPath), what).toBe(before);
      } finally {
        rmSync(join(repoPath, 'images', `${forgedId}.json`));
      }
    }
    expect(readFileSync(secret, 'utf8')).toContain('very-secret');
    await client.removeImage('victim', disk);
  });

  it('a forged header (a uuid that is a path, a link) is refused at connect', async () => {
    for (const forge of [
      (path: string) => writeFileSync(join(path, 'diskflow-repository.json'), JSON.stringify({ schema: 'diskflow.repository/1', format: 'localfs-1.0', uuid: '../../../etc', createdAt: '' })),
      (path: string) => {
        rmSync(join(path, 'diskflow-repository.json'));
        symlinkSync(join(repoPath, 'diskflow-repository.json'), join(path, 'diskflow-repository.json'));
      },
    ]) {
      const path = tempDir('forged');
      await client.initStorageRepository('localfs-1.0', { path });
      forge(path);
      const before = treeHash(host.home, path);
      await expect(client.connectStorageRepository(`forged-${randomUUID().slice(0, 8)}`, 'localfs-1.0', { path })).rejects.toMatchObject({ code: 'STORAGE_ERROR' });
      expect(treeHash(host.home, path)).toBe(before);
    }
  });

  it('a qcow2 volume naming a file outside its chain (a backing file, an external data file, a link) is never opened: prepare refuses it, check reports it', async () => {
    const outside = tempDir('outside');
    // A FIFO blocks whoever opens it: had qemu opened the backing file, the call would hang.
    execFileSync('mkfifo', [join(outside, 'fifo')]);
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', join(outside, 'data.raw'), String(MiB)]);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(outside, 'other.qcow2'), String(MiB)]);
    const disk = await client.createVirtualDisk('victim', MiB);
    await usable('victim', disk);
    const volume = join(repoPath, 'volumes', `${imageRecord(repoPath, disk).volumeId}.qcow2`);
    // A check while the volume is sound reports nothing about it.
    expect((await client.checkStorageRepository('victim')).filter((f) => f.imageIds.includes(disk))).toEqual([]);
    const forgeries: [string, () => void, string][] = [
      ['a backing file outside the repository', () => execFileSync('qemu-img', ['rebase', '-q', '-u', '-f', 'qcow2', '-b', join(outside, 'fifo'), '-F', 'raw', volume]), `names backing file "${join(outside, 'fifo')}"`],
      ['an external data file', () => execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `data_file=${join(outside, 'data.raw')},data_file_raw=on`, volume, String(MiB)]), 'external data file'],
      ['a link to a file outside', () => (rmSync(volume), symlinkSync(join(outside, 'other.qcow2'), volume)), 'symbolic link'],
    ];
    for (const [what, forge, names] of forgeries) {
      forge();
      const before = treeHash(host.home, repoPath, outside);
      await expect(client.prepareImage('victim', disk), what).rejects.toMatchObject({ code: 'STORAGE_ERROR', message: expect.stringContaining(names) });
      const report = (await client.checkStorageRepository('victim')).find((f) => f.imageIds.includes(disk));
      expect(report?.description, what).toMatch(/cannot be used: volume .* is not what its records say/);
      expect(treeHash(host.home, repoPath, outside), what).toBe(before);
    }
    // Removed and cleaned: the link goes, what it pointed to stays.
    const outsideBefore = treeHash(outside);
    await client.removeImage('victim', disk);
    await eventually(async () => (await client.checkStorageRepository('victim')).filter((f) => f.imageIds.includes(disk)), (f) => f.length === 0);
    expect(treeHash(outside)).toBe(outsideBefore);
    expect(readFileSync(join(outside, 'other.qcow2')).subarray(0, 4).toString('latin1')).toBe('QFI\xfb');
  });

  it('a shared file system is mounted nosuid,nodev; one found mounted without them is remounted so', async () => {
    const params = { spec: xfsImage('512M'), vfsType: 'xfs', mountOptions: 'loop' };
    await client.initStorageRepository('posixfs-1.0', params);
    const point = mountPointFor(host.home, { vfsType: 'xfs', spec: params.spec });
    // As an older diskflow, or an operator, left it: mounted at diskflow's point, with suid and dev.
    mkdirSync(point, { recursive: true });
    execFileSync('mount', ['-t', 'xfs', '-o', 'loop', params.spec, point]);
    expect((await findMount(point))!.options).not.toContain('nosuid');
    await client.connectStorageRepository('mounted', 'posixfs-1.0', params);
    expect((await findMount(point))!.options).toEqual(expect.arrayContaining(['nosuid', 'nodev']));
    await client.disconnectStorageRepository('mounted');
    await client.connectStorageRepository('mounted', 'posixfs-1.0', params);
    expect((await findMount(point))!.options).toEqual(expect.arrayContaining(['nosuid', 'nodev']));
    await client.disconnectStorageRepository('mounted');
    expect(await findMount(point)).toBeNull();
  });
});
