import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StorageClient } from '../../client/storage-client';
import { clientFor, startHost, stopAllHosts, TestHost } from '../harness/hosts';
import { removeTempDirs, snapshotTree, tempDir } from '../harness/repositories';
import { eventually } from '../harness/wait';

let host: TestHost;
let client: StorageClient;

beforeAll(async () => {
  host = await startHost('repos-host');
  client = await clientFor('repos-host');
});

afterAll(async () => {
  await client?.close();
  await stopAllHosts();
  removeTempDirs();
});

describe('repositories', () => {
  it('init writes a header into an empty directory, and connect serves it under a repoId', async () => {
    const path = tempDir();
    await client.initStorageRepository('localfs-1.0', { path });
    expect(Object.keys(snapshotTree(path)).sort()).toEqual(['diskflow-repository.json', 'images/', 'tmp/', 'volumes/']);
    await client.connectStorageRepository('r-init', 'localfs-1.0', { path });
    expect(await client.listImages('r-init')).toEqual([]);
    expect(await client.getStorageRepositoryConstraints('r-init')).toEqual({ needsSrm: false, srmHostId: null });
  });

  it('init refuses a directory that holds anything, and writes nothing', async () => {
    const path = tempDir();
    writeFileSync(join(path, 'precious.txt'), 'keep me');
    const before = snapshotTree(path);
    await expect(client.initStorageRepository('localfs-1.0', { path })).rejects.toMatchObject({ code: 'REPO_NOT_EMPTY' });
    expect(snapshotTree(path)).toEqual(before);
  });

  it('init refuses to run twice on the same repository', async () => {
    const path = tempDir();
    await client.initStorageRepository('localfs-1.0', { path });
    const before = snapshotTree(path);
    await expect(client.initStorageRepository('localfs-1.0', { path })).rejects.toMatchObject({ code: 'REPO_NOT_EMPTY' });
    expect(snapshotTree(path)).toEqual(before);
  });

  it('connect refuses a directory that is not a repository', async () => {
    const path = tempDir();
    await expect(client.connectStorageRepository('r-none', 'localfs-1.0', { path })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('not a diskflow repository'),
    });
    await expect(client.listImages('r-none')).rejects.toMatchObject({ code: 'REPO_NOT_CONNECTED' });
  });

  it('a repoId already in use on the host cannot be connected again, even to another repository', async () => {
    const first = tempDir();
    const second = tempDir();
    await client.initStorageRepository('localfs-1.0', { path: first });
    await client.initStorageRepository('localfs-1.0', { path: second });
    await client.connectStorageRepository('r-taken', 'localfs-1.0', { path: first });
    await expect(client.connectStorageRepository('r-taken', 'localfs-1.0', { path: second })).rejects.toMatchObject({ code: 'REPO_ID_IN_USE' });
    const disk = await client.createVirtualDisk('r-taken', 1024 * 1024);
    expect((await client.getImageStatus('r-taken', disk)).repoId).toBe('r-taken');
  });

  it('one repository is not connected twice on one host under two handles', async () => {
    const path = tempDir();
    await client.initStorageRepository('localfs-1.0', { path });
    await client.connectStorageRepository('r-once', 'localfs-1.0', { path });
    await expect(client.connectStorageRepository('r-twice', 'localfs-1.0', { path })).rejects.toMatchObject({ code: 'REPO_ID_IN_USE' });
  });

  it('disconnect releases the handle, and a disconnected repoId is refused with REPO_NOT_CONNECTED', async () => {
    const path = tempDir();
    await client.initStorageRepository('localfs-1.0', { path });
    await client.connectStorageRepository('r-gone', 'localfs-1.0', { path });
    const disk = await client.createVirtualDisk('r-gone', 1024 * 1024);
    await client.disconnectStorageRepository('r-gone');
    await expect(client.getImageStatus('r-gone', disk)).rejects.toMatchObject({ code: 'REPO_NOT_CONNECTED' });
    await expect(client.createVirtualDisk('r-gone', 1024 * 1024)).rejects.toMatchObject({ code: 'REPO_NOT_CONNECTED' });
    await expect(client.disconnectStorageRepository('r-gone')).rejects.toMatchObject({ code: 'REPO_NOT_CONNECTED' });
    // The handle is free again, and the images are still in the repository.
    await client.connectStorageRepository('r-gone', 'localfs-1.0', { path });
    expect((await client.getImageStatus('r-gone', disk)).imageId).toBe(disk);
  });

  it('a host remembers its connections across a restart, and work goes on', async () => {
    const path = tempDir();
    await client.initStorageRepository('localfs-1.0', { path });
    await client.connectStorageRepository('r-kept', 'localfs-1.0', { path });
    const before = await client.createVirtualDisk('r-kept', 1024 * 1024);
    await host.restart();
    expect((await client.getImageStatus('r-kept', before)).imageId).toBe(before);
    const after = await client.createVirtualDisk('r-kept', 1024 * 1024);
    expect((await client.listImages('r-kept')).map((i) => i.imageId)).toEqual([before, after]);
  });

  it('a call made while its host is down (killed, not stopped) completes when the host comes back', async () => {
    const path = tempDir();
    await client.initStorageRepository('localfs-1.0', { path });
    await client.connectStorageRepository('r-crash', 'localfs-1.0', { path });
    await host.stop('SIGKILL');
    const pending = client.createVirtualDisk('r-crash', 1024 * 1024);
    await new Promise((r) => setTimeout(r, 2000));
    await host.restart();
    const imageId = await pending;
    const status = await eventually(() => client.getImageStatus('r-crash', imageId), (s) => s.status === 'optimized');
    expect(status.hostId).toBe('repos-host');
  });

  it('calls for a host whose worker is not running fail within seconds instead of hanging', async () => {
    const other = await clientFor('no-such-host');
    try {
      const started = Date.now();
      await expect(other.listImages('default')).rejects.toMatchObject({ code: 'STORAGE_ERROR', message: expect.stringContaining('no-such-host') });
      expect(Date.now() - started).toBeLessThan(40_000);
    } finally {
      await other.close();
    }
  }, 60_000);
});
