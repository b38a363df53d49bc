/** The steps that carry out accepted fixes: clean, optimize, merge (mend is images/mend.ts). */
import { Context } from '@temporalio/activity';
import { DiskflowError } from '../../api/errors';
import type { ActivityDeps, ImageStep } from '../deps';
import { failpoint } from '../failpoints';
import { runCopyJob } from '../images/copy-job';
import { readChain, readImage, readVolume, requireImage, updateImage, writeVolume } from '../images/image-store';
import { ProgressReporter } from '../images/progress';
import { CHAINS_LOCK, liveVolumeIds } from '../images/remove';
import * as qemuImg from '../qemu/qemu-img';
import type { Repository } from '../repository/repository';

/** Removes the volumes (and records) among `volumeIds` that nothing needs, under the chains lock. */
async function removeUnneeded(repo: Repository, volumeIds: string[]): Promise<number> {
  return repo.withRecordLock('volume', CHAINS_LOCK, async () => {
    const live = await liveVolumeIds(repo);
    const stored = new Map((await repo.listVolumes()).map((v) => [v.volumeId, v.allocatedBytes]));
    let freed = 0;
    for (const volumeId of volumeIds) {
      if (live.has(volumeId)) continue;
      freed += stored.get(volumeId) ?? 0;
      await repo.removeVolume(volumeId);
      await repo.deleteRecord('volume', volumeId);
    }
    return freed;
  });
}

function ownClaim(image: { operation: { id: string } | null; imageId: string }, operationId: string): void {
  if (image.operation?.id !== operationId) {
    throw new DiskflowError('IMAGE_BUSY', `image ${image.imageId} is no longer claimed by this fix (${operationId}); check again`);
  }
}

export function createFixActivities(deps: ActivityDeps) {
  const { connections, hostId, settings } = deps;

  return {
    /** clean: leftovers of interrupted operations that no image needs. */
    async cleanOrphans(input: { repoUuid: string; volumes: string[]; strays: string[] }): Promise<{ freedBytes: number }> {
      const repo = connections.byUuid(input.repoUuid);
      let freedBytes = await removeUnneeded(repo, input.volumes);
      const strays = new Map((await repo.listStrayFiles()).map((f) => [f.name, f.bytes]));
      for (const name of input.strays) {
        if (!strays.has(name)) continue;
        freedBytes += strays.get(name)!;
        await repo.removeStrayFile(name);
      }
      return { freedBytes };
    },

    /** optimize: makes the better representation (a copy job), then switches the image onto it. */
    async optimizeImage(input: ImageStep): Promise<void> {
        const repo = connections.byUuid(input.repoUuid);
        const image = await requireImage(repo, input.imageId);
        ownClaim(image, input.operationId);
        if (!image.optimizing) {
          await updateImage(repo, input.imageId, (img) => ({ ...img, operation: null }));
          return;
        }
        if ((await runCopyJob(deps, repo, input.imageId, 'optimizing')) === 'removed') return;
        failpoint('optimize.before-switch');
        const before = await repo.withRecordLock('volume', CHAINS_LOCK, async () => {
          const current = await requireImage(repo, input.imageId);
          const old = [current.volumeId, ...(await readChain(repo, current.volumeId)).map((v) => v.volumeId)];
          await updateImage(repo, input.imageId, (img) => ({
            ...img,
            volumeId: img.optimizing!.volumeId,
            optimizing: null,
            status: 'optimized',
            contentEpoch: img.contentEpoch + 1,
            operation: null,
            hostId,
            lastError: null,
          }));
          return old;
        });
        // The old chain is garbage now, unless other images (snapshots, disks) still need parts of it.
        await removeUnneeded(repo, before);
    },

    /**
     * merge: folds `upper` into `lower` (its parent), two volumes only this image needs. No
     * image's content changes at any instant: during the commit the image still reads `upper`
     * first; the relink (the image's record, or the child volume's backing) only happens once
     * `lower` holds everything; `upper` is removed last. A retry redoes what is not done.
     */
    async mergeVolumes(input: ImageStep & { upper: string; lower: string }): Promise<void> {
        const repo = connections.byUuid(input.repoUuid);
        const signal = Context.current().cancellationSignal;
        const image = await requireImage(repo, input.imageId);
        ownClaim(image, input.operationId);
        const chain = await readChain(repo, image.volumeId);
        const at = chain.findIndex((v) => v.volumeId === input.upper);
        if (at >= 0) {
          if (chain[at + 1]?.volumeId !== input.lower) throw new DiskflowError('FIX_INVALID', `volume ${input.lower} is no longer below ${input.upper}; check again`);
          const progress = new ProgressReporter(repo, input.imageId, hostId, settings.progressIntervalMs, { current: 1, total: 2 });
          await progress.enter({ current: 1, total: 2 });
          let path = '';
          for (const volume of [...chain].reverse()) {
            const p = await repo.activate(volume.volumeId, volume.format);
            if (volume.volumeId === input.upper) path = p;
          }
          const lowerPath = await repo.activate(chain[at + 1].volumeId, chain[at + 1].format);
          await qemuImg.commit(path, { base: lowerPath, directIo: repo.directIo, signal, onProgress: (f) => progress.report(100 * f) });
          failpoint('merge.committed');
          await progress.enter({ current: 2, total: 2 });
          await repo.withRecordLock('volume', CHAINS_LOCK, async () => {
            if (at === 0) {
              await updateImage(repo, input.imageId, (img) => ({ ...img, volumeId: input.lower, contentEpoch: img.contentEpoch + 1 }));
            } else {
              const child = chain[at - 1];
              const childPath = await repo.activate(child.volumeId, child.format);
              await qemuImg.rebaseUnsafe(childPath, { file: repo.backingReference(input.lower, chain[at + 1].format), format: chain[at + 1].format }, { signal });
              await writeVolume(repo, { ...(await readVolume(repo, child.volumeId))!, parentId: input.lower });
            }
          });
        }
        failpoint('merge.relinked');
        await removeUnneeded(repo, [input.upper]);
        await updateImage(repo, input.imageId, (img) => ({ ...img, operation: null, hostId, lastError: null, stage: { current: 2, total: 2 }, percentComplete: 100 }));
    },

    /** Releases a fix's claim on an image once the fix is done. */
    async releaseClaim(input: ImageStep): Promise<void> {
      const repo = connections.byUuid(input.repoUuid);
      const image = await readImage(repo, input.imageId);
      if (!image || image.operation?.id !== input.operationId) return;
      await updateImage(repo, input.imageId, (img) => ({ ...img, operation: null }));
    },
  };
}
