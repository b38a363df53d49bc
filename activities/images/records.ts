/**
 * The records diskflow keeps in a repository's own metadata: the truth about every image and
 * volume (docs/ARCHITECTURE.md documents each field). Loose objects, so a record written by a
 * newer diskflow keeps the fields this one does not know when this one rewrites it.
 */
import { z } from 'zod';
import { ImageState, Stage } from '../../api/image-status';
import { HostId, ImageId, ImageKind, Strategy, UserData } from '../../api/values';

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

/** What a mend must still do before the image is usable; null once it is. */
export const PendingWork = z.discriminatedUnion('step', [
  z.looseObject({
    step: z.literal('create-volume'),
    format: VolumeFormat,
    preallocate: z.boolean(),
  }),
]);
export type PendingWork = z.infer<typeof PendingWork>;

export const OperationClaim = z.object({
  /** Workflow id of the operation working on the image. */
  id: z.string(),
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
  status: ImageState,
  pending: PendingWork.nullable(),
  /** Removal mark: the image is gone for users; a clean fix reclaims its volumes. */
  removed: z.object({ at: z.string(), operationId: z.string() }).nullable(),
  operation: OperationClaim.nullable(),
  /** Hosts that prepared the image for a VM, with when. */
  prepared: z.record(HostId, z.string()),
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
