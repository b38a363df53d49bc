/**
 * createSnapshot: the disk's current top volume becomes the snapshot's (frozen: nothing writes
 * it any more), and the disk moves onto a new qcow2 overlay of it, which its mend creates. Two
 * records change, in an order that is safe at every instant:
 *
 *   1. the disk points to its new overlay, broken, with the frozen volume as the overlay's
 *      parent in its pending work (so the volume stays referenced, and no VM can write it);
 *   2. the snapshot's record is created on the frozen volume, usable at once.
 *
 * A crash between 1 and 2 leaves a disk whose mend finishes the overlay: no data is lost, and
 * the retried step finds the disk already moved and only creates the snapshot. Refused while
 * the disk is prepared for a VM (IMAGE_IN_USE), checked in the same step as 1.
 */
import { randomUUID } from 'node:crypto';
import type { UserData } from '../../api/values';
import { failpoint } from '../failpoints';
import { readImage } from '../images/image-store';
import { freezeForSnapshot, persistNewImage } from '../images/lifecycle';
import type { Operation } from './operation';

export interface CreateSnapshotRequest {
  diskId: string;
  snapshotId: string;
  operationId: string;
  userData: UserData;
  autoFix: boolean;
}

export interface PersistSnapshotInput extends CreateSnapshotRequest {
  hostId: string;
}

export const createSnapshot: Operation<CreateSnapshotRequest, PersistSnapshotInput, Record<never, never>> = {
  async resolve({ hostId }, _targetRepoId, request) {
    return { ...request, hostId };
  },

  async persist({ operations }, repo, input) {
    if ((await readImage(repo, input.snapshotId))?.createdBy === input.operationId) return {};
    const actor = { operationId: input.operationId, hostId: input.hostId };
    const frozen = await freezeForSnapshot(repo, input.diskId, randomUUID(), actor, operations);
    failpoint('snapshot.disk-moved');
    await persistNewImage(repo, {
      imageId: input.snapshotId,
      kind: 'snapshot',
      size: frozen.size,
      userData: input.userData,
      strategy: frozen.strategy,
      volumeId: frozen.volumeId,
      operationId: input.operationId,
      operationType: 'createSnapshot',
      hostId: input.hostId,
      claim: false,
      pending: null,
      status: frozen.status,
    });
    return {};
  },
};
