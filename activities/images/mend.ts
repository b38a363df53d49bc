/**
 * Mend: completes the work a broken image still has pending, from what its record says. The
 * same step serves autoFix right after an operation persisted and a fix run much later, on any
 * host that may do it; re-running it after a crash converges.
 */
import { Context } from '@temporalio/activity';
import { DiskflowError } from '../../api/errors';
import type { ActivityDeps, ImageStep } from '../deps';
import type { Repository } from '../repository/repository';
import { failpoint } from '../failpoints';
import { assertNotBusy } from './claims';
import { runCopyJob } from './copy-job';
import { readChain, readImage, readVolume, updateImage, writeVolume } from './image-store';
import { ProgressReporter } from './progress';
import type { ImageRecord, PendingWork } from './records';

export type MendOutcome = 'usable' | 'removed';

type CreateVolume = Extract<PendingWork, { step: 'create-volume' }>;

/** Makes the image's volume: blank, or a qcow2 overlay of a parent that must be complete. */
async function createVolume(repo: Repository, image: ImageRecord, work: CreateVolume, operationId: string): Promise<void> {
  const signal = Context.current().cancellationSignal;
  let parent = null;
  if (work.parentId) {
    const parentVolume = await readVolume(repo, work.parentId);
    if (!parentVolume?.legal) {
      throw new DiskflowError('STORAGE_ERROR', `volume ${work.parentId} that image ${image.imageId} is based on is not complete yet; mend the image that holds it first`, false);
    }
    const chain = await readChain(repo, work.parentId);
    for (const volume of [...chain].reverse()) await repo.activate(volume.volumeId, volume.format);
    parent = { volumeId: parentVolume.volumeId, format: parentVolume.format };
  }
  const volume = {
    schema: 'diskflow.volume/1' as const,
    volumeId: image.volumeId,
    format: work.format,
    parentId: work.parentId,
    size: image.size,
    createdAt: new Date().toISOString(),
    createdBy: operationId,
  };
  // Illegal before the first byte is written, legal only after the last.
  await writeVolume(repo, { ...volume, legal: false });
  failpoint('mend.volume-illegal');
  await repo.createVolume({ volumeId: image.volumeId, format: work.format, size: image.size, parent, preallocate: work.preallocate }, signal);
  failpoint('mend.volume-created');
  await writeVolume(repo, { ...volume, legal: true });
  failpoint('mend.volume-legal');
}

export function createMendActivities(deps: ActivityDeps) {
  const { connections, operations, hostId } = deps;
  return {
    mendImage: (input: ImageStep): Promise<MendOutcome> => mend(input),

    /**
     * Records why work stopped (cancelled, paused, failed for a reason other than a crash) and
     * releases the operation's claim (kept while paused), leaving the image in its last
     * persisted state for a later fix.
     */
    async recordStoppedWork(input: ImageStep & { reason: string; keepClaim?: boolean }): Promise<void> {
      const repo = connections.byUuid(input.repoUuid);
      try {
        await updateImage(repo, input.imageId, (img) => {
          if (img.removed || (img.operation && img.operation.id !== input.operationId)) return undefined;
          return { ...img, operation: input.keepClaim ? img.operation : null, lastError: input.reason };
        });
      } catch (error) {
        if (!(error instanceof DiskflowError && error.code === 'IMAGE_NOT_FOUND')) throw error;
      }
    },
  };

  async function mend(input: ImageStep): Promise<MendOutcome> {
    const repo = connections.byUuid(input.repoUuid);
    const image = await readImage(repo, input.imageId);
    if (!image || image.removed) return 'removed';
    await assertNotBusy(image, input.operationId, operations);
    const work = image.pending;
    if (work) {
      await updateImage(repo, input.imageId, (img) => ({
        ...img,
        operation: img.operation?.id === input.operationId ? img.operation : { id: input.operationId, type: 'mend', startedAt: new Date().toISOString() },
        hostId,
        lastError: null,
      }));
      if (work.step === 'create-volume') {
        const progress = new ProgressReporter(repo, input.imageId, hostId, 0, { current: 1, total: 1 });
        await progress.enter({ current: 1, total: 1 }, -1);
        await createVolume(repo, image, work, input.operationId);
      } else if ((await runCopyJob(deps, repo, input.imageId, 'pending')) === 'removed') {
        return 'removed';
      }
    }
    const after = await updateImage(repo, input.imageId, (img) => {
      if (img.removed) return undefined;
      const total = img.stage?.total ?? 1;
      return {
        ...img,
        pending: null,
        status: work?.step === 'create-volume' ? work.then : img.status === 'broken' ? 'optimized' : img.status,
        operation: null,
        hostId,
        stage: { current: total, total },
        percentComplete: 100,
        lastError: null,
      };
    });
    return after.removed ? 'removed' : 'usable';
  }
}
