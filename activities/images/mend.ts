/**
 * Mend: completes the work a broken image still has pending, from what its record says. The
 * same step serves autoFix right after an operation persisted and a fix run much later, on any
 * host that may do it; re-running it after a crash converges.
 */
import { Context } from '@temporalio/activity';
import { DiskflowError } from '../../api/errors';
import type { ActivityDeps, ImageStep } from '../deps';
import type { Repository } from '../repository/repository';
import { assertNotBusy } from './claims';
import { readImage, updateImage, writeVolume } from './image-store';
import type { ImageRecord, PendingWork } from './records';

export type MendOutcome = 'usable' | 'removed';

export function createMendActivities({ connections, operations, hostId }: ActivityDeps) {
  async function doPendingWork(repo: Repository, image: ImageRecord, work: PendingWork, operationId: string): Promise<void> {
    const signal = Context.current().cancellationSignal;
    switch (work.step) {
      case 'create-volume': {
        const volume = {
          schema: 'diskflow.volume/1' as const,
          volumeId: image.volumeId,
          format: work.format,
          parentId: null,
          size: image.size,
          createdAt: new Date().toISOString(),
          createdBy: operationId,
        };
        // Illegal before the first byte is written, legal only after the last.
        await writeVolume(repo, { ...volume, legal: false });
        await repo.createVolume({ volumeId: image.volumeId, format: work.format, size: image.size, parent: null, preallocate: work.preallocate }, signal);
        await writeVolume(repo, { ...volume, legal: true });
        return;
      }
    }
  }

  return {
    async mendImage(input: ImageStep): Promise<MendOutcome> {
      const repo = connections.byUuid(input.repoUuid);
      const image = await readImage(repo, input.imageId);
      if (!image || image.removed) return 'removed';
      await assertNotBusy(image, input.operationId, operations);
      if (image.pending) {
        await updateImage(repo, input.imageId, (img) => ({
          ...img,
          operation: img.operation?.id === input.operationId ? img.operation : { id: input.operationId, type: 'mend', startedAt: new Date().toISOString() },
          hostId,
          lastError: null,
        }));
        await doPendingWork(repo, image, image.pending, input.operationId);
      }
      const after = await updateImage(repo, input.imageId, (img) => {
        if (img.removed) return undefined;
        return {
          ...img,
          pending: null,
          status: 'optimized',
          operation: null,
          hostId,
          stage: { current: 1, total: 1 },
          percentComplete: 100,
          lastError: null,
        };
      });
      return after.removed ? 'removed' : 'usable';
    },

    /**
     * Records why work stopped (cancelled, failed for a reason other than a crash) and releases
     * the operation's claim, leaving the image in its last persisted state for a later fix.
     */
    async recordStoppedWork(input: ImageStep & { reason: string }): Promise<void> {
      const repo = connections.byUuid(input.repoUuid);
      try {
        await updateImage(repo, input.imageId, (img) => {
          if (img.removed || (img.operation && img.operation.id !== input.operationId)) return undefined;
          return { ...img, operation: null, lastError: input.reason };
        });
      } catch (error) {
        if (!(error instanceof DiskflowError && error.code === 'IMAGE_NOT_FOUND')) throw error;
      }
    },
  };
}
