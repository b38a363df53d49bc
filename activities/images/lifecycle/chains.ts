/** Chains: snapshot, optimize and merge replace what an image's chain is. */
import { DiskflowError } from '../../../api/errors';
import type { Strategy } from '../../../api/values';
import type { Repository } from '../../repository/repository';
import { updateImage } from '../image-store';
import type { ImageRecord } from '../records';
import { Actor, claimFor, OperationRegistry, refuseRemoved, refuseWhileBusy, refuseWhilePrepared, requireOwnClaim } from './rules';

/** The volume a snapshot is made of, and what the snapshot takes from its disk. */
export interface Frozen {
  volumeId: string;
  status: ImageRecord['status'];
  size: number;
  strategy: Strategy;
}

/**
 * createSnapshot's first record change: the disk's top volume is frozen (it becomes the
 * snapshot's) and the disk moves onto a new overlay of it, broken until its mend makes the
 * overlay, claimed by the operation. Refused while prepared (IMAGE_IN_USE), busy, broken or
 * being optimized (IMAGE_BUSY). An earlier attempt of the same step that moved the disk
 * already is recognised: the frozen volume is the overlay's parent.
 */
export async function freezeForSnapshot(
  repo: Repository,
  diskId: string,
  overlayVolumeId: string,
  actor: Actor,
  operations: OperationRegistry,
): Promise<Frozen> {
  let frozen: Frozen | undefined;
  await updateImage(repo, diskId, async (d) => {
    refuseRemoved(d);
    if (d.kind !== 'virtual-disk') throw new DiskflowError('NOT_A_VIRTUAL_DISK', `image ${diskId} is a snapshot, not a virtual disk`);
    const earlier = d.operation?.id === actor.operationId ? d.pending : null;
    if (earlier?.step === 'create-volume' && earlier.parentId) {
      frozen = { volumeId: earlier.parentId, status: earlier.then, size: d.size, strategy: d.strategy };
      return undefined;
    }
    refuseWhilePrepared(d, 'a snapshot of it');
    await refuseWhileBusy(d, actor.operationId, operations, 'a snapshot of it', true);
    if (d.status === 'broken' || d.optimizing) {
      throw new DiskflowError('IMAGE_BUSY', `virtual disk ${diskId} has work in progress (${d.pending?.step ?? 'optimize'}); fix it first`);
    }
    frozen = { volumeId: d.volumeId, status: d.status, size: d.size, strategy: d.strategy };
    return {
      ...d,
      volumeId: overlayVolumeId,
      status: 'broken',
      pending: { step: 'create-volume', format: 'qcow2', preallocate: false, parentId: d.volumeId, then: d.status },
      // The claim stays even with autoFix off: the pending overlay already keeps VMs away.
      operation: claimFor(actor.operationId, 'createSnapshot'),
      contentEpoch: d.contentEpoch + 1,
      chainEpoch: d.chainEpoch + 1,
      stage: { current: 0, total: 1 },
      percentComplete: 0,
      lastError: null,
      hostId: actor.hostId,
    };
  });
  return frozen!;
}

/**
 * optimize's switch: the image moves onto the volume its copy job made, which holds the same
 * content in a better representation. Only for the claiming fix, never while prepared, and
 * only if the image did not move since the job read it. Returns the top of the chain it left.
 */
export async function switchToOptimized(repo: Repository, imageId: string, actor: Actor): Promise<string> {
  let left = '';
  await updateImage(repo, imageId, (img) => {
    refuseRemoved(img);
    requireOwnClaim(img, actor.operationId);
    refuseWhilePrepared(img, 'switching it onto its optimized volume');
    const job = img.optimizing;
    if (!job) throw new DiskflowError('STORAGE_ERROR', `image ${imageId} has no optimize in progress`, false);
    if (job.source.contentEpoch !== img.contentEpoch) {
      throw new DiskflowError('STORAGE_ERROR', `image ${imageId} changed while it was optimized; the optimize starts over`);
    }
    left = img.volumeId;
    return {
      ...img,
      volumeId: job.volumeId,
      optimizing: null,
      status: 'optimized',
      contentEpoch: img.contentEpoch + 1,
      chainEpoch: img.chainEpoch + 1,
      operation: null,
      hostId: actor.hostId,
      lastError: null,
    };
  });
  return left;
}

/**
 * merge, once `lower` holds everything `upper` did: an image whose top was `upper` moves onto
 * `lower` (same content). Only for the claiming fix, never while prepared.
 */
export async function foldTopInto(repo: Repository, imageId: string, upper: string, lower: string, actor: Actor): Promise<void> {
  await updateImage(repo, imageId, (img) => {
    refuseRemoved(img);
    requireOwnClaim(img, actor.operationId);
    if (img.volumeId !== upper) return undefined;
    refuseWhilePrepared(img, 'merging its volumes');
    return { ...img, volumeId: lower, contentEpoch: img.contentEpoch + 1, chainEpoch: img.chainEpoch + 1 };
  });
}
