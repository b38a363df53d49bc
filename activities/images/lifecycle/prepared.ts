/** A VM on a host: prepare and teardown of an image's record. */
import { DiskflowError } from '../../../api/errors';
import type { ServeMode } from '../../../api/values';
import type { Repository } from '../../repository/repository';
import { updateImage } from '../image-store';
import type { ImageRecord } from '../records';
import { now, OperationRegistry, refuseBroken, refuseRemoved, refuseWhileBusy } from './rules';
import { refuseOtherOpeners } from './served';
import { refuseWhileExported } from './backup-export';

/**
 * prepareImage's record half: the image is marked prepared on `hostId`. Refused for an image an
 * operation is changing or copying (IMAGE_BUSY) or that is broken. A virtual disk's
 * contentEpoch moves in the same step, as a writer is let at it. `makeRoom` runs first, inside
 * the step (block storage grows a thin volume to hold the whole disk), so a refusal leaves
 * nothing marked.
 */
export async function prepareOnHost(
  repo: Repository,
  imageId: string,
  hostId: string,
  operations: OperationRegistry,
  makeRoom: (image: ImageRecord) => Promise<void>,
  serve: { mode: ServeMode; address: string } | null = null,
): Promise<ImageRecord> {
  return updateImage(repo, imageId, async (img) => {
    refuseRemoved(img);
    refuseOtherOpeners(img, hostId, serve?.mode ?? null);
    // Served here already, as asked: the same answer again (the daemon is kept).
    if (serve && img.served?.hostId === hostId && !img.served.lost && hostId in img.prepared) return undefined;
    await refuseBroken(img, operations, 'preparing it for a VM');
    await refuseWhileExported(img, operations, 'preparing it for a VM', 'IMAGE_BUSY');
    if (img.resizing) throw new DiskflowError('IMAGE_BUSY', `image ${imageId} has a resize to ${img.size} bytes pending; it ends (or a mend completes it) before a VM gets the disk`);
    await refuseWhileBusy(img, null, operations, 'preparing it for a VM', img.kind === 'virtual-disk');
    await makeRoom(img);
    const writable = img.kind === 'virtual-disk';
    return {
      ...img,
      prepared: { ...img.prepared, [hostId]: now() },
      ...(serve ? { served: { hostId, mode: serve.mode, address: serve.address, since: now(), lost: null, live: null } } : {}),
      contentEpoch: writable ? img.contentEpoch + 1 : img.contentEpoch,
    };
  });
}

/**
 * teardownImage's record half: the VM on `hostId` no longer uses the image. Also how an engine
 * releases the mark of a host it knows is fenced (dead, powered off), from another host.
 */
export async function teardownOnHost(repo: Repository, imageId: string, hostId: string): Promise<ImageRecord> {
  return updateImage(repo, imageId, (img) => {
    refuseRemoved(img);
    const servedHere = img.served?.hostId === hostId;
    if (servedHere && img.served!.live) {
      throw new DiskflowError('IMAGE_BUSY', `image ${imageId} has a live ${img.served!.live.kind} under way on ${hostId}; it ends (or is settled) before the disk stops being served`);
    }
    if (!(hostId in img.prepared) && !servedHere) return undefined;
    const prepared = { ...img.prepared };
    delete prepared[hostId];
    return { ...img, prepared, served: servedHere ? null : img.served };
  });
}

/**
 * Runs `fn` under the image's record lock while no host has it prepared and nothing works on
 * it (after the last teardown: giving back the room prepare made). Nothing is written.
 */
export async function whileUnused(repo: Repository, imageId: string, fn: (image: ImageRecord) => Promise<void>): Promise<void> {
  await updateImage(repo, imageId, async (img) => {
    const unused = !img.removed && Object.keys(img.prepared).length === 0 && !img.operation && !img.pending && !img.optimizing;
    if (unused) await fn(img);
    return undefined;
  });
}
