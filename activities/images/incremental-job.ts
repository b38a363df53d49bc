/**
 * Running an incremental copy job (a CopyJob with a `base`): the new volume is a qcow2 overlay
 * of the base's volume and receives only the clusters where the source now differs from it.
 *
 * - With a trusted change tracking record on the base (change-tracking.ts), only the clusters
 *   the base's bitmap marks dirty are read and written (qemu-storage-daemon, storage-daemon.ts).
 * - Otherwise the content is compared: the overlay is pointed at the source, then rebased onto
 *   the base in qemu-img's safe mode, which writes the clusters that differ (and reads both).
 *
 * Either way the copy counts changes from now for the copy after it (its own bitmap, added
 * before anything is read). Neither mover has a resume point of its own, so every attempt
 * starts from zero into a fresh overlay: a stopped incremental copy costs at most one more
 * round of its changes. The overlay stays illegal until it is complete, checked, and its source
 * is known not to have moved meanwhile.
 */
import type { Repository } from '../repository/repository';
import { DiskflowError } from '../../api/errors';
import type { ActivityDeps } from '../deps';
import { failpoint } from '../failpoints';
import * as qemuImg from '../qemu/qemu-img';
import { listBitmaps } from '../qemu/bitmaps';
import { dataExtents } from '../qemu/convert';
import { backupDirtyClusters } from '../qemu/storage-daemon';
import { bitmapName, dropBitmap, judgeTracking, startTracking } from './change-tracking';
import { dropServedBitmap, listServedBitmaps, liveBackup } from '../serving/live-copy';
import { bandwidthOf } from './copy-limits';
import { readChain, readImage, readVolume } from './image-store';
import { copySourceAfter, markVolumeLegal, newVolume, recordCopyOutcome, recordIllegalVolume, servedOn } from './lifecycle';
import type { ProgressReporter } from './progress';
import type { ChangeTracking, CopyJob, ImageRecord, VolumeRecord } from './records';
import type { VolumeFormat } from '../qemu/qemu-img';

const MiB = 2 ** 20;
const MAX_RESTARTS = 3;

export interface IncrementalContext {
  deps: ActivityDeps;
  repo: Repository;
  sourceRepo: Repository;
  image: ImageRecord;
  job: CopyJob;
  progress: ProgressReporter;
  signal: AbortSignal;
  /** Applies a change to the job if this attempt still owns it (copy-job.ts). */
  updateJob: (change: (job: CopyJob) => CopyJob) => Promise<CopyJob | 'removed'>;
  /** The source, claimed for the copy while it is read (copy-job.ts). */
  readSource: () => Promise<ImageRecord>;
  /** The operation the copy runs for. */
  operationId: string;
}

async function activateChain(repo: Repository, volumes: VolumeRecord[]): Promise<string> {
  let path = '';
  for (const volume of [...volumes].reverse()) path = await repo.activate(volume.volumeId, volume.format);
  return path;
}

export async function runIncrementalCopy(ctx: IncrementalContext): Promise<'done' | 'removed'> {
  const { deps, repo, sourceRepo, image, progress, signal } = ctx;
  const base = ctx.job.base!;
  let current = ctx.job;

  for (let round = 0; ; round++) {
    const source = await ctx.readSource();
    // A VM writes it through diskflow's block layer: the daemon serving it reads the changes, live.
    const liveOn = source.kind === 'virtual-disk' ? servedOn(source) : null;
    if (liveOn && liveOn !== deps.hostId) {
      throw new DiskflowError('IMAGE_IN_USE', `image ${source.imageId} is served to its VM on ${liveOn}: it is copied live there (run the copy's fix with hostId ${liveOn})`);
    }
    const home = deps.connections.host.home;
    if (round > MAX_RESTARTS) throw new DiskflowError('IMAGE_IN_USE', `image ${source.imageId} kept changing while it was copied (a VM is writing it?); copy it while it is not in use`);
    // Every attempt starts from zero: record that, with the source state this round reads
    // (a job that says so already, as a fresh one does, needs no write).
    const fresh = current.copiedUpTo === 0 && current.doneBytes === 0 && current.totalBytes === null && current.source.contentEpoch === source.contentEpoch;
    if (!fresh) {
      const restarted = await ctx.updateJob((j) => ({ ...j, source: { ...j.source, contentEpoch: source.contentEpoch }, copiedUpTo: 0, doneBytes: 0, totalBytes: null }));
      if (restarted === 'removed') return 'removed';
      current = restarted;
    }

    const baseVolume = await readVolume(repo, base.volumeId);
    if (!baseVolume?.legal) throw new DiskflowError('STORAGE_ERROR', `the base volume ${base.volumeId} of incremental copy ${image.imageId} is not complete`, false);
    const baseImage = await readImage(repo, base.imageId);
    const sourceChain = await readChain(sourceRepo, source.volumeId);
    const baseChain = await readChain(repo, base.volumeId);
    const volume = newVolume({ volumeId: current.volumeId, format: 'qcow2', size: image.size, createdBy: image.createdBy, parentId: base.volumeId });
    try {
      const topPath = await activateChain(sourceRepo, sourceChain);
      const bitmaps = sourceChain[0].format !== 'qcow2' ? [] : liveOn ? await listServedBitmaps(home, source.imageId) : await listBitmaps(topPath, { signal });
      const verdict = judgeTracking(
        baseImage?.changeTracking,
        baseImage?.size ?? -1,
        { repoUuid: current.source.repoUuid, imageId: source.imageId, volumeId: source.volumeId, contentEpoch: source.contentEpoch, chainEpoch: source.chainEpoch, size: source.size },
        bitmaps,
      );
      // Changes made after this read are counted for the copy after this one; meanwhile (the
      // two touch different files), a fresh overlay of the base, illegal until complete,
      // replaces any half-made one.
      const [tracking] = await Promise.all([
        // Live, the copy's bitmap is added by the daemon as the backup starts (serving/live-copy.ts).
        liveOn
          ? Promise.resolve(liveTracking(source, sourceChain[0].format, current.source.repoUuid, repo, image.imageId))
          : startTracking(topPath, sourceChain[0], source, current.source.repoUuid, repo, image.imageId, { signal, listed: bitmaps, keep: verdict.trusted ? [verdict.bitmap] : [] }),
        (async () => {
          await activateChain(repo, baseChain);
          await recordIllegalVolume(repo, volume);
          await repo.createVolume({ volumeId: volume.volumeId, format: 'qcow2', size: image.size, parent: { volumeId: base.volumeId, format: baseVolume.format }, preallocate: false }, signal);
        })(),
      ]);
      failpoint('incremental.overlay-created');
      // Room for what will be written (block storage grows its volume; files need nothing).
      const room = (bytes: number) => repo.ensureCapacity(volume.volumeId, Math.min(image.size, Math.ceil(bytes * 1.05)) + 64 * MiB);
      const overlayPath = await repo.activate(volume.volumeId, 'qcow2');

      await progress.enter({ current: 1, total: 2 }, 0);
      if (liveOn) {
        // Only what the base's bitmap marks, or (no trusted bitmap) all of it, at one instant.
        await room(verdict.trusted ? image.size : (await dataExtents({ path: topPath, format: sourceChain[0].format, directIo: false }, signal)).reduce((sum, e) => sum + e.length, 0));
        await liveBackup({
          home,
          imageId: source.imageId,
          target: { volumeId: volume.volumeId, format: 'qcow2', path: overlayPath, directIo: repo.directIo },
          sync: verdict.trusted ? { mode: 'bitmap', bitmap: verdict.bitmap } : { mode: 'full' },
          newBitmap: tracking?.bitmap ?? null,
          speed: bandwidthOf(current, deps.settings),
          onProgress: (done, total) => progress.report(total ? (100 * done) / total : 100, { doneBytes: done, totalBytes: total }),
        });
      } else if (verdict.trusted) {
        await backupDirtyClusters(
          { path: topPath, format: sourceChain[0].format, directIo: sourceRepo.directIo },
          { path: overlayPath, format: 'qcow2', directIo: repo.directIo },
          verdict.bitmap,
          {
            signal,
            beforeWrite: room,
            rateLimit: bandwidthOf(current, deps.settings),
            onProgress: (done, total) => progress.report(total ? (100 * done) / total : 100, { doneBytes: done, totalBytes: total }),
          },
        );
      } else {
        // At most the source's data differs (where the source reads zeros, zero clusters are metadata).
        const sourceData = (await dataExtents({ path: topPath, format: sourceChain[0].format, directIo: false }, signal)).reduce((sum, e) => sum + e.length, 0);
        await room(sourceData);
        // The overlay first shows the source (header only), then keeps what differs from the base.
        await qemuImg.rebaseUnsafe(overlayPath, { file: topPath, format: sourceChain[0].format }, { signal });
        await qemuImg.rebaseSafe(overlayPath, { file: repo.backingReference(base.volumeId, baseVolume.format), format: baseVolume.format }, {
          directIo: repo.directIo && sourceRepo.directIo,
          signal,
          onProgress: (fraction) => progress.report(100 * fraction, { doneBytes: Math.floor(fraction * image.size), totalBytes: image.size }),
        });
      }
      failpoint('incremental.data-copied');
      await progress.settled();

      // The overlay was made fresh by this attempt and written whole by it (a writer that died
      // left its overlay to be replaced, above), so qemu-img check has no dead writer's leftovers
      // to find (copy-job.ts says what it guards against). Only the content compare rebases the
      // overlay (unsafe, then safe back onto the base): there its backing is checked.
      if (!verdict.trusted && !liveOn) {
        await progress.enter({ current: 2, total: 2 });
        const info = await qemuImg.info(overlayPath, 'qcow2', { signal });
        if (info['backing-filename'] !== repo.backingReference(base.volumeId, baseVolume.format)) {
          throw new DiskflowError('STORAGE_ERROR', `the incremental copy in volume ${volume.volumeId} is not based on its base's volume; it will start over`);
        }
      }
      // The source must not have moved while it was read; otherwise read it again.
      const after = copySourceAfter(await readImage(sourceRepo, current.source.imageId), current.source.imageId, ctx.operationId);
      if (after.contentEpoch !== current.source.contentEpoch || after.volumeId !== source.volumeId) continue;

      const method = verdict.trusted ? 'bitmap' : 'compare';
      if ((await recordCopyOutcome(repo, image.imageId, { changeTracking: tracking, incremental: { baseImageId: base.imageId, method } })) === 'removed') return 'removed';
      failpoint('copy.before-legal');
      await markVolumeLegal(repo, current.volumeId);
      // The base's bitmap has served: changes are now counted in this copy's own.
      if (verdict.trusted && tracking && verdict.bitmap !== tracking.bitmap) {
        await (liveOn ? dropServedBitmap(home, source.imageId, verdict.bitmap) : dropBitmap(topPath, verdict.bitmap));
      }
      // The copy's completion (completePendingWork) records its last stage at 100% in the same write.
      return 'done';
    } finally {
      await repo.deactivate(volume.volumeId).catch(() => undefined);
      // A served chain stays active: its daemon has it open.
      if (!liveOn) for (const v of sourceChain) await sourceRepo.deactivate(v.volumeId).catch(() => undefined);
    }
  }
}

/** The change tracking record of a live copy: its bitmap is added on the served top as the backup starts. */
function liveTracking(source: ImageRecord, topFormat: VolumeFormat, repoUuid: string, target: Repository, copyImageId: string): ChangeTracking | null {
  if (topFormat !== 'qcow2') return null;
  return { repoUuid, imageId: source.imageId, volumeId: source.volumeId, bitmap: bitmapName(target.header.uuid, copyImageId), contentEpoch: source.contentEpoch, chainEpoch: source.chainEpoch };
}
