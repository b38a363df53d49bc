/**
 * Image steps that belong to one host: reading status under that host's repoId handle, and
 * preparing an image for a VM that runs there.
 */
import { DiskflowError } from '../../api/errors';
import type { ImageStatus, PreparedImage } from '../../api/image-status';
import type { ImagesPage } from '../../api/operations';
import { fitAnswer } from '../answer-size';
import type { ActivityDeps } from '../deps';
import type { ImageRecord } from '../images/records';
import type { Repository } from '../repository/repository';
import { listImageRecords, readChain, requireImage, updateImage } from '../images/image-store';
import { toImageStatus } from '../images/image-status';

export interface ImageOnHost {
  repoId: string;
  imageId: string;
}

/** Images that are not removed, oldest first (ties by id): a stable order to page through. */
async function imagesInOrder(repo: Repository): Promise<ImageRecord[]> {
  return (await listImageRecords(repo)).filter((image) => !image.removed).sort((a, b) => (cursorOf(a) < cursorOf(b) ? -1 : 1));
}

/** The position of an image in that order: ISO times sort as strings, and `/` sorts before digits. */
const cursorOf = (image: ImageRecord) => `${image.createdAt}/${image.imageId}`;

export function createHostImageActivities({ connections, hostId, operations, settings }: ActivityDeps) {
  return {
    async imageStatus({ repoId, imageId }: ImageOnHost): Promise<ImageStatus> {
      return toImageStatus(await requireImage(connections.byRepoId(repoId), imageId), repoId);
    },

    async listImageStatuses({ repoId }: { repoId: string }): Promise<ImageStatus[]> {
      return (await imagesInOrder(connections.byRepoId(repoId))).map((image) => toImageStatus(image, repoId));
    },

    /** The images after `after` (oldest first) that fit in one answer. */
    async listImageStatusPage({ repoId, after }: { repoId: string; after: string | null }): Promise<ImagesPage> {
      const rest = (await imagesInOrder(connections.byRepoId(repoId))).filter((image) => !after || cursorOf(image) > after);
      const images = fitAnswer(rest.map((image) => toImageStatus(image, repoId)), settings.answerBytes, { atLeastOne: true });
      return { images, next: images.length < rest.length ? cursorOf(rest[images.length - 1]) : null };
    },

    async prepareImage({ repoId, imageId }: ImageOnHost): Promise<PreparedImage> {
      const repo = connections.byRepoId(repoId);
      const image = await requireImage(repo, imageId);
      if (image.status === 'broken') {
        throw image.operation && (await operations.isRunning(image.operation.id))
          ? new DiskflowError('IMAGE_BUSY', `image ${imageId} is not ready yet: ${image.operation.type} is still working on it`)
          : new DiskflowError(
              'STORAGE_ERROR',
              `image ${imageId} is broken${image.lastError ? ` (${image.lastError})` : ''}; checkStorageRepository offers the fix that mends it`,
              false,
            );
      }
      await updateImage(repo, imageId, (img) => {
        if (img.removed) throw new DiskflowError('IMAGE_NOT_FOUND', `image ${imageId} is not in the repository`);
        return { ...img, prepared: { ...img.prepared, [hostId]: new Date().toISOString() } };
      });
      const chain = await readChain(repo, image.volumeId);
      // Base first: a qcow2 overlay can only be opened once its backing volume is reachable.
      for (const volume of [...chain].reverse()) await repo.activate(volume.volumeId, volume.format);
      const top = chain[0];
      return { path: await repo.activate(top.volumeId, top.format), format: top.format };
    },

    async teardownImage({ repoId, imageId }: ImageOnHost): Promise<void> {
      const repo = connections.byRepoId(repoId);
      const image = await updateImage(repo, imageId, (img) => {
        if (img.removed) throw new DiskflowError('IMAGE_NOT_FOUND', `image ${imageId} is not in the repository`);
        if (!(hostId in img.prepared)) return undefined;
        const prepared = { ...img.prepared };
        delete prepared[hostId];
        return { ...img, prepared };
      });
      for (const volume of await readChain(repo, image.volumeId)) await repo.deactivate(volume.volumeId);
    },
  };
}
