/** The record of an image that an operation has just persisted: broken until its work is done. */
import type { ImageKind, Strategy, UserData } from '../../api/values';
import { claimFor } from './claims';
import type { ImageRecord, PendingWork } from './records';

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

export function newImageRecord(n: NewImage): ImageRecord {
  const now = new Date().toISOString();
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
    status: n.pending ? 'broken' : (n.status ?? 'optimized'),
    pending: n.pending,
    optimizing: null,
    changeTracking: null,
    incremental: null,
    removed: null,
    operation: n.claim && n.pending ? claimFor(n.operationId, n.operationType) : null,
    prepared: {},
    hostId: n.hostId,
    stage: n.pending ? { current: 0, total: n.stages ?? 1 } : null,
    percentComplete: n.pending ? 0 : 100,
    lastError: null,
    createdAt: now,
    createdBy: n.operationId,
    updatedAt: now,
  };
}
