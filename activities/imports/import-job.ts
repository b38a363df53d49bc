/**
 * Running an import job (records.ts, ImportJob): fills the image's one volume from a file or an
 * http(s) URL, range by range as a copy job does (convert.ts), persisting the resume point after
 * each range, so an import stopped anywhere (paused, cancelled, worker killed) goes on from
 * there. Stages: the source's checksum when one was asked (verified before the image is
 * usable; a mismatch fails the mend without retry and leaves the image broken saying so), the
 * data, then `qemu-img check` of the volume. The source must keep the identity it was probed
 * with (size, mtime/ETag) from start to end: a changed source starts the import over.
 */
import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { DiskflowError } from '../../api/errors';
import type { ActivityDeps } from '../deps';
import { failpoint } from '../failpoints';
import { copyRange, dataExtents, planRanges } from '../qemu/convert';
import * as qemuImg from '../qemu/qemu-img';
import type { Repository } from '../repository/repository';
import { bandwidthOf, rangeBytesForPace, roomForData } from '../images/copy-limits';
import { readImage, readVolume } from '../images/image-store';
import { forgetVolume, markVolumeLegal, newVolume, recordIllegalVolume, takeOverImportJob, updateImportJob } from '../images/lifecycle';
import { ProgressReporter } from '../images/progress';
import type { ImportJob } from '../images/records';
import { requireRoom } from './measure';
import { measureSpec, probeSource, sourceBlockdev, sourceIdentity, sourceSha256 } from './source';

export const importStages = (job: Pick<ImportJob, 'sha256'>) => (job.sha256 ? 3 : 2);

export async function runImportJob(deps: ActivityDeps, repo: Repository, imageId: string): Promise<'done' | 'removed'> {
  const { hostId, settings } = deps;
  const attempt = randomUUID();
  const taken = await takeOverImportJob(repo, imageId, attempt, hostId);
  if (taken === 'removed') return 'removed';
  let job: ImportJob = taken;
  const location = job.source.location;
  if (job.onHost !== hostId) {
    throw new DiskflowError('STORAGE_ERROR', `the import into image ${imageId} reads ${location} on host ${job.onHost}: its mend runs there`, false);
  }
  const signal = Context.current().cancellationSignal;
  const image = (await readImage(repo, imageId))!;
  const total = importStages(job);
  const progress = new ProgressReporter(repo, imageId, hostId, settings.progressIntervalMs, { current: 1, total });
  const update = async (change: (j: ImportJob) => ImportJob) => {
    const next = await updateImportJob(repo, imageId, attempt, change);
    if (next === 'removed') throw new Removed();
    job = next;
  };

  try {
    // The source must be what was probed; a changed one is probed again and imported from zero.
    let { identity, bytes } = await sourceIdentity(location);
    if (identity !== job.identity) {
      const probed = await probeSource(location, job.source.format, signal);
      if (probed.virtualSize !== image.size) {
        throw new DiskflowError('INVALID_ARGUMENT', `source ${location} changed since the import began: its virtual size is now ${probed.virtualSize}, not ${image.size}; remove the image and import again`, false);
      }
      ({ identity, bytes } = probed);
      await update((j) => ({ ...j, identity: probed.identity, verified: false, copiedUpTo: 0, doneBytes: 0, totalBytes: null }));
    }

    if (job.sha256 && !job.verified) {
      await progress.enter({ current: 1, total }, 0);
      const digest = await sourceSha256(location, signal, (done) => progress.report((100 * done) / bytes, { doneBytes: done, totalBytes: bytes }));
      if (digest !== job.sha256) {
        throw new DiskflowError('INVALID_ARGUMENT', `checksum mismatch: source ${location} has SHA-256 ${digest}, not ${job.sha256} as the import asked; the image stays unusable (remove it, or import the right source)`, false);
      }
      await update((j) => ({ ...j, verified: true }));
    }
    const dataStage = { current: total - 1, total };

    const from = { spec: sourceBlockdev(location, job.source.format) };
    const targetIsZero = repo.readsAsZero(job.format);
    const extents = targetIsZero ? await dataExtents(from, signal) : [{ start: 0, length: image.size }];
    const totalBytes = planRanges(extents, image.size, Number.MAX_SAFE_INTEGER).reduce((sum, r) => sum + r.dataBytes, 0);

    // The target volume: made fresh when the import starts from zero, reused when it resumes.
    const volume = newVolume({ volumeId: job.volumeId, format: job.format, size: image.size, createdBy: image.createdBy });
    const stored = (await repo.listVolumes()).some((v) => v.volumeId === job.volumeId);
    if (job.copiedUpTo === 0 || !stored || !(await readVolume(repo, job.volumeId))) {
      // Nothing is made that measurement says cannot fit.
      const room = await measureSpec(from.spec, job.format, image.size, job.preallocate, signal);
      await requireRoom(repo, room.requiredBytes - (stored ? ((await repo.listVolumes()).find((v) => v.volumeId === job.volumeId)?.allocatedBytes ?? 0) : 0), `the import of ${location}`);
      await recordIllegalVolume(repo, volume);
      await repo.createVolume({ volumeId: volume.volumeId, format: volume.format, size: volume.size, parent: null, preallocate: job.preallocate }, signal);
      if (job.copiedUpTo > 0) await update((j) => ({ ...j, copiedUpTo: 0, doneBytes: 0 }));
    }
    if (job.totalBytes !== totalBytes) await update((j) => ({ ...j, totalBytes }));

    const to = { path: await repo.activate(volume.volumeId, volume.format), format: volume.format, directIo: repo.directIo };
    try {
      await progress.enter(dataStage, totalBytes ? (100 * job.doneBytes) / totalBytes : 0);
      let chunk = Math.max(settings.copyChunkBytes, 1);
      for (;;) {
        const start = job.copiedUpTo;
        const rest = extents.filter((e) => e.start + e.length > start).map((e) => ({ start: Math.max(e.start, start), length: e.start + e.length - Math.max(e.start, start) }));
        const [range] = planRanges(rest, image.size, chunk);
        if (!range) break;
        const before = job.doneBytes;
        await repo.ensureCapacity(volume.volumeId, volume.format === 'raw' ? image.size : roomForData(before + range.dataBytes, image.size));
        const started = Date.now();
        try {
          await copyRange(from, to, range, {
            targetIsZero,
            rateLimit: bandwidthOf(job, settings),
            signal,
            onProgress: (fraction) => {
              const done = before + fraction * range.dataBytes;
              progress.report(totalBytes ? (100 * done) / totalBytes : 100, { doneBytes: Math.floor(done), totalBytes });
            },
          });
        } catch (error) {
          if (error instanceof DiskflowError && error.code === 'NO_SPACE') await freePartial(repo, volume.volumeId, update);
          throw error;
        }
        const perSecond = range.dataBytes / Math.max(0.05, (Date.now() - started) / 1000);
        chunk = rangeBytesForPace(perSecond, settings);
        await update((j) => ({ ...j, copiedUpTo: range.end, doneBytes: j.doneBytes + range.dataBytes }));
        failpoint('import.range-done');
      }
      await progress.settled();

      await progress.enter({ current: total, total });
      if (volume.format === 'qcow2') {
        const check = await qemuImg.check(to.path, 'qcow2', { signal });
        if (check['check-errors'] || check.corruptions) {
          await update((j) => ({ ...j, copiedUpTo: 0, doneBytes: 0 }));
          throw new DiskflowError('STORAGE_ERROR', `the import in volume ${volume.volumeId} failed qemu-img check; it will start over`);
        }
      }
    } finally {
      await repo.deactivate(volume.volumeId).catch(() => undefined);
    }
    // The source must not have changed while it was read: else the import starts over.
    if ((await sourceIdentity(location)).identity !== job.identity) {
      await update((j) => ({ ...j, copiedUpTo: 0, doneBytes: 0, verified: false }));
      throw new DiskflowError('STORAGE_ERROR', `source ${location} changed while it was imported; the import starts over`);
    }
    failpoint('import.before-legal');
    await markVolumeLegal(repo, job.volumeId);
    await progress.enter({ current: total, total }, 100);
    return 'done';
  } catch (error) {
    if (error instanceof Removed) return 'removed';
    throw error;
  }
}

class Removed extends Error {}

/** A volume the storage could not hold is given back at once: the job starts from zero when there is room. */
async function freePartial(repo: Repository, volumeId: string, update: (change: (j: ImportJob) => ImportJob) => Promise<void>): Promise<void> {
  // The space first (a record write may need some): a job left ahead of a missing volume starts over anyway.
  await repo.deactivate(volumeId).catch(() => undefined);
  await repo.removeVolume(volumeId).catch(() => undefined);
  await forgetVolume(repo, volumeId).catch(() => undefined);
  await update((j) => ({ ...j, copiedUpTo: 0, doneBytes: 0 })).catch(() => undefined);
}
