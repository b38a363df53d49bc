/**
 * Persisting a snapshot. The disk's current top volume becomes the snapshot's (frozen: nothing
 * writes it any more), and the disk moves onto a new qcow2 overlay of it, which its mend
 * creates. Two records change, in an order that is safe at every instant:
 *
 *   1. the disk points to its new overlay, broken, with the frozen volume as the overlay's
 *      parent in its pending work (so the volume stays live for clean, and no VM can write it);
 *   2. the snapshot's record is created on the frozen volume, usable at once.
 *
 * A crash between 1 and 2 leaves a disk whose mend finishes the overlay: no data is lost, and
 * the retried step finds the disk already moved and only creates the snapshot.
 */
import { randomUUID } from 'node:crypto';
import { DiskflowError } from '../../api/errors';
import type { ImageState } from '../../api/image-status';
import type { UserData } from '../../api/values';
import type { Repository } from '../repository/repository';
import { failpoint } from '../failpoints';
import { assertNotBusy, claimFor, OperationRegistry } from './claims';
import { createImage, readImage, requireImage, updateImage } from './image-store';
import { newImageRecord } from './new-image';
import { CHAINS_LOCK } from './remove';

export interface PersistSnapshotInput {
  diskId: string;
  snapshotId: string;
  operationId: string;
  hostId: string;
  userData: UserData;
  autoFix: boolean;
}

export async function persistSnapshot(repo: Repository, input: PersistSnapshotInput, operations: OperationRegistry): Promise<void> {
  await repo.withRecordLock('volume', CHAINS_LOCK, async () => {
    if ((await readImage(repo, input.snapshotId))?.createdBy === input.operationId) return;
    const disk = await requireImage(repo, input.diskId);
    if (disk.kind !== 'virtual-disk') throw new DiskflowError('NOT_A_VIRTUAL_DISK', `image ${input.diskId} is a snapshot, not a virtual disk`);
    let frozen: { volumeId: string; status: ImageState };
    const earlier = disk.operation?.id === input.operationId ? disk.pending : null;
    if (earlier?.step === 'create-volume' && earlier.parentId) {
      // An earlier attempt of this step moved the disk already; only the snapshot is missing.
      frozen = { volumeId: earlier.parentId, status: earlier.then };
    } else {
      const usedBy = Object.keys(disk.prepared);
      if (usedBy.length) throw new DiskflowError('IMAGE_IN_USE', `virtual disk ${input.diskId} is prepared for a VM on ${usedBy.join(', ')}; tear it down to snapshot it`);
      await assertNotBusy(disk, input.operationId, operations);
      if (disk.status === 'broken' || disk.optimizing) {
        throw new DiskflowError('IMAGE_BUSY', `virtual disk ${input.diskId} has work in progress (${disk.pending?.step ?? 'optimize'}); fix it first`);
      }
      frozen = { volumeId: disk.volumeId, status: disk.status };
      const parent = frozen;
      await updateImage(repo, input.diskId, (d) => ({
        ...d,
        volumeId: randomUUID(),
        status: 'broken',
        pending: { step: 'create-volume', format: 'qcow2', preallocate: false, parentId: parent.volumeId, then: parent.status },
        // The claim stays even with autoFix off: the pending overlay already keeps VMs away.
        operation: claimFor(input.operationId, 'createSnapshot'),
        contentEpoch: d.contentEpoch + 1,
        stage: { current: 0, total: 1 },
        percentComplete: 0,
        lastError: null,
        hostId: input.hostId,
      }));
      failpoint('snapshot.disk-moved');
    }
    const snapshot = newImageRecord({
      imageId: input.snapshotId,
      kind: 'snapshot',
      size: disk.size,
      userData: input.userData,
      strategy: disk.strategy,
      volumeId: frozen.volumeId,
      operationId: input.operationId,
      operationType: 'createSnapshot',
      hostId: input.hostId,
      claim: false,
      pending: null,
      status: frozen.status,
    });
    await createImage(repo, snapshot);
  });
}
