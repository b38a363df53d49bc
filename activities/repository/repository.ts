/**
 * The one interface every repository format implements. Nothing outside
 * activities/repository/formats/ knows which format a repository has: image logic reads and
 * writes records and volumes through this interface only.
 */
import { z } from 'zod';
import { RepoFormat } from '../../api/formats';
import type { FormatTraits } from '../../api/formats';
import { RepoUuid } from '../../api/values';
import type { HeadReading } from '../qemu/qcow2-header';
import type { VolumeFormat } from '../qemu/qemu-img';
import { corrupt } from './record-json';

/** Written once by init, at the root of the repository; identifies it on every host. */
export const RepositoryHeaderSchema = z.looseObject({
  schema: z.literal('diskflow.repository/1'),
  format: RepoFormat,
  /** Stable identity used to name task queues and directories under DISKFLOW_HOME; never shown in the API (repoIds are handles). */
  uuid: RepoUuid,
  createdAt: z.string().max(64),
});
export interface RepositoryHeader {
  schema: 'diskflow.repository/1';
  format: RepoFormat;
  uuid: string;
  createdAt: string;
}

/** A header as read from storage: validated, as anything storage holds (STORAGE_ERROR otherwise). */
export function parseHeader(raw: unknown, where: string): RepositoryHeader {
  const parsed = RepositoryHeaderSchema.safeParse(raw);
  if (!parsed.success) throw corrupt(`the repository header of ${where}`, parsed.error.issues.map((i) => `${i.path.join('.') || 'header'}: ${i.message}`).join('; '));
  const { schema, format, uuid, createdAt } = parsed.data;
  return { schema, format, uuid, createdAt };
}

export type RecordKind = 'image' | 'volume';

export interface VolumeSpec {
  volumeId: string;
  format: VolumeFormat;
  size: number;
  /** The volume this one is a qcow2 overlay of, if any. */
  parent: { volumeId: string; format: VolumeFormat } | null;
  /** Allocate all space now (raw images made for performance). */
  preallocate: boolean;
}

export interface StoredVolume {
  volumeId: string;
  /** Bytes the volume occupies on the repository's storage. */
  allocatedBytes: number;
}

export interface Repository {
  readonly header: RepositoryHeader;
  readonly traits: FormatTraits;
  /** Where this host reaches the repository, for messages and logs. */
  readonly location: string;
  /** O_DIRECT works on this storage (it does not on tmpfs, for instance): copies bypass the page cache. */
  readonly directIo: boolean;

  /** Small metadata records, each replaced atomically. */
  readRecord(kind: RecordKind, id: string): Promise<unknown | null>;
  /**
   * Every record of a kind, each passed through `parse` as soon as it is read, so a scan of
   * thousands of records never holds them twice (raw and parsed).
   */
  listRecords<T>(kind: RecordKind, parse: (raw: unknown) => T): Promise<T[]>;
  /** Creates a record that must not exist yet; resolves false if it already did. */
  createRecord(kind: RecordKind, id: string, value: unknown): Promise<boolean>;
  writeRecord(kind: RecordKind, id: string, value: unknown): Promise<void>;
  deleteRecord(kind: RecordKind, id: string): Promise<void>;
  /** Runs `fn` while holding the lock of one record, so read-modify-write cycles never interleave. */
  withRecordLock<T>(kind: RecordKind, id: string, fn: () => Promise<T>): Promise<T>;
  /**
   * Runs `fn` while holding the repository's chains lock: held while what is garbage is decided
   * (not while it is purged: nothing can reference it again), and while a new reference to an
   * existing volume is made (images/references.ts). It holds across hosts: a lease lock where
   * many hosts write the files, the process's own lock where one host does (localfs), the SRM's
   * where only the SRM changes objects (others are refused with SRM_REQUIRED, so such steps go to
   * the SRM).
   */
  withChainsLock<T>(fn: () => Promise<T>): Promise<T>;

  /** Allocates and formats a volume, replacing any half-made one of the same id. */
  createVolume(spec: VolumeSpec, signal?: AbortSignal): Promise<void>;
  /**
   * Whether a volume just made by createVolume reads as zeros where nothing was written: then a
   * copy skips the source's holes. A fresh qcow2 or a sparse file does; a raw logical volume
   * holds whatever the disk held before.
   */
  readsAsZero(format: VolumeFormat): boolean;
  /** Removes a volume's storage (two-phase: first made unusable, then purged). Idempotent. */
  removeVolume(volumeId: string): Promise<void>;
  /** Volumes that physically exist, made or half-made, with the space they take. */
  listVolumes(): Promise<StoredVolume[]>;
  /** Temporary files left by atomic writes whose writer died (never those still being written). */
  listStrayFiles(): Promise<{ name: string; ageMs: number; bytes: number }[]>;
  /** Removes one of the files listStrayFiles found. */
  removeStrayFile(name: string): Promise<void>;
  /**
   * The name a qcow2 overlay records for its backing volume. qemu resolves it relative to the
   * directory of the path the overlay was opened by, so every format activates a volume's chain
   * into one directory where these names resolve, whatever the host's mount point or device.
   */
  backingReference(volumeId: string, format: VolumeFormat): string;
  /**
   * Makes sure a volume can hold `bytes` of data before a writer needs them. Block storage extends
   * its logical volume (thin qcow2 on LVs); files need nothing.
   */
  ensureCapacity(volumeId: string, bytes: number): Promise<void>;
  /**
   * Before a VM may write a volume (prepareImage): room for all `virtualSize` bytes of it, as
   * nothing grows a volume under a running VM. Block storage extends a thin qcow2 LV to its
   * full size (only the SRM may); files and raw volumes need nothing. Resolves false where the
   * room could not be made but the prepare may go on (an LV that cannot grow in place, without
   * device-mapper); NO_SPACE where the storage cannot hold the disk.
   */
  growForVm(volumeId: string, virtualSize: number): Promise<boolean>;
  /**
   * Once no host has the volume prepared: gives back what growForVm added beyond what the volume
   * holds (never below its data). Skipped, not failed, where that cannot be known for sure.
   */
  shrinkAfterVm(volumeId: string): Promise<void>;
  /**
   * Makes a volume usable on this host and returns the path qemu opens, once the volume is known
   * to be what its records say (volume-check.ts: a qcow2 header naming anything but its recorded
   * chain is STORAGE_ERROR, and the volume is never opened).
   */
  activate(volumeId: string, format: VolumeFormat): Promise<string>;
  /**
   * The check activate makes, without activating: where it needs no side effect (files), a
   * step that writes something before it activates (prepare marks the image) refuses first.
   */
  assertOpenable?(volumeId: string, format: VolumeFormat): Promise<void>;
  /**
   * For a check: the qcow2 header of each of these volumes as diskflow reads it (or why it cannot
   * be read), where that costs no activation. Formats that must activate a volume to read it
   * leave this out: their volumes are checked when they are activated.
   */
  readVolumeHeaders?(volumeIds: readonly string[]): Promise<Map<string, HeadReading | string>>;
  deactivate(volumeId: string): Promise<void>;
  /** Bytes still free for new volumes. */
  freeBytes(): Promise<number>;

  /** disconnectStorageRepository: this host stops using the repository (unmounts what it mounted). */
  disconnect(): Promise<void>;
  /**
   * The worker process stops but the host keeps the repository connected (it is reconnected on
   * restart, and VMs may still use prepared images): mounts stay. Formats without it disconnect.
   */
  release?(): Promise<void>;

  /** Formats that need an SRM: where the repository's SRM lease lies (activities/srm/). */
  readonly srmLease?: { device: string; offset: number };
  /** Formats that need an SRM: makes, on the SRM, a change another host sent (MetadataCall; activities/srm/forwarding-repository.ts). */
  applyMetadata?(call: MetadataCall): Promise<unknown>;
  /** Formats that need an SRM: their volume changes split in two, so the metadata part can be sent to the SRM. */
  readonly srmParts?: SrmVolumeParts;
}

/**
 * A format that needs an SRM, its volume changes split into the metadata part only the SRM makes
 * (each checks the lease: SRM_REQUIRED elsewhere) and the local part the host that asked makes
 * itself. The format composes them where it is the SRM; activities/srm/forwarding-repository.ts
 * composes them around a MetadataCall where it is not.
 */
export interface SrmVolumeParts {
  /** SRM: the storage of a new volume (an LV), replacing a half-made one of the same id. */
  allocateVolume(spec: VolumeSpec, signal?: AbortSignal): Promise<void>;
  /** SRM: grows a volume's storage to hold `bytes`. */
  extendVolume(volumeId: string, bytes: number): Promise<void>;
  /** Local, before allocateVolume: this host's mapping of a half-made volume of that id goes. */
  forgetHalfMade(volumeId: string): Promise<void>;
  /** Local, after allocateVolume: writes the new volume's format (qcow2 header, zeros of raw). */
  formatVolume(spec: VolumeSpec, signal?: AbortSignal): Promise<void>;
  /** Local, before a volume is removed: this host's mapping of it goes. */
  unmap(volumeId: string): Promise<void>;
  /** Local: the bytes a volume's storage holds now (STORAGE_ERROR if it has none). */
  capacity(volumeId: string): Promise<number>;
  /** Local, after extendVolume: this host's mapping covers the grown storage. */
  remap(volumeId: string): Promise<void>;
}

/** Lets a format check, before a metadata change only the SRM may make, that this host is it. */
export interface SrmGuard {
  /** Throws SRM_REQUIRED unless this host holds the repository's SRM lease right now. */
  assertHolding(repoUuid: string, what: string): Promise<void>;
  /** Whether this host holds the lease (as far as it knows now; assertHolding checks the device). */
  holds(repoUuid: string): boolean;
}

/**
 * A metadata change that only the SRM may make, as one JSON value, so that a host that is not
 * the SRM can send it there (activities/srm/forwarding-repository.ts) while it moves the data itself.
 * `writeRecord` of an image record is a compare-and-swap on its generation: the SRM writes it
 * only if the stored record is the one the writer read (`value.generation - 1`).
 */
export type MetadataCall =
  | { method: 'createRecord'; kind: RecordKind; id: string; value: unknown }
  | { method: 'writeRecord'; kind: RecordKind; id: string; value: unknown }
  | { method: 'deleteRecord'; kind: RecordKind; id: string }
  | { method: 'allocateVolume'; spec: VolumeSpec }
  | { method: 'removeVolume'; volumeId: string }
  | { method: 'extendVolume'; volumeId: string; bytes: number };

/** Sends metadata changes to the repository's SRM. */
export interface MetadataForwarder {
  /**
   * The SRM's answer to `call`, or null when this call is not to be sent (not inside a step, or
   * a step that came from the SRM queue: a host that lost the role then fails with SRM_REQUIRED).
   */
  forward(repoUuid: string, call: MetadataCall): Promise<unknown> | null;
}

/**
 * An image record changed by someone else since it was read (a compare-and-swap that lost):
 * updateImage reads it again and reapplies its change.
 */
export class RecordConflict extends Error {
  constructor(kind: RecordKind, id: string) {
    super(`${kind} record ${id} was changed by another writer`);
  }
}

/** What a host knows about itself when it connects a repository. */
export interface HostContext {
  hostId: string;
  /** DISKFLOW_HOME of this host: mount points and activation state live below it. */
  home: string;
  /**
   * The identity of that DISKFLOW_HOME (workers/home-lock.ts): leases this host takes carry it,
   * so a lease of the same host id from another DISKFLOW_HOME is never mistaken for its own.
   */
  homeId: string;
  /** This host's SRM roles; formats that need an SRM refuse metadata changes without it. */
  srm?: SrmGuard;
  /**
   * Where this host sends the metadata changes of formats that need an SRM when it is not the SRM
   * (read only by activities/srm/forwarding-repository.ts; formats never send anything).
   */
  metadataOnSrm?: MetadataForwarder;
}

export interface RepositoryDriver<Params> {
  readonly format: RepoFormat;
  /** Writes the header of a new repository; refuses (REPO_NOT_EMPTY) a target holding anything. */
  init(params: Params, host: HostContext): Promise<RepositoryHeader>;
  /** Reaches an existing repository (mounting it if needed) and checks its header. */
  connect(params: Params, host: HostContext): Promise<Repository>;
}
