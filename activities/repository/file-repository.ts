/**
 * A repository kept as plain files in one directory: localfs uses it as is, posixfs and nfs
 * mount first. Layout (docs/ARCHITECTURE.md, "On-disk layout"):
 *
 *   diskflow-repository.json   header
 *   images/<imageId>.json      image records
 *   volumes/<volumeId>.json    volume records
 *   volumes/<volumeId>.qcow2   volume data (or .raw); `_remove_me_` prefix while being purged
 *   tmp/                       temporary files of atomic writes
 */
import { constants } from 'node:fs';
import { mkdir, open, readdir, rename, rm, statfs } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { FormatTraits } from '../../api/formats';
import { failpoint } from '../failpoints';
import * as qemuImg from '../qemu/qemu-img';
import type { VolumeFormat } from '../qemu/qemu-img';
import { createFileExclusive, fsyncDirectory, readJson, removeFileDurably, writeFileAtomic } from './atomic-file';
import { KeyedLock } from './keyed-lock';
import type { LeaseLocks } from './lease-lock';
import { readJsonFiles, statFiles } from './bulk-read';
import type { RecordKind, Repository, RepositoryHeader, StoredVolume, VolumeSpec } from './repository';

export const HEADER_FILE = 'diskflow-repository.json';
const REMOVE_ME = '_remove_me_';
const RECORD_DIRS: Record<RecordKind, string> = { image: 'images', volume: 'volumes' };
/** The lock name of the chains lock: a record name no volume id can take. */
const CHAINS_LOCK = 'chains';
const VOLUME_DATA = /^(_remove_me_)?([0-9a-f-]{36})\.(qcow2|raw)$/;

/** Creates the directories of a new file repository and writes its header last. */
export async function initFileRepository(root: string, header: RepositoryHeader): Promise<void> {
  for (const dir of ['images', 'volumes', 'tmp']) await mkdir(join(root, dir), { recursive: true });
  await fsyncDirectory(root);
  // The header goes last: a directory without one is not a repository, whatever else it holds.
  await writeFileAtomic(join(root, HEADER_FILE), JSON.stringify(header, null, 2) + '\n', join(root, 'tmp'));
}

/** Whether files under `root` can be opened with O_DIRECT (tmpfs, for one, refuses it). */
export async function probeDirectIo(root: string): Promise<boolean> {
  const probe = join(root, 'tmp', `.direct-io-probe-${process.pid}`);
  try {
    const handle = await open(probe, constants.O_CREAT | constants.O_WRONLY | constants.O_DIRECT, 0o644);
    await handle.close();
    return true;
  } catch {
    return false;
  } finally {
    await rm(probe, { force: true });
  }
}

export async function readHeader(root: string): Promise<RepositoryHeader | null> {
  return (await readJson(join(root, HEADER_FILE))) as RepositoryHeader | null;
}

export class FileRepository implements Repository {
  private readonly locks = new KeyedLock();
  private readonly tmp: string;

  constructor(
    readonly header: RepositoryHeader,
    readonly traits: FormatTraits,
    readonly location: string,
    readonly directIo: boolean,
    /**
     * Locks on the repository itself, for formats several hosts write at once (posixfs, nfs).
     * localfs has one host, so the in-process lock is enough and costs no I/O.
     */
    private readonly leases?: LeaseLocks,
  ) {
    this.tmp = join(location, 'tmp');
  }

  private recordPath(kind: RecordKind, id: string): string {
    return join(this.location, RECORD_DIRS[kind], `${id}.json`);
  }

  private dataPath(volumeId: string, format: VolumeFormat, prefix = ''): string {
    return join(this.location, 'volumes', `${prefix}${volumeId}.${format}`);
  }

  readRecord(kind: RecordKind, id: string): Promise<unknown | null> {
    return readJson(this.recordPath(kind, id));
  }

  async listRecords<T>(kind: RecordKind, parse: (raw: unknown) => T): Promise<T[]> {
    const dir = join(this.location, RECORD_DIRS[kind]);
    const names = (await readdir(dir)).filter((n) => n.endsWith('.json'));
    return readJsonFiles(names.map((n) => join(dir, n)), parse);
  }

  createRecord(kind: RecordKind, id: string, value: unknown): Promise<boolean> {
    return createFileExclusive(this.recordPath(kind, id), serialize(value), this.tmp);
  }

  writeRecord(kind: RecordKind, id: string, value: unknown): Promise<void> {
    return writeFileAtomic(this.recordPath(kind, id), serialize(value), this.tmp);
  }

  async deleteRecord(kind: RecordKind, id: string): Promise<void> {
    await removeFileDurably(this.recordPath(kind, id));
  }

  withRecordLock<T>(kind: RecordKind, id: string, fn: () => Promise<T>): Promise<T> {
    // In-process first, so one host's own steps queue here instead of polling lease files.
    const leases = this.leases;
    return this.locks.run(`${kind}/${id}`, leases ? () => leases.run(`${kind}_${id}`, fn) : fn);
  }

  withChainsLock<T>(fn: () => Promise<T>): Promise<T> {
    return this.withRecordLock('volume', CHAINS_LOCK, fn);
  }

  async createVolume(spec: VolumeSpec, signal?: AbortSignal): Promise<void> {
    const path = this.dataPath(spec.volumeId, spec.format);
    await rm(path, { force: true });
    await qemuImg.create(
      path,
      {
        format: spec.format,
        size: spec.size,
        preallocate: spec.preallocate,
        // Relative, so the chain resolves wherever a host mounts the repository.
        backing: spec.parent ? { file: this.backingReference(spec.parent.volumeId, spec.parent.format), format: spec.parent.format } : undefined,
      },
      { signal },
    );
    await fsyncDirectory(join(this.location, 'volumes'));
  }

  async removeVolume(volumeId: string): Promise<void> {
    for (const format of ['qcow2', 'raw'] as const) {
      const live = this.dataPath(volumeId, format);
      const doomed = this.dataPath(volumeId, format, REMOVE_ME);
      // Phase 1: rename, so the volume can no longer be opened under its name, even by a crash-restarted step.
      try {
        await rename(live, doomed);
        await fsyncDirectory(join(this.location, 'volumes'));
        failpoint('volume.renamed-for-removal');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
      // Phase 2: purge.
      await removeFileDurably(doomed);
    }
  }

  async listVolumes(): Promise<StoredVolume[]> {
    const dir = join(this.location, 'volumes');
    const names = (await readdir(dir)).filter((name) => VOLUME_DATA.test(name));
    const facts = await statFiles(names.map((name) => join(dir, name)));
    return facts.map(({ path, allocatedBytes }) => ({ volumeId: VOLUME_DATA.exec(basename(path))![2], allocatedBytes }));
  }

  readsAsZero(): boolean {
    // A new file is sparse (or fallocated, which reads as zeros too).
    return true;
  }

  backingReference(volumeId: string, format: VolumeFormat): string {
    return `${volumeId}.${format}`;
  }

  async ensureCapacity(): Promise<void> {
    // A file grows as it is written.
  }

  async growForVm(): Promise<boolean> {
    // A file grows as the VM writes it.
    return true;
  }

  async shrinkAfterVm(): Promise<void> {
    // A file takes only what was written.
  }

  async listStrayFiles(): Promise<{ name: string; ageMs: number; bytes: number }[]> {
    const now = Date.now();
    const facts = await statFiles((await readdir(this.tmp)).map((name) => join(this.tmp, name)));
    return facts.filter((f) => f.isFile).map((f) => ({ name: basename(f.path), ageMs: now - f.mtimeMs, bytes: f.allocatedBytes }));
  }

  async removeStrayFile(name: string): Promise<void> {
    if (name.includes('/')) throw new Error(`not a stray file name: ${name}`);
    await rm(join(this.tmp, name), { force: true });
  }

  async activate(volumeId: string, format: VolumeFormat): Promise<string> {
    return this.dataPath(volumeId, format);
  }

  async deactivate(): Promise<void> {
    // Files need no activation.
  }

  async freeBytes(): Promise<number> {
    const fs = await statfs(this.location);
    return fs.bavail * fs.bsize;
  }

  async disconnect(): Promise<void> {
    // Nothing held open.
  }
}

function serialize(value: unknown): string {
  return JSON.stringify(value, null, 1) + '\n';
}
