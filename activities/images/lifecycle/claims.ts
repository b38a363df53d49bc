/** Claims: one operation at a time per image, and the copies reading it. */
import { DiskflowError } from '../../../api/errors';
import type { Stage } from '../../../api/image-status';
import type { Repository } from '../../repository/repository';
import { updateImage } from '../image-store';
import type { CopyJob, ImageRecord, OperationClaim, PendingWork } from '../records';
import { Actor, claimFor, describeClaim, liveClaimOfOther, now, OperationRegistry, refuseBroken, refuseRemoved, refuseWhileBusy, refuseWhilePrepared, requireOwnClaim } from './rules';
import { servedOn } from './served';

/**
 * A copy reads an image: it joins the image's readers (many copies read one image at once), so
 * that while it reads no VM is let at a virtual disk and nothing changes its chain, and the
 * image's volumes stay even if it is removed meanwhile. Returns the image as claimed. Refused:
 * a disk prepared for a VM (IMAGE_IN_USE), one another running operation works on
 * (IMAGE_BUSY), a broken image.
 */
export async function claimForCopy(repo: Repository, imageId: string, actor: Actor, operations: OperationRegistry): Promise<ImageRecord> {
  return updateImage(repo, imageId, async (img) => {
    // A copy that began reading goes on even if the image is removed meanwhile: its volumes stay for it.
    if (actor.operationId in img.readers) return undefined;
    // An optimize copies its own image, which its fix claims already.
    if (img.operation?.id === actor.operationId && !img.removed) return undefined;
    await assertCopyable(img, actor.operationId, operations);
    return { ...img, readers: { ...img.readers, [actor.operationId]: now() } };
  });
}

/**
 * The rules of claimForCopy, checked without claiming: for a copy persisted now and run later
 * (autoFix off), whose run claims the source then.
 */
export async function assertCopyable(image: ImageRecord, operationId: string, operations: OperationRegistry): Promise<void> {
  refuseRemoved(image);
  // A served disk is copied live, at one instant, by the daemon serving it.
  if (image.kind === 'virtual-disk' && !servedOn(image)) refuseWhilePrepared(image, 'a copy of it');
  await refuseBroken(image, operations, 'a copy of it');
  if (image.kind === 'virtual-disk') await refuseWhileBusy(image, operationId, operations, 'a copy of it');
}

/**
 * A copy's source as it is once read (null: gone): still the copy's to use, unless it was
 * removed meanwhile; a removed snapshot stays for the copies that were reading it.
 */
export function copySourceAfter(image: ImageRecord | null, imageId: string, operationId: string): ImageRecord {
  if (!image || (image.removed && !(operationId in image.readers))) {
    throw new DiskflowError('IMAGE_NOT_FOUND', `the copy's source ${imageId} was removed`);
  }
  return image;
}

/** The copy has read the image: it leaves its readers (any claim of the operation stays). */
export async function releaseCopySource(repo: Repository, imageId: string, operationId: string): Promise<void> {
  await updateImage(repo, imageId, (img) => {
    if (!(operationId in img.readers)) return undefined;
    const readers = { ...img.readers };
    delete readers[operationId];
    return { ...img, readers };
  }).catch((error: unknown) => {
    if (!(error instanceof DiskflowError && error.code === 'IMAGE_NOT_FOUND')) throw error;
  });
}

/** A claim held by another operation that still runs: the caller may wait for it (mend does). */
export class ClaimHeld extends DiskflowError {
  constructor(
    readonly imageId: string,
    readonly claim: OperationClaim,
  ) {
    super('IMAGE_BUSY', `image ${imageId} is busy: ${describeClaim(claim)}`);
  }
}

/**
 * An operation takes up a broken image's pending work (mend). ClaimHeld while another running
 * operation holds the image; 'removed' for an image that is gone; the image as claimed else
 * (its `pending` null when there is nothing left to do).
 */
export async function claimPendingWork(repo: Repository, imageId: string, actor: Actor, operations: OperationRegistry): Promise<ImageRecord | 'removed'> {
  let held: OperationClaim | null = null;
  const image = await updateImage(repo, imageId, async (img) => {
    if (img.removed || !img.pending) return undefined;
    held = await liveClaimOfOther(img, actor.operationId, operations);
    if (held) return undefined;
    const claim = img.operation?.id === actor.operationId ? img.operation : claimFor(actor.operationId, 'mend');
    return { ...img, operation: claim, hostId: actor.hostId, lastError: null };
  }).catch((error: unknown) => {
    if (error instanceof DiskflowError && error.code === 'IMAGE_NOT_FOUND') return 'removed' as const;
    throw error;
  });
  if (held) throw new ClaimHeld(imageId, held);
  return image === 'removed' || image.removed ? 'removed' : image;
}

/** The pending work is done: the image is usable, with the status the work promised. */
export async function completePendingWork(repo: Repository, imageId: string, actor: Actor, work: PendingWork | null): Promise<ImageRecord> {
  return updateImage(repo, imageId, (img) => {
    if (img.removed) return undefined;
    // Done already (by another operation that held the claim meanwhile): nothing to change.
    if (!img.pending && !work && img.operation?.id !== actor.operationId) return undefined;
    const total = img.stage?.total ?? 1;
    return {
      ...img,
      pending: null,
      status: work?.step === 'create-volume' ? work.then : img.status === 'broken' ? 'optimized' : img.status,
      operation: img.operation?.id === actor.operationId ? null : img.operation,
      hostId: actor.hostId,
      stage: { current: total, total },
      percentComplete: 100,
      lastError: null,
    };
  });
}

/**
 * A fix is accepted: its image is claimed for it, at the generation the check saw (FIX_INVALID
 * if it moved), unless another running operation holds it (IMAGE_BUSY). Optimize and merge
 * rewrite or swap the image's volumes: refused while it is prepared (IMAGE_IN_USE). An
 * optimize records its copy job (`optimizing`) in the same step.
 */
export async function claimForFix(
  repo: Repository,
  imageId: string,
  fix: { type: 'mend' | 'optimize' | 'merge'; generation: number; optimizeInto?: (image: ImageRecord) => CopyJob },
  actor: Actor,
  operations: OperationRegistry,
): Promise<void> {
  const stale = (why: string) => new DiskflowError('FIX_INVALID', `fix is stale: ${why}; run checkStorageRepository again for current fixes`);
  await updateImage(repo, imageId, async (img) => {
    if (img.operation?.id === actor.operationId) return undefined;
    if (img.removed) throw stale(`image ${imageId} was removed`);
    if (img.generation !== fix.generation) throw stale(`image ${imageId} changed since the check`);
    await refuseWhileBusy(img, actor.operationId, operations, `the ${fix.type} fix`, fix.type !== 'mend');
    // A served disk is merged and optimized live, by the daemon serving it.
    if (fix.type !== 'mend' && !servedOn(img)) refuseWhilePrepared(img, fix.type === 'merge' ? 'merging its volumes' : 'optimizing it (which replaces its volumes)');
    const claimed = { ...img, operation: claimFor(actor.operationId, `fix:${fix.type}`) };
    if (fix.type === 'optimize' && !img.optimizing && fix.optimizeInto) claimed.optimizing = fix.optimizeInto(img);
    return claimed;
  });
}

/** Whether the image is still claimed by the operation (read; for a step that must stop otherwise). */
export function assertClaimedBy(image: ImageRecord, operationId: string): void {
  requireOwnClaim(image, operationId);
}

/**
 * Work stopped for a reason other than a crash (cancelled, paused, failed): why is recorded and
 * the operation's claim released (kept while paused), leaving the image in its last persisted
 * state for a later fix.
 */
export async function recordStoppedWork(repo: Repository, imageId: string, operationId: string, reason: string, keepClaim: boolean): Promise<void> {
  try {
    await updateImage(repo, imageId, (img) => {
      if (img.removed || (img.operation && img.operation.id !== operationId)) return undefined;
      return { ...img, operation: keepClaim ? img.operation : null, lastError: reason };
    });
  } catch (error) {
    if (!(error instanceof DiskflowError && error.code === 'IMAGE_NOT_FOUND')) throw error;
  }
}

/** The operation is done with the image: its claim goes, with the stage it ended at. */
export async function releaseClaim(repo: Repository, imageId: string, actor: Actor, stage?: Stage): Promise<void> {
  await updateImage(repo, imageId, (img) =>
    img.operation?.id !== actor.operationId
      ? undefined
      : { ...img, operation: null, hostId: actor.hostId, lastError: null, ...(stage ? { stage, percentComplete: 100 } : {}) },
  );
}
