/** The `options` argument of each call (API.md, "options of the image calls"). Unknown keys are refused. */
import { z } from 'zod';
import { HostId, ImageId, ImageKind, RepoId, RequestId, ServeMode, Sha256, Strategy } from './values';

const lookup = {
  participatingRepositories: z.array(RepoId).min(1, { error: 'must list at least one repository' }).optional(),
  imageHints: z.record(ImageId, RepoId).optional(),
};

export const CreateVirtualDiskOptions = z.strictObject({
  autoFix: z.boolean().default(true),
  strategy: Strategy.default('space'),
  ...lookup,
  requestId: RequestId.optional(),
});
export type CreateVirtualDiskOptions = z.infer<typeof CreateVirtualDiskOptions>;

/**
 * createSnapshot has no choice to make and nothing to look up: the disk is in targetRepoId and
 * moves onto a thin qcow2 overlay of the snapshot (an optimize fix flattens it later). So
 * `strategy` other than 'space' is refused, and lookup options are unknown keys (refused).
 * 'space' stays accepted: clients fill it in, and recorded operations carry it.
 */
export const CreateSnapshotOptions = z.strictObject({
  autoFix: z.boolean().default(true),
  strategy: z
    .literal('space', { error: "createSnapshot has no strategy to choose: the disk always moves onto a thin qcow2 overlay of the snapshot (an optimize fix flattens it)" })
    .default('space'),
  requestId: RequestId.optional(),
});
export type CreateSnapshotOptions = z.infer<typeof CreateSnapshotOptions>;

/** Bytes per second a data job may move (a copy, a live merge or optimize): spares the storage and a running VM. */
const Bandwidth = z
  .number({ error: 'must be a number of bytes per second' })
  .int({ error: 'must be a whole number of bytes per second' })
  .positive({ error: 'must be greater than 0' })
  .describe('bytes per second; unlimited (or the host\'s DISKFLOW_COPY_RATE_LIMIT) when absent');

export const CopyImageOptions = z.strictObject({
  autoFix: z.boolean().default(true),
  strategy: Strategy.default('space'),
  ...lookup,
  kind: ImageKind.optional(),
  bandwidth: Bandwidth.optional(),
  requestId: RequestId.optional(),
});
export type CopyImageOptions = z.infer<typeof CopyImageOptions>;

export const ImportImageOptions = z.strictObject({
  autoFix: z.boolean().default(true),
  strategy: Strategy.default('space'),
  kind: ImageKind.default('virtual-disk'),
  /** The source's format; `auto` reads its magic (a file that is none of the others is raw). */
  format: z.enum(['auto', 'raw', 'qcow2', 'vmdk', 'vhdx', 'vdi']).default('auto'),
  /** Verified over the source's bytes before the image becomes usable. */
  sha256: Sha256.optional(),
  bandwidth: Bandwidth.optional(),
  requestId: RequestId.optional(),
});
export type ImportImageOptions = z.infer<typeof ImportImageOptions>;

export const ExportImageOptions = z.strictObject({
  format: z.enum(['qcow2', 'raw']).default('qcow2'),
  /** qcow2 compressed clusters (slower, smaller). */
  compress: z.boolean().default(false),
  ...lookup,
  requestId: RequestId.optional(),
});
export type ExportImageOptions = z.infer<typeof ExportImageOptions>;

export const MeasureOptions = z.strictObject({
  strategy: Strategy.default('space'),
  format: ImportImageOptions.shape.format,
  ...lookup,
});
export type MeasureOptions = z.infer<typeof MeasureOptions>;

export const RemoveImageOptions = z.strictObject({
  autoFix: z.boolean().default(true),
  requestId: RequestId.optional(),
});
export type RemoveImageOptions = z.infer<typeof RemoveImageOptions>;

export const ResizeVirtualDiskOptions = z.strictObject({
  autoFix: z.boolean().default(true),
  requestId: RequestId.optional(),
});
export type ResizeVirtualDiskOptions = z.infer<typeof ResizeVirtualDiskOptions>;

/** The longest a backup export may wait unused before it ends by itself: a week. */
export const MAX_IDLE_SECONDS = 7 * 24 * 3600;

export const ServeBackupOptions = z.strictObject({
  /** The export ends after this long without a client connecting or reading. */
  idleTimeoutSeconds: z
    .number({ error: 'must be a number of seconds' })
    .int({ error: 'must be a whole number of seconds' })
    .positive({ error: 'must be greater than 0' })
    .max(MAX_IDLE_SECONDS, { error: `must be at most ${MAX_IDLE_SECONDS} seconds (a week)` })
    .default(300),
  requestId: RequestId.optional(),
});
export type ServeBackupOptions = z.infer<typeof ServeBackupOptions>;

export const CheckOptions = z.strictObject({});

export const FixOptions = z.strictObject({
  hostId: HostId.optional(),
  bandwidth: Bandwidth.optional(),
  requestId: RequestId.optional(),
});
export type FixOptions = z.infer<typeof FixOptions>;

export const HostOption = z.strictObject({ hostId: HostId.optional() });

export const PrepareOptions = z.strictObject({
  /**
   * Serve the image through diskflow's own block layer (a qemu-storage-daemon on the host) as NBD,
   * vhost-user-blk or a FUSE file; snapshot, copy, merge and optimize then run live while the VM
   * writes. Absent: the VM opens the top volume itself (fastest), and those wait for teardown.
   */
  serve: ServeMode.optional(),
});
export type PrepareOptions = z.infer<typeof PrepareOptions>;

export const TeardownOptions = z.strictObject({
  /**
   * Release the prepared mark of this host instead of the caller's: a host the engine knows is
   * fenced (dead, powered off, cut from the storage), so its VM can no longer write the image.
   */
  fencedHostId: HostId.optional(),
});
export type TeardownOptions = z.infer<typeof TeardownOptions>;
