/**
 * Mend: completes the work a broken image still has pending, from what its record says. The
 * same step serves autoFix right after an operation persisted and a fix run much later, on any
 * host that may do it; re-running it after a crash converges. Where another running operation
 * is completing the same image (two disks made at once on one snapshot copied in from another
 * repository), the mend waits for it rather than giving up, then goes on from what it left.
 */
import { Context, sleep } from '@temporalio/activity';
import { DiskflowError } from '../../api/errors';
import type { ActivityDeps, ImageStep } from '../deps';
import type { Repository } from '../repository/repository';
import { failpoint, holdpoint } from '../failpoints';
import { runCopyJob } from './copy-job';
import { runImportJob } from '../imports/import-job';
import { listImageRecords, readChain, readImage, readVolume } from './image-store';
import {
  Actor,
  ClaimHeld,
  claimPendingWork,
  completeFrozenSnapshot,
  completePendingWork,
  markServingRestored,
  markVolumeLegal,
  OperationRegistry,
  newVolume,
  recordIllegalVolume,
  recordStoppedWork,
  releaseClaim,
} from './lifecycle';
import { serveImage } from '../serving/serve';
import { settleLive, settleLiveWithoutDaemon } from '../serving/settle';
import { mendResize } from './resize';
import type { ImageRecord, PendingWork } from './records';

export type MendOutcome = 'usable' | 'removed';

type CreateVolume = Extract<PendingWork, { step: 'create-volume' }>;

/** How often a mend looks again at work another operation is doing. */
const WAIT_POLL_MS = 1000;

/**
 * Waits while `busy` names work another running operation is doing, heartbeating (so the step
 * stays alive and cancellable) and saying once what it waits for.
 */
async function waitWhile(busy: () => Promise<string | null>): Promise<void> {
  let told = false;
  for (let why = await busy(); why; why = await busy()) {
    if (!told) Context.current().log.info(`waiting: ${why}`);
    told = true;
    Context.current().heartbeat();
    await sleep(WAIT_POLL_MS);
  }
}

/** Why the volume `volumeId` is not usable yet, when a running operation is still filling it; null otherwise. */
async function beingFilled(repo: Repository, volumeId: string, operations: OperationRegistry): Promise<string | null> {
  if ((await readVolume(repo, volumeId))?.legal) return null;
  const holder = (await listImageRecords(repo)).find(
    (image) => !image.removed && (image.volumeId === volumeId || (image.pending?.step === 'copy' && image.pending.job.volumeId === volumeId)),
  );
  if (!holder?.pending || !holder.operation || !(await operations.isRunning(holder.operation.id))) return null;
  return `volume ${volumeId} is being made by ${holder.operation.type} (operation ${holder.operation.id}) for image ${holder.imageId}`;
}

/** Makes the image's volume: blank, or a qcow2 overlay of a parent that must be complete. */
async function createVolume(repo: Repository, image: ImageRecord, work: CreateVolume, operationId: string, operations: OperationRegistry): Promise<void> {
  const signal = Context.current().cancellationSignal;
  let parent = null;
  if (work.parentId) {
    const parentId = work.parentId;
    await waitWhile(() => beingFilled(repo, parentId, operations));
    const parentVolume = await readVolume(repo, parentId);
    if (!parentVolume?.legal) {
      throw new DiskflowError('STORAGE_ERROR', `volume ${parentId} that image ${image.imageId} is based on is not complete yet; mend the image that holds it first`, false);
    }
    const chain = await readChain(repo, parentId);
    for (const volume of [...chain].reverse()) await repo.activate(volume.volumeId, volume.format);
    parent = { volumeId: parentVolume.volumeId, format: parentVolume.format };
  }
  const volume = newVolume({ volumeId: image.volumeId, format: work.format, size: image.size, createdBy: operationId, parentId: work.parentId });
  // Illegal before the first byte is written, legal only after the last.
  await recordIllegalVolume(repo, volume);
  failpoint('mend.volume-illegal');
  await repo.createVolume({ volumeId: image.volumeId, format: work.format, size: image.size, parent, preallocate: work.preallocate }, signal);
  failpoint('mend.volume-created');
  await markVolumeLegal(repo, image.volumeId);
  failpoint('mend.volume-legal');
}

export function createMendActivities(deps: ActivityDeps) {
  const { connections, operations, hostId } = deps;
  return {
    mendImage: async (input: ImageStep): Promise<MendOutcome> => {
      await holdpoint('mend.start', Context.current().cancellationSignal);
      return mend(input);
    },

    /**
     * Records why work stopped (cancelled, paused, failed for a reason other than a crash) and
     * releases the operation's claim (kept while paused), leaving the image in its last
     * persisted state for a later fix.
     */
    async recordStoppedWork(input: ImageStep & { reason: string; keepClaim?: boolean }): Promise<void> {
      await recordStoppedWork(connections.byUuid(input.repoUuid), input.imageId, input.operationId, input.reason, !!input.keepClaim);
    },
  };

  /**
   * What a served disk may need (on the host serving it): its daemon gone, so it is served again
   * (its live step first settled from the volumes); a live step left half-way by an operation
   * that is gone, settled from the daemon; a snapshot that a live snapshot left waiting, whose
   * disk's step is completed. Null when the image needs none of these.
   */
  async function mendServed(repo: Repository, imageId: string, actor: Actor): Promise<MendOutcome | null> {
    const image = await readImage(repo, imageId);
    if (!image || image.removed) return null;
    if (image.pending?.step === 'live-snapshot') {
      const disk = await readImage(repo, image.pending.diskId);
      if (!disk?.served) throw new DiskflowError('STORAGE_ERROR', `snapshot ${imageId} waits for a live snapshot of disk ${image.pending.diskId}, which is not served`, false);
      await mendServed(repo, disk.imageId, actor);
      const settled = (await readImage(repo, disk.imageId))!;
      await settleLive(deps, repo, settled, actor);
      // The disk moved off the snapshot's volume already (its record did, and then the step stopped).
      if (settled.volumeId !== image.volumeId) await completeFrozenSnapshot(repo, imageId, settled.status);
      await releaseClaim(repo, imageId, actor);
      return 'usable';
    }
    const served = image.served;
    if (!served || (!served.lost && !served.live)) return null;
    if (served.hostId !== hostId) throw new DiskflowError('IMAGE_IN_USE', `image ${imageId} is served on ${served.hostId}: its mend runs there`);
    if (served.lost) {
      await settleLiveWithoutDaemon(repo, image, actor);
      const now = (await readImage(repo, imageId))!;
      await serveImage(connections.host.home, repo, now, served.mode);
      await markServingRestored(repo, imageId, hostId);
      await releaseClaim(repo, imageId, actor);
      return 'usable';
    }
    if (image.operation && image.operation.id !== actor.operationId && (await operations.isRunning(image.operation.id))) {
      throw new DiskflowError('IMAGE_BUSY', `image ${imageId} has a live ${served.live!.kind} under way (operation ${image.operation.id})`);
    }
    await settleLive(deps, repo, image, actor);
    await releaseClaim(repo, imageId, actor);
    return 'usable';
  }

  /** Claims the image's pending work for this operation, waiting while another running one holds it. */
  async function claim(repo: Repository, imageId: string, actor: Actor): Promise<ImageRecord | 'removed'> {
    for (;;) {
      try {
        return await claimPendingWork(repo, imageId, actor, operations);
      } catch (error) {
        if (!(error instanceof ClaimHeld)) throw error;
        await waitWhile(async () => ((await operations.isRunning(error.claim.id)) ? error.message : null));
      }
    }
  }

  async function mend(input: ImageStep): Promise<MendOutcome> {
    const repo = connections.byUuid(input.repoUuid);
    const actor = { operationId: input.operationId, hostId };
    const served = await mendServed(repo, input.imageId, actor);
    // A resize persisted on the disk: its top volume grows (live, where it is served here).
    await mendResize(deps, repo, input.imageId, actor, operations);
    if (served) return served;
    const image = await claim(repo, input.imageId, actor);
    if (image === 'removed') return 'removed';
    const work = image.pending;
    if (work?.step === 'create-volume') {
      // No progress write: the step is one qemu-img create (or an allocation), and its end
      // (completePendingWork) is the one write that tells; a record write and a workflow task saved.
      await createVolume(repo, image, work, input.operationId, operations);
    } else if (work?.step === 'copy' && (await runCopyJob(deps, repo, input.imageId, 'pending', input.operationId)) === 'removed') {
      return 'removed';
    } else if (work?.step === 'import' && (await runImportJob(deps, repo, input.imageId)) === 'removed') {
      return 'removed';
    }
    const after = await completePendingWork(repo, input.imageId, actor, work);
    return after.removed ? 'removed' : 'usable';
  }
}
