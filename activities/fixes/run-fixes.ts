/**
 * The steps that carry out accepted optimize and merge fixes (mend is images/mend.ts, clean
 * images/clean.ts). Each answers the volumes it left behind, which a clean step on the object
 * manager then reclaims if no image needs them (a host that is not a clvm SRM cannot decide
 * what is garbage: the chains lock is the SRM's).
 */
import { Context } from '@temporalio/activity';
import { DiskflowError } from '../../api/errors';
import type { ActivityDeps, ImageStep } from '../deps';
import { failpoint } from '../failpoints';
import { runCopyJob } from '../images/copy-job';
import { roomForData } from '../images/copy-limits';
import { readChain, requireImage } from '../images/image-store';
import { assertClaimedBy, foldTopInto, relinkVolume, releaseClaim, switchToOptimized } from '../images/lifecycle';
import type { ImageRecord } from '../images/records';
import { runLiveMerge } from '../serving/live-merge';
import { runLiveOptimize } from '../serving/live-optimize';
import { ProgressReporter } from '../images/progress';
import { topDataBytes } from '../qemu/convert';
import * as qemuImg from '../qemu/qemu-img';

/** What a fix step left that may be garbage now: the clean step after it removes what no image needs. */
export interface LeftBehind {
  unneeded: string[];
}

export function createFixActivities(deps: ActivityDeps) {
  const { connections, hostId, settings } = deps;
  /**
   * A served disk is optimized and merged live, by its daemon: on the host serving it (and not
   * at all while its daemon is gone: the live step refuses, pointing at the mend).
   */
  const servedHere = (image: ImageRecord): boolean => {
    const on = image.served?.hostId;
    if (on && on !== hostId) throw new DiskflowError('IMAGE_IN_USE', `image ${image.imageId} is served to its VM on ${on}: this fix runs live there (run it with hostId ${on})`);
    return on !== undefined;
  };

  return {
    /** optimize: makes the better representation (a copy job), then switches the image onto it. */
    async optimizeImage(input: ImageStep & { bandwidth?: number }): Promise<LeftBehind> {
      const repo = connections.byUuid(input.repoUuid);
      const actor = { operationId: input.operationId, hostId };
      const image = await requireImage(repo, input.imageId);
      assertClaimedBy(image, input.operationId);
      if (servedHere(image)) return runLiveOptimize(deps, repo, input, new ProgressReporter(repo, input.imageId, hostId, settings.progressIntervalMs, { current: 1, total: 2 }));
      if (!image.optimizing) {
        await releaseClaim(repo, input.imageId, actor);
        return { unneeded: [] };
      }
      if ((await runCopyJob(deps, repo, input.imageId, 'optimizing', input.operationId)) === 'removed') return { unneeded: [] };
      failpoint('optimize.before-switch');
      const left = await switchToOptimized(repo, input.imageId, actor);
      // The old chain is garbage now, unless other images (snapshots, disks) still need parts of it.
      return { unneeded: [left, ...(await readChain(repo, left)).map((v) => v.volumeId)] };
    },

    /**
     * merge: folds `upper` into `lower` (its parent), two volumes only this image needs. No
     * image's content changes at any instant: during the commit the image still reads `upper`
     * first; the relink (the image's record, or the child volume's backing) only happens once
     * `lower` holds everything; `upper` is left for the clean step. A retry redoes what is not done.
     */
    async mergeVolumes(input: ImageStep & { upper: string; lower: string; bandwidth?: number }): Promise<LeftBehind> {
      const repo = connections.byUuid(input.repoUuid);
      const actor = { operationId: input.operationId, hostId };
      const signal = Context.current().cancellationSignal;
      const image = await requireImage(repo, input.imageId);
      assertClaimedBy(image, input.operationId);
      if (servedHere(image)) return runLiveMerge(deps, repo, input, new ProgressReporter(repo, input.imageId, hostId, settings.progressIntervalMs, { current: 1, total: 2 }));
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
        // Block storage: the lower volume grows to hold what the upper one brings, before the commit writes it.
        if (chain[at + 1].format === 'qcow2') {
          const [upperData, lowerData] = await Promise.all([
            topDataBytes({ path, format: chain[at].format, directIo: false }, signal),
            topDataBytes({ path: lowerPath, format: 'qcow2', directIo: false }, signal),
          ]);
          await repo.ensureCapacity(input.lower, roomForData(upperData + lowerData, image.size));
        }
        const rateLimit = input.bandwidth ?? settings.copyRateLimit ?? undefined;
        await qemuImg.commit(path, { base: lowerPath, directIo: repo.directIo, rateLimit, signal, onProgress: (f) => progress.report(100 * f) });
        failpoint('merge.committed');
        await progress.enter({ current: 2, total: 2 });
        if (at === 0) {
          await foldTopInto(repo, input.imageId, input.upper, input.lower, actor);
        } else {
          const child = chain[at - 1];
          const childPath = await repo.activate(child.volumeId, child.format);
          await qemuImg.rebaseUnsafe(childPath, { file: repo.backingReference(input.lower, chain[at + 1].format), format: chain[at + 1].format }, { signal });
          await relinkVolume(repo, child.volumeId, input.lower);
        }
      }
      failpoint('merge.relinked');
      await releaseClaim(repo, input.imageId, actor, { current: 2, total: 2 });
      return { unneeded: [input.upper] };
    },
  };
}
