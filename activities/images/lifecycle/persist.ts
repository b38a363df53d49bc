/** Persist: the record of a new image. */
import type { ImageKind, Strategy, UserData } from '../../../api/values';
import type { Repository } from '../../repository/repository';
import { createImage } from '../image-store';
import type { ImageRecord, PendingWork } from '../records';
import { claimFor, now } from './rules';

export interface NewImage {
  imageId: string;
  kind: ImageKind;
  size: number;
  userData: UserData;
  strategy: Strategy;
  volumeId: string;
  operationId: string;
  operationType: string;
  hostId: string;
  /** Whether the operation goes on to fix the image itself; only then does it claim it. */
  claim: boolean;
  /** Work left before the image is usable; null for an image that is usable at once. */
  pending: PendingWork | null;
  /** The status of an image that needs no work. */
  status?: ImageRecord['status'];
  stages?: number;
}

/** The record of a new image: broken until its pending work is done. */
export function newImageRecord(n: NewImage): ImageRecord {
  const at = now();
  return {
    schema: 'diskflow.image/1',
    imageId: n.imageId,
    kind: n.kind,
    size: n.size,
    userData: n.userData,
    strategy: n.strategy,
    volumeId: n.volumeId,
    generation: 1,
    contentEpoch: 0,
    chainEpoch: 0,
    status: n.pending ? 'broken' : (n.status ?? 'optimized'),
    pending: n.pending,
    optimizing: null,
    resizing: null,
    backupExport: null,
    changeTracking: null,
    incremental: null,
    removed: null,
    operation: n.claim && n.pending ? claimFor(n.operationId, n.operationType) : null,
    readers: {},
    prepared: {},
    served: null,
    hostId: n.hostId,
    stage: n.pending ? { current: 0, total: n.stages ?? 1 } : null,
    percentComplete: n.pending ? 0 : 100,
    lastError: null,
    createdAt: at,
    createdBy: n.operationId,
    updatedAt: at,
  };
}

/**
 * Persists a new image. False when its id is taken: by this same operation in an earlier
 * attempt (the caller reads the record to tell), or by another image.
 */
export function persistNewImage(repo: Repository, image: NewImage): Promise<boolean> {
  return createImage(repo, newImageRecord(image));
}
