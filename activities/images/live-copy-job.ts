/**
 * A full copy of a served disk (its VM writing), on the host serving it: the copy's volume is
 * filled by `blockdev-backup` in the disk's daemon (activities/serving/live-copy.ts), which keeps
 * the instant the job starts; then it is checked and made legal, and the copy records the
 * change tracking bitmap added at that same instant. It has no resume point of its own: a step
 * that comes back waits for a backup still running in the daemon, or starts over.
 */
import { DiskflowError } from '../../api/errors';
import type { ActivityDeps } from '../deps';
import { failpoint } from '../failpoints';
import * as qemuImg from '../qemu/qemu-img';
import { dataExtents } from '../qemu/convert';
import type { Repository } from '../repository/repository';
import { liveBackup, liveBackupUnderway } from '../serving/live-copy';
import { bitmapName } from './change-tracking';
import { bandwidthOf, roomForData } from './copy-limits';
import { readChain, readImage } from './image-store';
import { copySourceAfter, markVolumeLegal, newVolume, recordCopyOutcome, recordIllegalVolume } from './lifecycle';
import type { ProgressReporter } from './progress';
import type { CopyJob, ImageRecord } from './records';

export interface LiveCopyContext {
  deps: ActivityDeps;
  repo: Repository;
  sourceRepo: Repository;
  image: ImageRecord;
  source: ImageRecord;
  job: CopyJob;
  progress: ProgressReporter;
  operationId: string;
  updateJob: (change: (job: CopyJob) => CopyJob) => Promise<CopyJob | 'removed'>;
}

export async function runLiveFullCopy(ctx: LiveCopyContext): Promise<'done' | 'removed'> {
  const { deps, repo, sourceRepo, image, source, progress } = ctx;
  const home = deps.connections.host.home;
  let job = ctx.job;
  if (!(await liveBackupUnderway(home, source.imageId, job.volumeId))) {
    const restarted = await ctx.updateJob((j) => ({ ...j, source: { ...j.source, contentEpoch: source.contentEpoch }, copiedUpTo: 0, doneBytes: 0, totalBytes: null }));
    if (restarted === 'removed') return 'removed';
    job = restarted;
    await recordIllegalVolume(repo, newVolume({ volumeId: job.volumeId, format: job.format, size: image.size, createdBy: image.createdBy }));
    await repo.createVolume({ volumeId: job.volumeId, format: job.format, size: image.size, parent: null, preallocate: job.preallocate });
  }
  const chain = await readChain(sourceRepo, source.volumeId);
  const topPath = await sourceRepo.activate(chain[0].volumeId, chain[0].format);
  const data = (await dataExtents({ path: topPath, format: chain[0].format, directIo: false })).reduce((sum, e) => sum + e.length, 0);
  await repo.ensureCapacity(job.volumeId, job.format === 'raw' ? image.size : roomForData(data, image.size));
  const path = await repo.activate(job.volumeId, job.format);
  const bitmap = chain[0].format === 'qcow2' ? bitmapName(repo.header.uuid, image.imageId) : null;
  try {
    await progress.enter({ current: 1, total: 2 }, 0);
    await liveBackup({
      home,
      imageId: source.imageId,
      target: { volumeId: job.volumeId, format: job.format, path, directIo: repo.directIo },
      sync: { mode: 'full' },
      newBitmap: bitmap,
      speed: bandwidthOf(job, deps.settings),
      onProgress: (done, total) => progress.report(total ? (100 * done) / total : 0, { doneBytes: done, totalBytes: total }),
    });
    failpoint('live.copy-done');
    await progress.settled();
    await progress.enter({ current: 2, total: 2 });
    if (job.format === 'qcow2') {
      const check = await qemuImg.check(path, 'qcow2');
      if (check['check-errors'] || check.corruptions) throw new DiskflowError('STORAGE_ERROR', `the copy in volume ${job.volumeId} failed qemu-img check; it will start over`);
    }
  } finally {
    await repo.deactivate(job.volumeId).catch(() => undefined);
  }
  // The disk's chain did not change meanwhile (a copy reading it keeps live operations away).
  const after = copySourceAfter(await readImage(sourceRepo, source.imageId), source.imageId, ctx.operationId);
  if (after.contentEpoch !== job.source.contentEpoch || after.volumeId !== source.volumeId) {
    throw new DiskflowError('STORAGE_ERROR', `image ${source.imageId} changed while it was copied live; the copy starts over`);
  }
  const tracking = bitmap
    ? { repoUuid: sourceRepo.header.uuid, imageId: source.imageId, volumeId: source.volumeId, bitmap, contentEpoch: source.contentEpoch, chainEpoch: source.chainEpoch }
    : null;
  if ((await recordCopyOutcome(repo, image.imageId, { changeTracking: tracking })) === 'removed') return 'removed';
  failpoint('copy.before-legal');
  await markVolumeLegal(repo, job.volumeId);
  await progress.enter({ current: 2, total: 2 }, 100);
  return 'done';
}
