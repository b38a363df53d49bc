/**
 * Getting images in and out: import from a local file and from a 127.0.0.1 HTTP server (qcow2,
 * vmdk), equal to their sources by `qemu-img compare`; a worker killed mid-import resumes and
 * ends equal; a source naming a backing file on the host is refused and nothing opens that
 * path; a checksum mismatch leaves the image broken saying so; an exported file equals its
 * image, and a disk prepared for a VM is not exported; a copy or import into a repository
 * without the room fails with NO_SPACE before writing a byte, and measure says so.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, constants, existsSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StorageClient } from '../../client/storage-client';
import { clientFor, startHost, stopAllHosts, TestHost } from '../harness/hosts';
import { FileServer, serveFiles } from '../harness/http-files';
import { localRepository, removeTempDirs, snapshotTree, tempDir } from '../harness/repositories';
import { eventually } from '../harness/wait';
import { imageRecord, volumeFiles } from '../harness/records';
import { writeImage } from '../harness/content';
import { diskflow } from '../harness/cli';

const MiB = 2 ** 20;
const SIZE = 32 * MiB;
let host: TestHost;
let client: StorageClient;
let files: string;
let server: FileServer;
let repoPath: string;
let source: string;

const qemuImg = (...args: string[]) => execFileSync('qemu-img', args, { encoding: 'utf8' });

/** Whether image `imageId` holds what `path` (of `format`) holds. */
async function equalTo(repoId: string, imageId: string, path: string, format: string): Promise<boolean> {
  const prepared = await client.prepareImage(repoId, imageId);
  try {
    execFileSync('qemu-img', ['compare', '-q', '-f', prepared.format, '-F', format, prepared.path, path]);
    return true;
  } catch {
    return false;
  } finally {
    await client.teardownImage(repoId, imageId);
  }
}

const settled = (repoId: string, imageId: string, ms = 60_000) =>
  eventually(() => client.getImageStatus(repoId, imageId), (s) => s.status !== 'broken' || s.lastError !== null, ms);

beforeAll(async () => {
  host = await startHost('porter', { DISKFLOW_COPY_CHUNK: '2M', DISKFLOW_PROGRESS_INTERVAL_MS: '200' });
  client = await clientFor('porter');
  repoPath = await localRepository(client, 'in');
  files = tempDir('sources');
  source = join(files, 'some.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', source, String(SIZE));
  // Data in three places, holes between: zero ranges are skipped, data lands where it was.
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0xa1 0 3M', '-c', 'write -P 0xb2 10M 5M', '-c', 'write -P 0xc3 30M 2M', source], { stdio: 'ignore' });
  qemuImg('convert', '-q', '-f', 'qcow2', '-O', 'vmdk', source, join(files, 'some.vmdk'));
  server = await serveFiles(files);
}, 120_000);

afterAll(async () => {
  await server?.close();
  await client?.close();
  await stopAllHosts();
  removeTempDirs();
});

describe('import', () => {
  it('a local qcow2 file with its sha256 becomes a usable disk equal to it', async () => {
    const sha256 = createHash('sha256').update(readFileSync(source)).digest('hex');
    const id = await client.importImage('in', source, { from: 'file' }, { sha256 });
    expect(await settled('in', id)).toMatchObject({ status: 'optimized', lastError: null, kind: 'virtual-disk', size: SIZE });
    expect(await equalTo('in', id, source, 'qcow2')).toBe(true);
  }, 90_000);

  it('a vmdk and a qcow2 over HTTP (127.0.0.1) become disks equal to them', async () => {
    for (const name of ['some.vmdk', 'some.qcow2']) {
      const id = await client.importImage('in', server.url(name));
      expect(await settled('in', id), name).toMatchObject({ status: 'optimized', lastError: null, size: SIZE });
      expect(await equalTo('in', id, join(files, name), name.endsWith('vmdk') ? 'vmdk' : 'qcow2'), name).toBe(true);
    }
  }, 90_000);

  it('`diskflow image import in <file>` and `... <http url>` print the new id once the data is in, with a progress bar', async () => {
    for (const location of [source, server.url('some.vmdk')]) {
      const result = await diskflow(['image', 'import', 'in', location], { DISKFLOW_HOST_ID: 'porter' });
      expect(result.code, result.stderr).toBe(0);
      const id = result.stdout.trim();
      expect(await client.getImageStatus('in', id)).toMatchObject({ status: 'optimized', lastError: null });
      expect(await equalTo('in', id, location === source ? source : join(files, 'some.vmdk'), location === source ? 'qcow2' : 'vmdk')).toBe(true);
    }
    const measured = await diskflow(['image', 'measure', 'in', source], { DISKFLOW_HOST_ID: 'porter' });
    expect(measured.stdout).toMatch(/qcow2 -> qcow2: needs .* fits/);
  }, 90_000);

  it('a worker killed mid-import resumes from its persisted progress and ends equal', async () => {
    await host.restart({ DISKFLOW_COPY_RATE_LIMIT: '4M' });
    const id = await client.importImage('in', server.url('some.qcow2'));
    const progressOf = () => {
      const pending = imageRecord(repoPath, id).pending;
      return pending?.step === 'import' ? pending.job.copiedUpTo : null;
    };
    // Killed once a few ranges are persisted, well before the end (10 MiB of data at 4 MiB/s).
    await eventually(async () => progressOf(), (at) => at !== null && at >= 2 * MiB, 30_000);
    await host.stop('SIGKILL');
    const killedAt = progressOf()!;
    expect(killedAt).toBeGreaterThan(0);
    expect(killedAt).toBeLessThan(SIZE);
    await host.restart({ DISKFLOW_COPY_RATE_LIMIT: '1M' });
    // Resumed, not started over: the persisted resume point never goes back.
    const seen: number[] = [];
    await eventually(
      async () => {
        const at = progressOf();
        if (at !== null) seen.push(at);
        return at;
      },
      (at) => at === null,
      120_000,
    );
    expect(Math.min(...seen)).toBeGreaterThanOrEqual(killedAt);
    expect(await settled('in', id, 120_000)).toMatchObject({ status: 'optimized', lastError: null });
    expect(await equalTo('in', id, source, 'qcow2')).toBe(true);
  }, 180_000);

  it('a checksum mismatch leaves the image broken, its lastError saying so', async () => {
    const id = await client.importImage('in', source, {}, { sha256: '0'.repeat(64) });
    const status = await settled('in', id);
    expect(status.status).toBe('broken');
    expect(status.lastError).toMatch(/checksum mismatch/);
  }, 60_000);

  it('a qcow2 naming a backing file on the host, or a VMDK descriptor, is refused: nothing opens that path', async () => {
    const fifo = join(files, 'secret');
    execFileSync('mkfifo', [fifo]);
    const hostile = join(files, 'hostile.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', fifo, '-F', 'raw', hostile, String(SIZE));
    // A reader opening the FIFO would let this non-blocking writer open it: watched throughout.
    let opened = false;
    const watch = setInterval(() => {
      try {
        closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
        opened = true;
      } catch {
        // ENXIO: nobody has it open for reading.
      }
    }, 5);
    try {
      for (const location of [hostile, server.url('hostile.qcow2')]) {
        await expect(client.importImage('in', location), location).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/backing file/) });
        await expect(client.importImage('in', location, {}, { format: 'qcow2' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
        await expect(client.measureImage('in', { location })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      }
      const descriptor = join(files, 'desc.vmdk');
      execFileSync('sh', ['-c', `printf '# Disk DescriptorFile\\nversion=1\\ncreateType="monolithicFlat"\\nRW 65536 FLAT "${fifo}" 0\\n' > ${descriptor}`]);
      await expect(client.importImage('in', descriptor, {}, { format: 'vmdk' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/descriptor/) });
    } finally {
      clearInterval(watch);
    }
    expect(opened).toBe(false);
  }, 60_000);
});

describe('export', () => {
  it('an exported file (qcow2, compressed qcow2, raw) equals its image; a disk prepared for a VM is IMAGE_IN_USE', async () => {
    const id = await client.importImage('in', source);
    await settled('in', id);
    const out = tempDir('exports');
    for (const [name, options] of [['a.qcow2', {}], ['b.qcow2', { compress: true }], ['c.raw', { format: 'raw' }]] as const) {
      const { operationId } = await client.exportImage('in', id, join(out, name), options);
      await client.waitForOperation(operationId);
      expect(await equalTo('in', id, join(out, name), name.endsWith('raw') ? 'raw' : 'qcow2'), name).toBe(true);
    }
    // The image is no export's reader any more, and an existing file is never replaced.
    await expect(client.exportImage('in', id, join(out, 'a.qcow2')).then((r) => client.waitForOperation(r.operationId))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await client.prepareImage('in', id);
    try {
      await expect(client.exportImage('in', id, join(out, 'd.qcow2'))).rejects.toMatchObject({ code: 'IMAGE_IN_USE' });
      expect(existsSync(join(out, 'd.qcow2'))).toBe(false);
    } finally {
      await client.teardownImage('in', id);
    }
  }, 90_000);
});

describe('room', () => {
  it('a copy or an import that cannot fit fails with NO_SPACE before writing a byte; measure says so', async () => {
    const huge = 4 * 2 ** 40;
    const disk = await client.createVirtualDisk('in', huge);
    await settled('in', disk);
    const sparse = join(files, 'huge.raw');
    qemuImg('create', '-q', '-f', 'raw', sparse, String(huge));
    const before = snapshotTree(repoPath);
    await expect(client.copyImage('in', disk, null, {}, { strategy: 'performance' })).rejects.toMatchObject({ code: 'NO_SPACE' });
    await expect(client.importImage('in', sparse, {}, { strategy: 'performance' })).rejects.toMatchObject({ code: 'NO_SPACE' });
    expect(snapshotTree(repoPath)).toEqual(before);
    const measured = await client.measureImage('in', { imageId: disk }, { strategy: 'performance' });
    expect(measured).toMatchObject({ fits: false, targetFormat: 'raw', virtualSize: huge });
    expect(measured.requiredBytes).toBeGreaterThanOrEqual(huge);
    // As qcow2 the same sparse data fits.
    expect(await client.measureImage('in', { location: sparse })).toMatchObject({ fits: true, targetFormat: 'qcow2', sourceFormat: 'raw' });
  }, 60_000);

  it('a copy that runs out of room gives its partial volume back; check says why it cannot be mended, and it mends once there is room', async () => {
    const small = tempDir('small');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=40M,mode=0700', 'tmpfs', small]);
    try {
      const smallRepo = join(small, 'repo');
      execFileSync('mkdir', [smallRepo]);
      await client.initStorageRepository('localfs-1.0', { path: smallRepo });
      await client.connectStorageRepository('small', 'localfs-1.0', { path: smallRepo });
      const disk = await client.createVirtualDisk('in', SIZE);
      await settled('in', disk);
      await writeImage(client, 'in', disk, { pattern: 0x5a, offset: 0, length: 24 * MiB });
      await host.restart({ DISKFLOW_COPY_RATE_LIMIT: '4M' });
      const copy = await client.copyImage('small', disk);
      await eventually(
        async () => imageRecord(smallRepo, copy).pending,
        (p) => p?.step === 'copy' && p.job.copiedUpTo > 0,
        30_000,
      );
      // Someone else takes the rest of the file system while the copy runs.
      const filler = join(small, 'filler');
      execFileSync('sh', ['-c', `dd if=/dev/zero of=${filler} bs=1M 2>/dev/null || true`]);
      const stopped = await settled('small', copy);
      expect(stopped.status).toBe('broken');
      expect(stopped.lastError).toMatch(/NO_SPACE|No space/);
      expect(volumeFiles(smallRepo)).toEqual([]);
      const [mend] = (await client.checkStorageRepository('small')).filter((f) => f.type === 'mend' && f.imageIds.includes(copy));
      expect(mend.description).toMatch(/cannot be mended now: its data needs at least \d+ bytes and the repository has \d+ free/);
      // Its mend does not start a copy that cannot fit: NO_SPACE, nothing written.
      await expect(client.fixStorageRepository('small', mend).then((r) => client.waitForOperation(r.operationId))).rejects.toMatchObject({ code: 'NO_SPACE' });
      expect(volumeFiles(smallRepo)).toEqual([]);
      execFileSync('rm', ['-f', filler]);
      await host.restart({ DISKFLOW_COPY_RATE_LIMIT: '' });
      const [again] = (await client.checkStorageRepository('small')).filter((f) => f.type === 'mend' && f.imageIds.includes(copy));
      expect(again.description).toMatch(/complete the copy/);
      await client.waitForOperation((await client.fixStorageRepository('small', again)).operationId);
      expect(await client.getImageStatus('small', copy)).toMatchObject({ status: 'optimized', lastError: null });
      const prepared = await client.prepareImage('in', disk);
      try {
        expect(await equalTo('small', copy, prepared.path, prepared.format)).toBe(true);
      } finally {
        await client.teardownImage('in', disk);
      }
      await client.disconnectStorageRepository('small');
    } finally {
      execFileSync('umount', ['-l', small]);
    }
  }, 180_000);
});
