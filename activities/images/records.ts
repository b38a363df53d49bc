/**
 * The records diskflow keeps in a repository's own metadata: the truth about every image and
 * volume (docs/ON-DISK.md documents each field). Loose objects, so a record written by a
 * newer diskflow keeps the fields this one does not know when this one rewrites it.
 *
 * Storage is untrusted input (anyone with access to it can write it): ids are UUIDs (they name
 * files, LVs and links), sizes and counters are bounded, operation ids are workflow ids.
 */
import { z } from 'zod';
import { ImageState, Stage } from '../../api/image-status';
import { HostId, ImageId, ImageKind, MAX_VIRTUAL_SIZE, OperationId, RepoUuid, ServeMode, Strategy, Uuid, UserData, UUID_PATTERN, VolumeId } from '../../api/values';

/** An ISO time as diskflow writes it (informational: never compared across hosts). */
const Time = z.string().max(64);
const VirtualSize = z.number().int().positive().max(MAX_VIRTUAL_SIZE);
/** A byte offset or count within a volume. */
const Bytes = z.number().int().nonnegative().max(MAX_VIRTUAL_SIZE);
const Counter = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const VolumeFormat = z.enum(['raw', 'qcow2']);

export const VolumeRecord = z.looseObject({
  schema: z.literal('diskflow.volume/1'),
  volumeId: VolumeId,
  format: VolumeFormat,
  /** The volume this one is a qcow2 overlay of. */
  parentId: VolumeId.nullable(),
  size: VirtualSize,
  /** False from before the first write until after the last: a volume never to be used as is. */
  legal: z.boolean(),
  createdAt: Time,
  /** The operation (workflow id) that made it. */
  createdBy: OperationId,
});
export type VolumeRecord = z.infer<typeof VolumeRecord>;

/** Where a copy reads from: an image's chain, as it was when the copy was persisted. */
export const CopySource = z.object({
  repoUuid: RepoUuid,
  imageId: ImageId,
  /** The source's contentEpoch when the copy started: a change means it may have been written meanwhile. */
  contentEpoch: Counter,
});
export type CopySource = z.infer<typeof CopySource>;

/** What every job that fills one new volume range by range records (a copy, an import). */
const VolumeFill = {
  /** The volume being written; it is not legal until the job is done. */
  volumeId: VolumeId,
  format: VolumeFormat,
  preallocate: z.boolean(),
  copiedUpTo: Bytes,
  /** Bytes of data (not virtual size) the job moves, and how many of them are done. */
  totalBytes: Bytes.nullable(),
  doneBytes: Bytes,
  /** The attempt that owns the job now: an older attempt that finds another one here stops. */
  attempt: Uuid.nullable(),
  /** Bytes per second the job may move, as its call asked (null: the host's DISKFLOW_COPY_RATE_LIMIT, or unlimited). */
  bandwidth: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).nullable().default(null),
};

/** A job's volume before its first byte: raw and preallocated for performance, else a sparse qcow2. */
export function freshVolumeFill(volumeId: string, performance: boolean, bandwidth: number | null): z.infer<z.ZodObject<typeof VolumeFill>> {
  return { volumeId, format: performance ? 'raw' : 'qcow2', preallocate: performance, copiedUpTo: 0, totalBytes: null, doneBytes: 0, attempt: null, bandwidth };
}

/**
 * A copy of an image's content into one new volume, resumable: ranges of the source are copied
 * in ascending order and `copiedUpTo` (a virtual offset) only moves past whole ranges.
 */
export const CopyJob = z.object({
  source: CopySource,
  ...VolumeFill,
  /**
   * An incremental copy: the volume is a qcow2 overlay of this image's volume (a snapshot in the
   * same repository) and receives only what differs from it (docs: "Incremental copies").
   */
  base: z.object({ imageId: ImageId, volumeId: VolumeId }).nullable().default(null),
  /**
   * What the new volume needs (qemu-img measure of the source's chain), as the copy's call
   * measured it before accepting it; null: measured when the data step starts.
   */
  requiredBytes: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).nullable().default(null),
});
export type CopyJob = z.infer<typeof CopyJob>;

/**
 * The change tracking record of a copy: the qcow2 persistent dirty bitmap that diskflow added
 * to its source's top volume right before reading it, so that a later copy based on this one
 * reads only what changed since. Trusted only while the source is still that volume at that
 * contentEpoch and the bitmap is there and consistent (change-tracking.ts).
 */
export const ChangeTracking = z.object({
  repoUuid: RepoUuid,
  imageId: ImageId,
  /** The source's top volume holding the bitmap. */
  volumeId: VolumeId,
  /** `diskflow-<target repo uuid>-<copy's imageId>` (change-tracking.ts): a name diskflow gave. */
  bitmap: z.string().regex(new RegExp(`^diskflow-${UUID_PATTERN}-${UUID_PATTERN}$`)),
  /** The source's contentEpoch the copy read (records written before chainEpoch existed are judged by it). */
  contentEpoch: Counter,
  /** The source's chainEpoch the copy read: a chain replaced since is not covered by the bitmap. */
  chainEpoch: Counter.optional(),
});
export type ChangeTracking = z.infer<typeof ChangeTracking>;

/** How an incremental copy found what differs from its base. */
export const IncrementalMethod = z.enum(['bitmap', 'compare']);
export type IncrementalMethod = z.infer<typeof IncrementalMethod>;

/** Formats an import reads (never following a backing or data file named inside the source). */
export const SourceFormat = z.enum(['raw', 'qcow2', 'vmdk', 'vhdx', 'vdi']);
export type SourceFormat = z.infer<typeof SourceFormat>;

/**
 * An import of a file on the importing host, or of an http(s) URL, into the image's one volume:
 * resumable as a copy is (ranges in ascending order, `copiedUpTo` past whole ranges). The source
 * is trusted only as it was probed: a different size, mtime or ETag starts the import over.
 */
export const ImportJob = z.object({
  source: z.object({ location: z.string().min(1).max(4096), format: SourceFormat }),
  /** What identifies the source's content when it was probed (size, and mtime or ETag/Last-Modified). */
  identity: z.string().max(1024),
  /** The host the import runs on (a local file is there). */
  onHost: HostId,
  /** The source's SHA-256 (lowercase hex) to verify before the image becomes usable; `verified` once it was. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/).nullable(),
  verified: z.boolean(),
  ...VolumeFill,
});
export type ImportJob = z.infer<typeof ImportJob>;

/** What a mend must still do before the image is usable; null once it is. */
export const PendingWork = z.discriminatedUnion('step', [
  /** Make the image's volume: blank, or a qcow2 overlay of `parentId`. */
  z.looseObject({
    step: z.literal('create-volume'),
    format: VolumeFormat,
    preallocate: z.boolean(),
    parentId: VolumeId.nullable().default(null),
    /** The status the image has once the volume exists (a thin overlay made for performance is degraded). */
    then: ImageState.default('optimized'),
  }),
  /** Fill the image's volume with another image's content. */
  z.looseObject({ step: z.literal('copy'), job: CopyJob }),
  /** Fill the image's volume from a file or URL outside the repository. */
  z.looseObject({ step: z.literal('import'), job: ImportJob }),
  /** A snapshot's volume that a VM still writes until the live snapshot of `diskId` moves it off. */
  z.looseObject({ step: z.literal('live-snapshot'), diskId: ImageId }),
]);
export type PendingWork = z.infer<typeof PendingWork>;

/**
 * A live operation's change of a served disk's block graph, persisted before its QMP command and
 * cleared by the record change after it: a worker or daemon that dies in between leaves it here,
 * and whoever comes next (the retried step, teardown, a mend) settles the graph and the record
 * from what the daemon, or the volumes, say (activities/serving/settle.ts).
 */
export const LiveStep = z.discriminatedUnion('kind', [
  /** The VM moves onto `overlay`; the volume it wrote becomes snapshot `snapshotId`. */
  z.object({ kind: z.literal('snapshot'), snapshotId: ImageId, overlay: VolumeId }),
  /** `upper` is committed into `lower` (below it); `pivoting` once the VM is being moved onto `lower`. */
  z.object({ kind: z.literal('merge'), upper: VolumeId, lower: VolumeId, pivoting: z.boolean() }),
  /** The chain is mirrored into `target` (write-blocking); `pivoting` once the VM is being moved onto it. */
  z.object({ kind: z.literal('optimize'), target: VolumeId, pivoting: z.boolean() }),
]);
export type LiveStep = z.infer<typeof LiveStep>;

/** How a prepared image is served to its VM by diskflow's own qemu-storage-daemon, on one host. */
export const Served = z.object({
  hostId: HostId,
  mode: ServeMode,
  /** What the VM opens: an nbd+unix URI, a vhost-user-blk socket, a FUSE file. */
  address: z.string().max(4096),
  since: Time,
  /** Its daemon was found gone: the VM lost its disk; a mend serves it again. */
  lost: z.object({ at: Time, why: z.string().max(4096) }).nullable().default(null),
  live: LiveStep.nullable().default(null),
});
export type Served = z.infer<typeof Served>;

export const OperationClaim = z.object({
  /** Workflow id of the operation working on the image. */
  id: OperationId,
  /** What it does: an operation type (`copyImage`, `fix:merge`, ...). */
  type: z.string().max(64),
  startedAt: Time,
});
export type OperationClaim = z.infer<typeof OperationClaim>;

export const ImageRecord = z.looseObject({
  schema: z.literal('diskflow.image/1'),
  imageId: ImageId,
  kind: ImageKind,
  size: VirtualSize,
  userData: UserData,
  strategy: Strategy,
  /** Top volume of the image's chain; parents follow VolumeRecord.parentId. */
  volumeId: VolumeId,
  /** Bumped on every change: fix data states the generation the check saw, a write sent to the SRM the one it read. */
  generation: Counter,
  /**
   * Bumped whenever the image's content may change under a reader: prepared for a VM (a writer
   * is let at it), or its chain replaced. A copy compares it before and after reading to know
   * its copy is of one instant.
   */
  contentEpoch: Counter.default(0),
  /**
   * Bumped whenever the image's chain is replaced (snapshot, optimize, merge), not when a VM
   * writes it: a dirty bitmap on the top volume counts a VM's writes, not a chain replaced.
   */
  chainEpoch: Counter.default(0),
  status: ImageState,
  pending: PendingWork.nullable(),
  /** An optimize in progress: the image stays usable while a better representation is made. */
  optimizing: CopyJob.nullable().default(null),
  /** Where changes after this copy are counted on its source, or null (see ChangeTracking). */
  changeTracking: ChangeTracking.nullable().default(null),
  /** An incremental copy: the base it was made on and how the differences were found. */
  incremental: z.object({ baseImageId: ImageId, method: IncrementalMethod }).nullable().default(null),
  /**
   * A resize persisted (the record's `size` is the new size already) whose top volume may not
   * have grown yet: a fix grows it (`qemu-img resize`, or QMP `block_resize` on the daemon
   * serving it) and clears this. `from` is the size before.
   */
  resizing: z.object({ from: VirtualSize, operationId: OperationId }).nullable().default(null),
  /**
   * Exported read-only over NBD for a backup tool to pull (serveBackup), by this operation on
   * this host: while it runs, the image is one of the export's readers, and neither prepared for
   * a VM nor removed.
   */
  backupExport: z.object({ operationId: OperationId, hostId: HostId, since: Time }).nullable().default(null),
  /** Removal mark: the image is gone for users; a clean fix reclaims its volumes. */
  removed: z.object({ at: Time, operationId: OperationId }).nullable(),
  operation: OperationClaim.nullable(),
  /**
   * Operations (workflow ids) copying this image, with since when: many copies read one image at
   * once; while any of them reads, no VM is let at it, nothing changes its chain, and its volumes
   * stay even once it is removed.
   */
  readers: z.record(OperationId, Time).default({}),
  /** Hosts that prepared the image for a VM, with when. */
  prepared: z.record(HostId, Time),
  /** Served to its VM by diskflow's block layer (prepared with `serve`): live operations run through it. */
  served: Served.nullable().default(null),
  hostId: HostId.nullable(),
  stage: Stage.nullable(),
  percentComplete: z.number().int().min(-1).max(100),
  lastError: z.string().nullable(),
  createdAt: Time,
  /** The operation (workflow id) that created the image: a retried persist step recognises its own record. */
  createdBy: OperationId,
  updatedAt: Time,
});
export type ImageRecord = z.infer<typeof ImageRecord>;
