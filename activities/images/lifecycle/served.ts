/**
 * Served disks: an image prepared with `serve` is opened by diskflow's own qemu-storage-daemon on
 * one host, and live operations change its block graph there while its VM writes. The record
 * says how it is served (`served`) and which graph change is under way (`served.live`), written
 * before each QMP command that changes the graph and cleared by the change after it.
 */
import { DiskflowError } from '../../../api/errors';
import type { ServeMode } from '../../../api/values';
import type { Repository } from '../../repository/repository';
import { updateImage } from '../image-store';
import type { ImageRecord, LiveStep } from '../records';
import { Actor, claimFor, now, OperationRegistry, refuseRemoved, refuseWhileBusy, requireOwnClaim } from './rules';

/** The host whose daemon serves the image and can run live operations on it, or null. */
export const servedOn = (image: ImageRecord): string | null => (image.served && !image.served.lost ? image.served.hostId : null);

/** A live operation needs the daemon: refused while it is gone (a mend serves the disk again first). */
function requireServing(image: ImageRecord, what: string): NonNullable<ImageRecord['served']> {
  const served = image.served;
  if (!served) throw new DiskflowError('STORAGE_ERROR', `image ${image.imageId} is not served: ${what} cannot run live`, false);
  if (served.lost) {
    throw new DiskflowError('STORAGE_ERROR', `the daemon serving image ${image.imageId} on ${served.hostId} is gone (${served.lost.why}); the mend checkStorageRepository offers serves it again, then ${what} can run`, false);
  }
  return served;
}

/** The rules between plain prepares and a served disk: one opener of a served chain, on one host. */
export function refuseOtherOpeners(image: ImageRecord, hostId: string, serve: ServeMode | null): void {
  const served = image.served;
  if (served && served.hostId !== hostId) {
    throw new DiskflowError('IMAGE_IN_USE', `image ${image.imageId} is served to a VM on ${served.hostId} (${served.address}); a second opener would corrupt it`);
  }
  if (served && !serve) {
    throw new DiskflowError('IMAGE_IN_USE', `image ${image.imageId} is served by diskflow on ${hostId} at ${served.address}; open that instead of its volume`);
  }
  if (served && serve && served.mode !== serve) {
    throw new DiskflowError('IMAGE_IN_USE', `image ${image.imageId} is already served as ${served.mode} on ${hostId}; tear it down to serve it as ${serve}`);
  }
  const others = Object.keys(image.prepared).filter((h) => h !== hostId);
  if (serve && others.length) throw new DiskflowError('IMAGE_IN_USE', `image ${image.imageId} is prepared on ${others.join(', ')}: a served disk has one opener`);
}

/** The served disk's daemon was found gone: its VM lost its disk, and a mend serves it again. */
export async function markServingLost(repo: Repository, imageId: string, hostId: string, why: string): Promise<void> {
  await updateImage(repo, imageId, (img) => {
    if (img.served?.hostId !== hostId || img.served.lost) return undefined;
    return { ...img, served: { ...img.served, lost: { at: now(), why } }, lastError: `the daemon serving it on ${hostId} is gone (${why}): its VM lost its disk` };
  });
}

/** Served again (by a mend): the daemon runs the chain the record names. */
export async function markServingRestored(repo: Repository, imageId: string, hostId: string): Promise<void> {
  await updateImage(repo, imageId, (img) => {
    if (img.served?.hostId !== hostId || !img.served.lost) return undefined;
    return { ...img, served: { ...img.served, lost: null }, lastError: null };
  });
}

/**
 * createSnapshot of a served disk: the operation claims the disk and records its intent (the VM
 * moves onto `overlay`, its current top becomes the snapshot), before any volume is made.
 * Returns what the snapshot is made of and where the disk is served; an earlier attempt of the
 * same step is recognised.
 */
export async function beginLiveSnapshot(
  repo: Repository,
  diskId: string,
  live: { snapshotId: string; overlay: string },
  actor: Actor,
  operations: OperationRegistry,
): Promise<{ volumeId: string; status: ImageRecord['status']; size: number; strategy: ImageRecord['strategy']; hostId: string }> {
  let begun: { volumeId: string; status: ImageRecord['status']; size: number; strategy: ImageRecord['strategy']; hostId: string } | undefined;
  await updateImage(repo, diskId, async (d) => {
    refuseRemoved(d);
    const served = requireServing(d, 'a live snapshot');
    begun = { volumeId: d.volumeId, status: d.status, size: d.size, strategy: d.strategy, hostId: served.hostId };
    if (d.operation?.id === actor.operationId && served.live?.kind === 'snapshot' && served.live.snapshotId === live.snapshotId) return undefined;
    await refuseWhileBusy(d, actor.operationId, operations, 'a snapshot of it', true);
    if (served.live) throw new DiskflowError('IMAGE_BUSY', `image ${diskId} has a live ${served.live.kind} under way; it ends first`);
    if (d.status === 'broken' || d.optimizing) throw new DiskflowError('IMAGE_BUSY', `virtual disk ${diskId} has work in progress; fix it first`);
    return { ...d, operation: claimFor(actor.operationId, 'createSnapshot'), served: { ...served, live: { kind: 'snapshot', ...live } }, hostId: actor.hostId, lastError: null };
  });
  return begun!;
}

/**
 * A live fix (merge, optimize) of a served disk it has claimed: its graph change is recorded
 * before the daemon is told (and `pivoting` once the VM is being moved).
 */
export async function recordLiveStep(repo: Repository, imageId: string, live: LiveStep, actor: Actor): Promise<void> {
  await updateImage(repo, imageId, (img) => {
    refuseRemoved(img);
    requireOwnClaim(img, actor.operationId);
    const served = requireServing(img, `a live ${live.kind}`);
    if (JSON.stringify(served.live) === JSON.stringify(live)) return undefined;
    return { ...img, served: { ...served, live } };
  });
}

/**
 * The daemon serves `top` now (after a live snapshot, an active merge, an optimize's pivot): the
 * record follows, the live step is done, the live operation's claim released. `optimized`: an
 * optimize's new volume replaced the chain.
 */
export async function liveTopMoved(repo: Repository, imageId: string, top: string, actor: Actor, optimized = false): Promise<void> {
  await updateImage(repo, imageId, (img) => {
    if (!img.served) return undefined;
    const moved = img.volumeId !== top;
    return {
      ...img,
      volumeId: top,
      ...(optimized ? { optimizing: null, status: 'optimized' as const } : {}),
      served: { ...img.served, live: null },
      contentEpoch: moved ? img.contentEpoch + 1 : img.contentEpoch,
      chainEpoch: moved ? img.chainEpoch + 1 : img.chainEpoch,
      // The claim is the live operation's, which this ends (whoever settles it: the step, or a mend).
      operation: null,
      hostId: actor.hostId,
      lastError: null,
    };
  });
}

/** A live step that left the graph as it was (undone, or a change below the top): its intent goes. */
export async function clearLiveStep(repo: Repository, imageId: string): Promise<void> {
  await updateImage(repo, imageId, (img) => (img.served?.live ? { ...img, served: { ...img.served, live: null } } : undefined));
}

/** The snapshot a live snapshot froze: usable, with its disk's status then. */
export async function completeFrozenSnapshot(repo: Repository, snapshotId: string, status: ImageRecord['status']): Promise<void> {
  await updateImage(repo, snapshotId, (img) =>
    img.pending?.step !== 'live-snapshot' ? undefined : { ...img, pending: null, status, stage: { current: 1, total: 1 }, percentComplete: 100, lastError: null },
  );
}
