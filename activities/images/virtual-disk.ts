/** Persisting a new virtual disk: the record that makes the call durable, before any data work. */
import { randomUUID } from 'node:crypto';
import { DiskflowError } from '../../api/errors';
import type { Strategy, UserData } from '../../api/values';
import type { ActivityDeps, ImageStep } from '../deps';
import { claimFor } from './claims';
import { createImage, readImage } from './image-store';
import type { ImageRecord } from './records';

export interface PersistVirtualDiskInput extends ImageStep {
  size: number;
  userData: UserData;
  strategy: Strategy;
  /** Whether this operation goes on to fix the image; only then does it keep its claim on it. */
  autoFix: boolean;
}

export function createVirtualDiskActivities({ connections, hostId }: ActivityDeps) {
  return {
    /**
     * Writes the new disk's record, broken and holding what its mend must do. Idempotent: a
     * retry of the same operation finds its own record and succeeds.
     */
    async persistVirtualDisk(input: PersistVirtualDiskInput): Promise<void> {
      const repo = connections.byUuid(input.repoUuid);
      const mine = (image: ImageRecord | null) => image?.createdBy === input.operationId;
      const existing = await readImage(repo, input.imageId);
      if (existing) {
        if (mine(existing)) return;
        throw new DiskflowError('STORAGE_ERROR', `image id ${input.imageId} is already taken in ${repo.location}`);
      }
      const performance = input.strategy === 'performance';
      if (performance && input.size > (await repo.freeBytes())) {
        throw new DiskflowError('NO_SPACE', `a preallocated ${input.size}-byte disk does not fit in ${repo.location}`);
      }
      const now = new Date().toISOString();
      const image: ImageRecord = {
        schema: 'diskflow.image/1',
        imageId: input.imageId,
        kind: 'virtual-disk',
        size: input.size,
        userData: input.userData,
        strategy: input.strategy,
        volumeId: randomUUID(),
        generation: 1,
        status: 'broken',
        pending: { step: 'create-volume', format: performance ? 'raw' : 'qcow2', preallocate: performance },
        removed: null,
        operation: input.autoFix ? claimFor(input.operationId, 'createVirtualDisk') : null,
        prepared: {},
        hostId,
        stage: { current: 0, total: 1 },
        percentComplete: 0,
        lastError: null,
        createdAt: now,
        createdBy: input.operationId,
        updatedAt: now,
      };
      if (!(await createImage(repo, image)) && !mine(await readImage(repo, input.imageId))) {
        throw new DiskflowError('STORAGE_ERROR', `image id ${input.imageId} is already taken in ${repo.location}`);
      }
    },
  };
}
