/**
 * Resize: a virtual disk grows. The new size is persisted first (the record's `size`, with
 * `resizing` naming what is left to do and the operation's claim), then a fix grows the top
 * volume to it and clears the mark. A disk served live by diskflow's daemon grows there (QMP
 * `block_resize`): its VM sees the new size, except over NBD, whose clients are told the size
 * once, at connection, so a served-over-NBD disk is refused.
 */
import { DiskflowError } from '../../../api/errors';
import type { Repository } from '../../repository/repository';
import { readVolume, updateImage, writeVolume } from '../image-store';
import type { ImageRecord } from '../records';
import { Actor, claimFor, liveClaimOfOther, OperationRegistry, refuseBroken, refuseRemoved, refuseWhileBusy, refuseWhilePrepared } from './rules';
import { servedOn } from './served';

/**
 * resizeVirtualDisk's persist step: the disk's record takes its new size and is claimed for the
 * fix that grows its volume. Returns whether there is anything to grow and, for a disk served
 * live, the host whose daemon grows it. Refused: a snapshot, a smaller size (INVALID_ARGUMENT);
 * a disk prepared for a VM unless served live through a mode that tells its VM (IMAGE_IN_USE);
 * a disk another operation works on or a copy reads (IMAGE_BUSY). The same step again (a retry)
 * is recognised.
 */
export async function beginResize(
  repo: Repository,
  imageId: string,
  newSize: number,
  actor: Actor,
  operations: OperationRegistry,
): Promise<{ grows: boolean; servedOn: string | null }> {
  let answer = { grows: false, servedOn: null as string | null };
  await updateImage(repo, imageId, async (img) => {
    refuseRemoved(img);
    answer = { grows: true, servedOn: servedOn(img) };
    if (img.resizing?.operationId === actor.operationId) return undefined;
    if (img.kind !== 'virtual-disk') throw new DiskflowError('INVALID_ARGUMENT', `image ${imageId} is a snapshot: only virtual disks are resized`);
    if (newSize < img.size) throw new DiskflowError('INVALID_ARGUMENT', `newSize: ${newSize} bytes is smaller than the disk's ${img.size} bytes; disks only grow`);
    await refuseBroken(img, operations, 'resizing it');
    await refuseWhileBusy(img, actor.operationId, operations, 'resizing it', true);
    if (img.optimizing || img.resizing) throw new DiskflowError('IMAGE_BUSY', `virtual disk ${imageId} has work in progress (${img.optimizing ? 'an optimize' : 'a resize'}); fix it first`);
    const served = servedOn(img);
    if (served && img.served!.mode === 'nbd') {
      throw new DiskflowError(
        'IMAGE_IN_USE',
        `image ${imageId} is served over NBD on ${served}: an NBD client learns the disk's size once, when it connects, so its VM would not see the disk grow; tear it down (or serve it as vhost-user-blk or fuse) to resize it`,
      );
    }
    if (img.served?.live) throw new DiskflowError('IMAGE_BUSY', `image ${imageId} has a live ${img.served.live.kind} under way; it ends first`);
    if (!served) refuseWhilePrepared(img, 'resizing it');
    if (newSize === img.size) {
      answer = { grows: false, servedOn: served };
      return undefined;
    }
    return { ...img, size: newSize, resizing: { from: img.size, operationId: actor.operationId }, operation: claimFor(actor.operationId, 'resizeVirtualDisk'), hostId: actor.hostId, lastError: null };
  });
  return answer;
}

/**
 * The fix takes up a persisted resize: the claim is the resize's own, or taken over from one
 * that no longer runs. Null when there is nothing to grow; IMAGE_BUSY while another running
 * operation holds the disk.
 */
export async function claimResize(repo: Repository, imageId: string, actor: Actor, operations: OperationRegistry): Promise<ImageRecord | null> {
  const image = await updateImage(repo, imageId, async (img) => {
    if (img.removed || !img.resizing) return undefined;
    if (img.operation?.id === actor.operationId) return undefined;
    const held = await liveClaimOfOther(img, actor.operationId, operations);
    if (held) throw new DiskflowError('IMAGE_BUSY', `image ${imageId} is busy: ${held.type} (operation ${held.id}) works on it; its resize waits`);
    return { ...img, operation: claimFor(actor.operationId, img.operation?.type ?? 'fix:mend'), hostId: actor.hostId, lastError: null };
  }).catch((error: unknown) => {
    // Forgotten already (a clean after its removal): nothing to grow, as for a removed image.
    if (error instanceof DiskflowError && error.code === 'IMAGE_NOT_FOUND') return null;
    throw error;
  });
  return !image || image.removed || !image.resizing ? null : image;
}

/** The top volume holds the new size: its record says so, the mark and the claim go. */
export async function completeResize(repo: Repository, imageId: string, volumeId: string, size: number, actor: Actor): Promise<void> {
  const volume = await readVolume(repo, volumeId);
  if (volume && volume.size < size) await writeVolume(repo, { ...volume, size });
  await updateImage(repo, imageId, (img) =>
    !img.resizing
      ? undefined
      : { ...img, resizing: null, operation: img.operation?.id === actor.operationId ? null : img.operation, hostId: actor.hostId, lastError: null },
  );
}
