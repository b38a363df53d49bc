/**
 * Image steps that belong to one host: reading status under that host's repoId handle, and
 * preparing an image for a VM that runs there.
 */
import { Context } from '@temporalio/activity';
import type { ImageStatus, PreparedImage } from '../../api/image-status';
import type { ImagesPage } from '../../api/operations';
import { fitAnswer } from '../answer-size';
import type { ActivityDeps } from '../deps';
import type { ImageRecord } from '../images/records';
import type { Repository } from '../repository/repository';
import { repositoryRef, RepositoryRef } from './repositories';
import { listImageRecords, readChain, requireImage } from '../images/image-store';
import { toImageStatus } from '../images/image-status';
import { OperationRegistry, prepareOnHost, teardownOnHost, whileUnused } from '../images/lifecycle';

export interface ImageOnHost {
  repoId: string;
  imageId: string;
}

export interface TeardownOnHost extends ImageOnHost {
  /**
   * Release the mark of this host instead of the caller's: a host the engine knows is fenced
   * (powered off, or cut from the storage), whose VM can no longer write the image.
   */
  fencedHostId?: string;
}

/** Images that are not removed, oldest first (ties by id): a stable order to page through. */
async function imagesInOrder(repo: Repository): Promise<ImageRecord[]> {
  return (await listImageRecords(repo)).filter((image) => !image.removed).sort((a, b) => (cursorOf(a) < cursorOf(b) ? -1 : 1));
}

/** The position of an image in that order: ISO times sort as strings, and `/` sorts before digits. */
const cursorOf = (image: ImageRecord) => `${image.createdAt}/${image.imageId}`;

export function createHostImageActivities(deps: ActivityDeps) {
  const { connections, hostId, operations, settings, srm } = deps;
  const srmElsewhere = (repo: Repository) => repo.traits.needsSrm && !srm?.holds(repo.header.uuid);
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

    /**
     * Marks the image prepared on this host (lifecycle.prepareOnHost, with every rule of images
     * in use) and activates its chain. Where only the SRM may write records and this host is not
     * it, nothing is written here: the answer asks the workflow to have the SRM mark it
     * (markPrepared), then to activate it (activateImage).
     */
    async prepareImage({ repoId, imageId }: ImageOnHost): Promise<PreparedImage | { markOnSrm: RepositoryRef }> {
      const repo = connections.byRepoId(repoId);
      if (srmElsewhere(repo)) return { markOnSrm: await repositoryRef(deps, repo) };
      await markPrepared(repo, imageId, hostId, operations);
      return activateImage(repo, imageId);
    },

    async activateImage({ repoId, imageId }: ImageOnHost): Promise<PreparedImage> {
      return activateImage(connections.byRepoId(repoId), imageId);
    },

    /**
     * The record half of prepare and teardown, on a host that may write records (the SRM, where
     * there is one): with the room a VM needs made first, and given back after the last teardown.
     */
    async markPrepared({ repoUuid, imageId, onHost, prepared }: { repoUuid: string; imageId: string; onHost: string; prepared: boolean }): Promise<void> {
      const repo = connections.byUuid(repoUuid);
      if (prepared) {
        await markPrepared(repo, imageId, onHost, operations);
        return;
      }
      await teardownOnHost(repo, imageId, onHost);
      await shrinkIfUnused(repo, imageId);
    },

    async teardownImage({ repoId, imageId, fencedHostId }: TeardownOnHost): Promise<void | { markOnSrm: RepositoryRef; onHost: string }> {
      const repo = connections.byRepoId(repoId);
      const onHost = fencedHostId ?? hostId;
      // Deactivated first: the mark goes only once no VM here can write the image. A fenced
      // host's activations are that host's own, and it is gone.
      if (!fencedHostId) for (const volume of await readChain(repo, (await requireImage(repo, imageId)).volumeId)) await repo.deactivate(volume.volumeId);
      if (srmElsewhere(repo)) return { markOnSrm: await repositoryRef(deps, repo), onHost };
      await teardownOnHost(repo, imageId, onHost);
      await shrinkIfUnused(repo, imageId);
    },
  };
}

/** The record half of prepare, with the room a VM needs made inside the same step. */
async function markPrepared(repo: Repository, imageId: string, onHost: string, operations: OperationRegistry): Promise<void> {
  await prepareOnHost(repo, imageId, onHost, operations, async (img) => {
    // Before the mark, so a volume that cannot get the room (NO_SPACE) leaves nothing marked;
    // and before any host activates it. Only the top volume is written by a VM.
    if (img.kind === 'virtual-disk' && !(await repo.growForVm(img.volumeId, img.size))) {
      Context.current().log.warn('volume not grown to hold the whole disk: it cannot grow in place without device-mapper; the VM may fill it', {
        imageId,
        volumeId: img.volumeId,
      });
    }
  });
}

/**
 * After a teardown: once no host has the image prepared (and no operation works on it), the
 * room prepare made is given back. Under the image's lock, so a prepare on the SRM waits for it.
 * Optional: a failure leaves the volume large, which is safe, and does not fail the teardown.
 */
async function shrinkIfUnused(repo: Repository, imageId: string): Promise<void> {
  try {
    await whileUnused(repo, imageId, (img) => repo.shrinkAfterVm(img.volumeId));
  } catch (error) {
    Context.current().log.warn('volume not shrunk after teardown', { imageId, error: String(error) });
  }
}

async function activateImage(repo: Repository, imageId: string): Promise<PreparedImage> {
  const image = await requireImage(repo, imageId);
  const chain = await readChain(repo, image.volumeId);
  // Base first: a qcow2 overlay can only be opened once its backing volume is reachable.
  for (const volume of [...chain].reverse()) await repo.activate(volume.volumeId, volume.format);
  const top = chain[0];
  // A snapshot never changes: whoever opens it must open it read-only.
  return { path: await repo.activate(top.volumeId, top.format), format: top.format, readOnly: image.kind === 'snapshot' };
}
