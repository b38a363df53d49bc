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
import { Actor, beginLiveSnapshot, freezeForSnapshot, OperationRegistry, persistNewImage } from '../images/lifecycle';
import type { Repository } from '../repository/repository';
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

export interface PersistedSnapshot {
  /** The disk is served to its VM on this host: the snapshot is taken live there (null: offline, by a mend of the disk). */
  servedOn: string | null;
}

export const createSnapshot: Operation<CreateSnapshotRequest, PersistSnapshotInput, PersistedSnapshot> = {
  async resolve({ hostId }, _targetRepoId, request) {
    return { ...request, hostId };
  },

  async persist({ operations }, repo, input) {
    const earlier = await readImage(repo, input.snapshotId);
    if (earlier?.createdBy === input.operationId) return { servedOn: earlier.pending?.step === 'live-snapshot' ? ((await readImage(repo, input.diskId))?.served?.hostId ?? null) : null };
    const actor = { operationId: input.operationId, hostId: input.hostId };
    if ((await readImage(repo, input.diskId))?.served) return persistLive(repo, input, actor, operations);
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
    return { servedOn: null };
  },
};

/**
 * A served disk: its intent is recorded on the disk (the overlay its VM moves onto), and the
 * snapshot is persisted broken on the volume the VM still writes, until the live step moves the
 * VM off it (activities/serving/live-snapshot.ts).
 */
async function persistLive(repo: Repository, input: PersistSnapshotInput, actor: Actor, operations: OperationRegistry): Promise<PersistedSnapshot> {
  const begun = await beginLiveSnapshot(repo, input.diskId, { snapshotId: input.snapshotId, overlay: randomUUID() }, actor, operations);
  await persistNewImage(repo, {
    imageId: input.snapshotId,
    kind: 'snapshot',
    size: begun.size,
    userData: input.userData,
    strategy: begun.strategy,
    volumeId: begun.volumeId,
    operationId: input.operationId,
    operationType: 'createSnapshot',
    hostId: input.hostId,
    claim: false,
    pending: { step: 'live-snapshot', diskId: input.diskId },
  });
  failpoint('snapshot.live-persisted');
  return { servedOn: begun.hostId };
}
