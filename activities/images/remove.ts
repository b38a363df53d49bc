/**
 * Removal is two steps: the removal mark (logical, immediate: the image is gone for users) and
 * the clean that reclaims the volumes no other image needs. Garbage collection, not rollback.
 */
import { DiskflowError } from '../../api/errors';
import type { ActivityDeps, ImageStep } from '../deps';
import { failpoint } from '../failpoints';
import type { Repository } from '../repository/repository';
import { listImageRecords, readChain, readImage, updateImage } from './image-store';
import type { ImageRecord } from './records';

/** Held while chains are read to decide what is garbage, and while new links to volumes are made. */
export const CHAINS_LOCK = 'chains';

export interface RemovalMarked {
  /** The operation that was working on the image and should now be stopped. */
  interrupted: string | null;
}

/**
 * Every volume an image needs: its chain, the parent its pending overlay will sit on (and that
 * parent's chain), and the volume an optimize is filling for it.
 */
export async function volumesNeededBy(repo: Repository, image: ImageRecord): Promise<Set<string>> {
  const needed = new Set<string>([image.volumeId]);
  const roots = [image.volumeId];
  if (image.pending?.step === 'create-volume' && image.pending.parentId) roots.push(image.pending.parentId);
  // An incremental copy's base is needed from the moment the copy is persisted.
  if (image.pending?.step === 'copy' && image.pending.job.base) roots.push(image.pending.job.base.volumeId);
  if (image.optimizing) needed.add(image.optimizing.volumeId);
  for (const root of roots) {
    needed.add(root);
    for (const volume of await readChain(repo, root)) needed.add(volume.volumeId);
  }
  return needed;
}

/** Volumes some image that is not removed still needs. */
export async function liveVolumeIds(repo: Repository): Promise<Set<string>> {
  const live = new Set<string>();
  for (const image of await listImageRecords(repo)) {
    if (image.removed) continue;
    for (const volumeId of await volumesNeededBy(repo, image)) live.add(volumeId);
  }
  return live;
}

/** The removal mark: the image is gone for users at once; what was working on it is to be stopped. */
export async function markRemoved(repo: Repository, input: { imageId: string; operationId: string }): Promise<RemovalMarked> {
  const current = await readImage(repo, input.imageId);
  if (current?.removed?.operationId === input.operationId) return { interrupted: null };
  let interrupted: string | null = null;
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
  failpoint('remove.marked');
  return { interrupted };
}

export function createRemoveActivities({ connections }: ActivityDeps) {
  return {
    /** Reclaims a removed image's volumes that no other image needs, then forgets the image. */
    async cleanRemovedImage(input: ImageStep): Promise<{ freedBytes: number }> {
      const repo = connections.byUuid(input.repoUuid);
      return repo.withRecordLock('volume', CHAINS_LOCK, async () => {
        const image = await readImage(repo, input.imageId);
        if (!image) return { freedBytes: 0 };
        if (!image.removed) throw new DiskflowError('STORAGE_ERROR', `image ${input.imageId} is not removed; nothing to clean`);
        const live = await liveVolumeIds(repo);
        const stored = new Map((await repo.listVolumes()).map((v) => [v.volumeId, v.allocatedBytes]));
        let freedBytes = 0;
        for (const volumeId of await volumesNeededBy(repo, image)) {
          if (live.has(volumeId)) continue;
          freedBytes += stored.get(volumeId) ?? 0;
          await repo.removeVolume(volumeId);
          failpoint('clean.volume-removed');
          await repo.deleteRecord('volume', volumeId);
        }
        await repo.deleteRecord('image', input.imageId);
        return { freedBytes };
      });
    },
  };
}
