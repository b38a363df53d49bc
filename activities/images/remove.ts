/**
 * Removal is two steps: the removal mark (logical, immediate: the image is gone for users) and
 * the clean that reclaims the volumes no other image needs. Garbage collection, not rollback.
 */
import { DiskflowError } from '../../api/errors';
import type { ActivityDeps, ImageStep } from '../deps';
import type { Repository } from '../repository/repository';
import { listImageRecords, readChain, readImage, updateImage } from './image-store';

/** Held while chains are read to decide what is garbage, and while new links to volumes are made. */
export const CHAINS_LOCK = 'chains';

export interface RemovalMarked {
  /** The operation that was working on the image and should now be stopped. */
  interrupted: string | null;
}

/** Volumes some image that is not removed still needs. */
export async function liveVolumeIds(repo: Repository): Promise<Set<string>> {
  const live = new Set<string>();
  for (const image of await listImageRecords(repo)) {
    if (image.removed) continue;
    live.add(image.volumeId);
    for (const volume of await readChain(repo, image.volumeId)) live.add(volume.volumeId);
  }
  return live;
}

export function createRemoveActivities({ connections }: ActivityDeps) {
  return {
    async markImageRemoved(input: ImageStep): Promise<RemovalMarked> {
      const repo = connections.byUuid(input.repoUuid);
      let interrupted: string | null = null;
      const current = await readImage(repo, input.imageId);
      if (current?.removed?.operationId === input.operationId) return { interrupted: null };
      await updateImage(repo, input.imageId, (img) => {
        if (img.removed) {
          if (img.removed.operationId === input.operationId) return undefined;
          throw new DiskflowError('IMAGE_NOT_FOUND', `image ${input.imageId} is not in the repository`);
        }
        const hosts = Object.keys(img.prepared);
        if (hosts.length) {
          throw new DiskflowError('IMAGE_IN_USE', `image ${input.imageId} is prepared for a VM on ${hosts.join(', ')}; tear it down first`);
        }
        interrupted = img.operation && img.operation.id !== input.operationId ? img.operation.id : null;
        return { ...img, removed: { at: new Date().toISOString(), operationId: input.operationId }, operation: null };
      });
      return { interrupted };
    },

    /** Reclaims a removed image's volumes that no other image needs, then forgets the image. */
    async cleanRemovedImage(input: ImageStep): Promise<{ freedBytes: number }> {
      const repo = connections.byUuid(input.repoUuid);
      return repo.withRecordLock('volume', CHAINS_LOCK, async () => {
        const image = await readImage(repo, input.imageId);
        if (!image) return { freedBytes: 0 };
        if (!image.removed) throw new DiskflowError('STORAGE_ERROR', `image ${input.imageId} is not removed; nothing to clean`);
        const live = await liveVolumeIds(repo);
        const stored = new Map((await repo.listVolumes()).map((v) => [v.volumeId, v.allocatedBytes]));
        const chain = new Set([image.volumeId, ...(await readChain(repo, image.volumeId)).map((v) => v.volumeId)]);
        let freedBytes = 0;
        for (const volumeId of chain) {
          if (live.has(volumeId)) continue;
          freedBytes += stored.get(volumeId) ?? 0;
          await repo.removeVolume(volumeId);
          await repo.deleteRecord('volume', volumeId);
        }
        await repo.deleteRecord('image', input.imageId);
        return { freedBytes };
      });
    },
  };
}
