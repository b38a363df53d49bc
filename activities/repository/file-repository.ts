/**
 * A repository kept as plain files in one directory: localfs uses it as is, posixfs and nfs
 * mount first. Layout (docs/ON-DISK.md):
 *
 *   diskflow-repository.json   header
 *   images/<imageId>.json      image records
 *   volumes/<volumeId>.json    volume records
 *   volumes/<volumeId>.qcow2   volume data (or .raw); `_remove_me_` prefix while being purged
 *   tmp/                       temporary files of atomic writes
 */
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, statfs, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { DiskflowError } from '../../api/errors';
import type { FormatTraits } from '../../api/formats';
import { UUID_PATTERN } from '../../api/values';
import { failpoint } from '../failpoints';
import * as qemuImg from '../qemu/qemu-img';
import type { VolumeFormat } from '../qemu/qemu-img';
import { HeadReading, readQcow2HeaderSync } from '../qemu/qcow2-header';
import { createFileExclusive, fsyncDirectory, readJson, removeFileDurably, STRAY_NAME, writeFileAtomic } from './atomic-file';
import { KeyedLock } from './keyed-lock';
import type { LeaseLocks } from './lease-lock';
import { readHeads, readJsonFiles, statFiles } from './bulk-read';
import { requireOwnId } from './record-json';
import { parseHeader } from './repository';
import type { RecordKind, Repository, RepositoryHeader, StoredVolume, VolumeSpec } from './repository';
import { requireOwnDirectory } from './own-directory';
import { assertOpenable } from './volume-check';

export const HEADER_FILE = 'diskflow-repository.json';
const REMOVE_ME = '_remove_me_';
const RECORD_DIRS: Record<RecordKind, string> = { image: 'images', volume: 'volumes' };
/** The lock name of the chains lock: a record name no volume id can take. */
const CHAINS_LOCK = 'chains';
const VOLUME_DATA = new RegExp(`^(_remove_me_)?(${UUID_PATTERN})\\.(qcow2|raw)$`);
const RECORD_FILE = new RegExp(`^${UUID_PATTERN}\\.json$`);
const ID = new RegExp(`^${UUID_PATTERN}$`);
/** The repository's own directories: never links (a `tmp` linked elsewhere would make a clean delete there). */
const OWN_DIRS = ['images', 'volumes', 'tmp'] as const;
const OPTIONAL_DIRS = ['locks'] as const;

/** Ids become file names: only UUIDs do, so no id names a path outside the repository. */
function requireId(id: string, what: string): string {
  if (!ID.test(id)) throw new DiskflowError('INVALID_ARGUMENT', `${what} ${JSON.stringify(id).slice(0, 80)} is not a diskflow id (a UUID)`);
  return id;
}

/** The repository's layout as connect expects it: its own directories, none of them a link. */
export async function checkLayout(root: string): Promise<void> {
  for (const dir of OWN_DIRS) await requireOwnDirectory(join(root, dir));
  for (const dir of OPTIONAL_DIRS) await requireOwnDirectory(join(root, dir), true);
}

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
  const remove = () => unlink(probe).catch(() => undefined);
  await remove();
  try {
    // O_EXCL and O_NOFOLLOW: a file planted under the probe's name is never written through.
    const handle = await open(probe, constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_WRONLY | constants.O_DIRECT, 0o644);
    await handle.close();
    return true;
  } catch {
    return false;
  } finally {
    await remove();
  }
}

/** The header of the repository at `root`, validated (STORAGE_ERROR if it is not one diskflow wrote), or null without one. */
export async function readHeader(root: string): Promise<RepositoryHeader | null> {
  const raw = await readJson(join(root, HEADER_FILE));
  return raw === null ? null : parseHeader(raw, root);
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
    return join(this.location, RECORD_DIRS[kind], `${requireId(id, `${kind} id`)}.json`);
  }

  private dataPath(volumeId: string, format: VolumeFormat, prefix = ''): string {
    return join(this.location, 'volumes', `${prefix}${requireId(volumeId, 'volume id')}.${format}`);
  }

  async readRecord(kind: RecordKind, id: string): Promise<unknown | null> {
    const path = this.recordPath(kind, id);
    const raw = await readJson(path);
    return raw === null ? null : requireOwnId(kind, id, raw, path);
  }

  async listRecords<T>(kind: RecordKind, parse: (raw: unknown) => T): Promise<T[]> {
    const dir = join(this.location, RECORD_DIRS[kind]);
    await requireOwnDirectory(dir);
    // Only files named as records are (others are not diskflow's, and are left alone).
    const names = (await readdir(dir)).filter((n) => RECORD_FILE.test(n));
    return readJsonFiles(names.map((n) => join(dir, n)), (raw, path) => parse(requireOwnId(kind, basename(path, '.json'), raw, path)));
  }

  async createRecord(kind: RecordKind, id: string, value: unknown): Promise<boolean> {
    return createFileExclusive(this.recordPath(kind, id), serialize(value), this.tmp);
  }

  async writeRecord(kind: RecordKind, id: string, value: unknown): Promise<void> {
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
    // A half-made volume is replaced, never opened (it may be anything); unlink removes a link itself, not what it names.
    await requireOwnDirectory(join(this.location, 'volumes'));
    await unlink(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
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
    await requireOwnDirectory(join(this.location, 'volumes'));
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
    // A volumes/ swapped for a link to another repository would make its volumes look like orphans here.
    await requireOwnDirectory(dir);
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
    // Ages compare the file's mtime (the writer's or the file server's clock) with this host's
    // clock: a rough measure, which is why only files older than minutes count as strays.
    const now = Date.now();
    await requireOwnDirectory(this.tmp);
    const names = (await readdir(this.tmp)).filter((name) => STRAY_NAME.test(name));
    const facts = await statFiles(names.map((name) => join(this.tmp, name)));
    return facts.filter((f) => f.isFile).map((f) => ({ name: basename(f.path), ageMs: now - f.mtimeMs, bytes: f.allocatedBytes }));
  }

  async removeStrayFile(name: string): Promise<void> {
    if (!STRAY_NAME.test(name)) throw new DiskflowError('INVALID_ARGUMENT', `${JSON.stringify(name).slice(0, 80)} is not a temporary file of diskflow`);
    await requireOwnDirectory(this.tmp);
    const path = join(this.tmp, name);
    const info = await lstat(path).catch(() => null);
    if (!info?.isFile()) return;
    await unlink(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }

  /** The path qemu opens, once the file is known to be what its records say (volume-check.ts). */
  async activate(volumeId: string, format: VolumeFormat): Promise<string> {
    await this.assertOpenable(volumeId, format);
    return this.dataPath(volumeId, format);
  }

  async assertOpenable(volumeId: string, format: VolumeFormat): Promise<void> {
    const path = this.dataPath(volumeId, format);
    await assertOpenable(this, volumeId, format, () => readHeaderOf(path));
  }

  /** The qcow2 header of each volume (or why it cannot be read), for a check: one buffer for all, nothing kept. */
  async readVolumeHeaders(volumeIds: readonly string[]): Promise<Map<string, HeadReading | string>> {
    const readings = await readHeads(volumeIds, (id) => this.dataPath(id, 'qcow2'), readQcow2HeaderSync);
    return readings;
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

/** The qcow2 header of a volume file, which must be a regular file (a link is never followed). */
async function readHeaderOf(path: string): Promise<HeadReading> {
  const reading = (await readHeads([path], (p) => p, readQcow2HeaderSync)).get(path);
  if (reading === undefined) throw new DiskflowError('STORAGE_ERROR', `volume file ${path} is missing`, false);
  if (typeof reading === 'string') throw new DiskflowError('STORAGE_ERROR', reading, false);
  return reading;
}

function serialize(value: unknown): string {
  return JSON.stringify(value, null, 1) + '\n';
}
