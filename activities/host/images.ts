/**
 * Image steps that belong to one host: reading status under that host's repoId handle, and
 * preparing an image for a VM that runs there.
 */
import { Context } from '@temporalio/activity';
import type { ImageStatus, PreparedImage } from '../../api/image-status';
import type { ServeMode } from '../../api/values';
import type { ImagesPage } from '../../api/operations';
import { fitAnswer } from '../answer-size';
import type { ActivityDeps } from '../deps';
import type { ImageRecord } from '../images/records';
import type { Repository } from '../repository/repository';
import { repositoryRef, RepositoryRef } from './repositories';
import { listImageRecords, readChain, requireImage } from '../images/image-store';
import { toImageStatus } from '../images/image-status';
import { OperationRegistry, prepareOnHost, teardownOnHost, whileUnused } from '../images/lifecycle';
import { ServingDaemon } from '../serving/daemon';
import { serveImage, stopServing } from '../serving/serve';
import { settleBeforeTeardown, settleLiveWithoutDaemon } from '../serving/settle';

export interface ImageOnHost {
  repoId: string;
  imageId: string;
}

export interface PrepareOnHost extends ImageOnHost {
  /** Serve the image through this host's own block layer (qemu-storage-daemon) instead of its volume's path. */
  serve?: ServeMode;
}

/** How the disk is to be served, as the preparing host names it (its sockets are under its DISKFLOW_HOME). */
export interface ServeOnHost {
  mode: ServeMode;
  address: string;
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
  const home = connections.host.home;
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
    async prepareImage({ repoId, imageId, serve }: PrepareOnHost): Promise<PreparedImage | { markOnSrm: RepositoryRef; serve: ServeOnHost | null }> {
      const repo = connections.byRepoId(repoId);
      // Storage is untrusted: a chain that is not what its records say is refused before anything is marked.
      const image = await requireImage(repo, imageId);
      for (const volume of await readChain(repo, image.volumeId)) await repo.assertOpenable?.(volume.volumeId, volume.format);
      const served = serve ? { mode: serve, address: new ServingDaemon(home, imageId).address(serve) } : null;
      if (srmElsewhere(repo)) return { markOnSrm: await repositoryRef(deps, repo), serve: served };
      await markPrepared(repo, imageId, hostId, operations, served);
      return activateImage(home, repo, imageId, serve ?? null);
    },

    async activateImage({ repoId, imageId, serve }: PrepareOnHost): Promise<PreparedImage> {
      return activateImage(home, connections.byRepoId(repoId), imageId, serve ?? null);
    },

    /**
     * The record half of prepare and teardown, on a host that may write records (the SRM, where
     * there is one): with the room a VM needs made first, and given back after the last teardown.
     */
    async markPrepared(input: { repoUuid: string; imageId: string; onHost: string; prepared: boolean; serve?: ServeOnHost | null }): Promise<void> {
      const repo = connections.byUuid(input.repoUuid);
      if (input.prepared) {
        await markPrepared(repo, input.imageId, input.onHost, operations, input.serve ?? null);
        return;
      }
      await teardownOnHost(repo, input.imageId, input.onHost);
      await shrinkIfUnused(repo, input.imageId);
    },

    async teardownImage({ repoId, imageId, fencedHostId }: TeardownOnHost): Promise<void | { markOnSrm: RepositoryRef; onHost: string }> {
      const repo = connections.byRepoId(repoId);
      const onHost = fencedHostId ?? hostId;
      if (fencedHostId) {
        // Its daemon went with the host: a live step it left is settled from the volumes.
        const image = await requireImage(repo, imageId);
        if (image.served?.hostId === fencedHostId) await settleLiveWithoutDaemon(repo, image, { operationId: image.operation?.id ?? 'fenced-teardown', hostId });
      } else {
        const image = await requireImage(repo, imageId);
        // A disk served here: its daemon stops first (it flushes and closes the chain), once no
        // live operation is changing its graph.
        if (image.served?.hostId === hostId) {
          await settleBeforeTeardown(deps, repo, image);
          await stopServing(home, imageId);
        }
        // Deactivated first: the mark goes only once no VM here can write the image. A fenced
        // host's activations are that host's own, and it is gone.
        for (const volume of await readChain(repo, image.volumeId)) await repo.deactivate(volume.volumeId);
      }
      if (srmElsewhere(repo)) return { markOnSrm: await repositoryRef(deps, repo), onHost };
      await teardownOnHost(repo, imageId, onHost);
      await shrinkIfUnused(repo, imageId);
    },
  };
}

/** The record half of prepare, with the room a VM needs made inside the same step. */
async function markPrepared(repo: Repository, imageId: string, onHost: string, operations: OperationRegistry, serve: ServeOnHost | null): Promise<void> {
  await prepareOnHost(repo, imageId, onHost, operations, async (img) => {
    // Before the mark, so a volume that cannot get the room (NO_SPACE) leaves nothing marked;
    // and before any host activates it. Only the top volume is written by a VM.
    if (img.kind === 'virtual-disk' && !(await repo.growForVm(img.volumeId, img.size))) {
      Context.current().log.warn('volume not grown to hold the whole disk: it cannot grow in place without device-mapper; the VM may fill it', {
        imageId,
        volumeId: img.volumeId,
      });
    }
  }, serve);
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

/** Activates the image's chain here, served by this host's block layer when `serve` says so. */
async function activateImage(home: string, repo: Repository, imageId: string, serve: ServeMode | null): Promise<PreparedImage> {
  const image = await requireImage(repo, imageId);
  // A snapshot never changes: whoever opens it must open it read-only.
  const readOnly = image.kind === 'snapshot';
  if (serve) {
    // What the VM opens is the daemon's export of the chain: raw, whatever the volumes' formats.
    return { path: await serveImage(home, repo, image, serve), format: 'raw', readOnly, served: serve };
  }
  const chain = await readChain(repo, image.volumeId);
  // Base first: a qcow2 overlay can only be opened once its backing volume is reachable.
  for (const volume of [...chain].reverse()) await repo.activate(volume.volumeId, volume.format);
  const top = chain[0];
  return { path: await repo.activate(top.volumeId, top.format), format: top.format, readOnly, served: null };
}
