/**
 * The records diskflow keeps in a repository's own metadata: the truth about every image and
 * volume (docs/ARCHITECTURE.md documents each field). Loose objects, so a record written by a
 * newer diskflow keeps the fields this one does not know when this one rewrites it.
 */
import { z } from 'zod';
import { ImageState, Stage } from '../../api/image-status';
import { HostId, ImageId, ImageKind, ServeMode, Strategy, UserData } from '../../api/values';

export const VolumeFormat = z.enum(['raw', 'qcow2']);

export const VolumeRecord = z.looseObject({
  schema: z.literal('diskflow.volume/1'),
  volumeId: z.string(),
  format: VolumeFormat,
  /** The volume this one is a qcow2 overlay of. */
  parentId: z.string().nullable(),
  size: z.number().int().positive(),
  /** False from before the first write until after the last: a volume never to be used as is. */
  legal: z.boolean(),
  createdAt: z.string(),
  /** The operation (workflow id) that made it. */
  createdBy: z.string(),
});
export type VolumeRecord = z.infer<typeof VolumeRecord>;

/** Where a copy reads from: an image's chain, as it was when the copy was persisted. */
export const CopySource = z.object({
  repoUuid: z.string(),
  imageId: z.string(),
  /** The source's contentEpoch when the copy started: a change means it may have been written meanwhile. */
  contentEpoch: z.number().int().nonnegative(),
});
export type CopySource = z.infer<typeof CopySource>;

/**
 * A copy of an image's content into one new volume, resumable: ranges of the source are copied
 * in ascending order and `copiedUpTo` (a virtual offset) only moves past whole ranges.
 */
export const CopyJob = z.object({
  source: CopySource,
  /** The volume being written; it is not legal until the job is done. */
  volumeId: z.string(),
  format: VolumeFormat,
  preallocate: z.boolean(),
  copiedUpTo: z.number().int().nonnegative(),
  /** Bytes of data (not virtual size) the copy moves, and how many of them are done. */
  totalBytes: z.number().int().nonnegative().nullable(),
  doneBytes: z.number().int().nonnegative(),
  /** The attempt that owns the job now: an older attempt that finds another one here stops. */
  attempt: z.string().nullable(),
  /**
   * An incremental copy: the volume is a qcow2 overlay of this image's volume (a snapshot in the
   * same repository) and receives only what differs from it (docs: "Incremental copies").
   */
  base: z.object({ imageId: z.string(), volumeId: z.string() }).nullable().default(null),
  /** Bytes per second the copy may move, as its call asked (null: the host's DISKFLOW_COPY_RATE_LIMIT, or unlimited). */
  bandwidth: z.number().int().positive().nullable().default(null),
});
export type CopyJob = z.infer<typeof CopyJob>;

/**
 * The change tracking record of a copy: the qcow2 persistent dirty bitmap that diskflow added
 * to its source's top volume right before reading it, so that a later copy based on this one
 * reads only what changed since. Trusted only while the source is still that volume at that
 * contentEpoch and the bitmap is there and consistent (change-tracking.ts).
 */
export const ChangeTracking = z.object({
  repoUuid: z.string(),
  imageId: z.string(),
  /** The source's top volume holding the bitmap. */
  volumeId: z.string(),
  bitmap: z.string(),
  /** The source's contentEpoch the copy read (records written before chainEpoch existed are judged by it). */
  contentEpoch: z.number().int().nonnegative(),
  /** The source's chainEpoch the copy read: a chain replaced since is not covered by the bitmap. */
  chainEpoch: z.number().int().nonnegative().optional(),
});
export type ChangeTracking = z.infer<typeof ChangeTracking>;

/** How an incremental copy found what differs from its base. */
export const IncrementalMethod = z.enum(['bitmap', 'compare']);
export type IncrementalMethod = z.infer<typeof IncrementalMethod>;

/** What a mend must still do before the image is usable; null once it is. */
export const PendingWork = z.discriminatedUnion('step', [
  /** Make the image's volume: blank, or a qcow2 overlay of `parentId`. */
  z.looseObject({
    step: z.literal('create-volume'),
    format: VolumeFormat,
    preallocate: z.boolean(),
    parentId: z.string().nullable().default(null),
    /** The status the image has once the volume exists (a thin overlay made for performance is degraded). */
    then: ImageState.default('optimized'),
  }),
  /** Fill the image's volume with another image's content. */
  z.looseObject({ step: z.literal('copy'), job: CopyJob }),
  /** A snapshot's volume that a VM still writes until the live snapshot of `diskId` moves it off. */
  z.looseObject({ step: z.literal('live-snapshot'), diskId: z.string() }),
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
  z.object({ kind: z.literal('snapshot'), snapshotId: z.string(), overlay: z.string() }),
  /** `upper` is committed into `lower` (below it); `pivoting` once the VM is being moved onto `lower`. */
  z.object({ kind: z.literal('merge'), upper: z.string(), lower: z.string(), pivoting: z.boolean() }),
  /** The chain is mirrored into `target` (write-blocking); `pivoting` once the VM is being moved onto it. */
  z.object({ kind: z.literal('optimize'), target: z.string(), pivoting: z.boolean() }),
]);
export type LiveStep = z.infer<typeof LiveStep>;

/** How a prepared image is served to its VM by diskflow's own qemu-storage-daemon, on one host. */
export const Served = z.object({
  hostId: HostId,
  mode: ServeMode,
  /** What the VM opens: an nbd+unix URI, a vhost-user-blk socket, a FUSE file. */
  address: z.string(),
  since: z.string(),
  /** Its daemon was found gone: the VM lost its disk; a mend serves it again. */
  lost: z.object({ at: z.string(), why: z.string() }).nullable().default(null),
  live: LiveStep.nullable().default(null),
});
export type Served = z.infer<typeof Served>;

export const OperationClaim = z.object({
  /** Workflow id of the operation working on the image. */
  id: z.string(),
  /** What it does: an operation type (`copyImage`, `fix:merge`, ...). */
  type: z.string(),
  startedAt: z.string(),
});
export type OperationClaim = z.infer<typeof OperationClaim>;

export const ImageRecord = z.looseObject({
  schema: z.literal('diskflow.image/1'),
  imageId: ImageId,
  kind: ImageKind,
  size: z.number().int().positive(),
  userData: UserData,
  strategy: Strategy,
  /** Top volume of the image's chain; parents follow VolumeRecord.parentId. */
  volumeId: z.string(),
  /** Bumped on every change: steps and fix data state the generation they expect. */
  generation: z.number().int().nonnegative(),
  /**
   * Bumped whenever the image's content may change under a reader: prepared for a VM (a writer
   * is let at it), or its chain replaced. A copy compares it before and after reading to know
   * its copy is of one instant.
   */
  contentEpoch: z.number().int().nonnegative().default(0),
  /**
   * Bumped whenever the image's chain is replaced (snapshot, optimize, merge), not when a VM
   * writes it: a dirty bitmap on the top volume counts a VM's writes, not a chain replaced.
   */
  chainEpoch: z.number().int().nonnegative().default(0),
  status: ImageState,
  pending: PendingWork.nullable(),
  /** An optimize in progress: the image stays usable while a better representation is made. */
  optimizing: CopyJob.nullable().default(null),
  /** Where changes after this copy are counted on its source, or null (see ChangeTracking). */
  changeTracking: ChangeTracking.nullable().default(null),
  /** An incremental copy: the base it was made on and how the differences were found. */
  incremental: z.object({ baseImageId: z.string(), method: IncrementalMethod }).nullable().default(null),
  /** Removal mark: the image is gone for users; a clean fix reclaims its volumes. */
  removed: z.object({ at: z.string(), operationId: z.string() }).nullable(),
  operation: OperationClaim.nullable(),
  /**
   * Operations (workflow ids) copying this image, with since when: many copies read one image at
   * once; while any of them reads, no VM is let at it, nothing changes its chain, and its volumes
   * stay even once it is removed.
   */
  readers: z.record(z.string(), z.string()).default({}),
  /** Hosts that prepared the image for a VM, with when. */
  prepared: z.record(HostId, z.string()),
  /** Served to its VM by diskflow's block layer (prepared with `serve`): live operations run through it. */
  served: Served.nullable().default(null),
  hostId: HostId.nullable(),
  stage: Stage.nullable(),
  percentComplete: z.number().int().min(-1).max(100),
  lastError: z.string().nullable(),
  createdAt: z.string(),
  /** The operation (workflow id) that created the image: a retried persist step recognises its own record. */
  createdBy: z.string(),
  updatedAt: z.string(),
});
export type ImageRecord = z.infer<typeof ImageRecord>;
