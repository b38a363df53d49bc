/**
 * Running a copy job (records.ts, CopyJob): fills one volume with an image's content, range by
 * range, persisting the resume point after each range, so a copy stopped anywhere (cancelled,
 * paused, host killed) continues where it was. Crash-only rules it keeps:
 *
 * - the target volume is not legal until the last range is written and checked;
 * - the job belongs to one attempt at a time; an older attempt that finds another one in the
 *   record stops before its next range (a zombie from a host thought dead);
 * - the source must be the same content from start to end: its contentEpoch is compared before
 *   and after; if it moved (a VM wrote it), the copy starts over rather than mixing states;
 * - restarting from zero recreates the volume, so nothing of an earlier source state remains.
 */
import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { DiskflowError } from '../../api/errors';
import type { Strategy } from '../../api/values';
import type { Stage } from '../../api/image-status';
import * as qemuImg from '../qemu/qemu-img';
import { copyRange, dataExtents, Endpoint, planRanges } from '../qemu/convert';
import type { ActivityDeps } from '../deps';
import { failpoint } from '../failpoints';
import type { Repository } from '../repository/repository';
import { readChain, readImage, readVolume } from './image-store';
import {
  claimForCopy,
  copySourceAfter,
  forgetVolume,
  JobField,
  markVolumeLegal,
  newVolume,
  recordCopyOutcome,
  recordIllegalVolume,
  releaseCopySource,
  servedOn,
  takeOverCopyJob,
  updateCopyJob,
} from './lifecycle';
import { ProgressReporter } from './progress';
import { startTracking } from './change-tracking';
import { runIncrementalCopy } from './incremental-job';
import { runLiveFullCopy } from './live-copy-job';
import { bandwidthOf, rangeBytesForPace, roomForData } from './copy-limits';
import { measureChain, requireRoom } from '../imports/measure';
import { freshVolumeFill, type ChangeTracking, type CopyJob, type VolumeRecord } from './records';
import type { SourceFacts } from './source-facts';

export type CopyOutcome = 'done' | 'removed';

/** A copy has two stages: the data, then a check of the volume made. */
export const COPY_STAGES = 2;

/** A new copy job of `source`, into a fresh volume: raw and preallocated for performance, else qcow2. */
export function newCopyJob(
  source: Pick<SourceFacts, 'repoUuid' | 'imageId' | 'contentEpoch'>,
  strategy: Strategy,
  volumeId = randomUUID(),
  base: CopyJob['base'] = null,
  bandwidth: number | null = null,
  requiredBytes: number | null = null,
): CopyJob {
  // An overlay on a base is qcow2 whatever the strategy: only qcow2 has a backing file.
  const performance = strategy === 'performance' && !base;
  return {
    source: { repoUuid: source.repoUuid, imageId: source.imageId, contentEpoch: source.contentEpoch },
    ...freshVolumeFill(volumeId, performance, bandwidth),
    base,
    requiredBytes,
  };
}

const MiB = 2 ** 20;
/** How many times a copy starts over because its source changed before it gives up. */
const MAX_RESTARTS = 3;
/** Ranges smaller than this say more about process start-up than about the storage's pace. */
const PACE_SAMPLE_BYTES = 256 * MiB;

/**
 * The pace (bytes/s) this host last measured between two repositories. A copy starts with a
 * range sized from it instead of the cautious first chunk: every range boundary costs a flush
 * and a new qemu-img (a third of a second on a 4 GiB copy here, bench/copy), and a host that
 * has copied before knows how much fits in the range duration.
 */
const paceBetween = new Map<string, number>();

/** What the copy's new volume needs (qemu-img measure of the source chain, as the copy's call measured it). */
async function roomForCopy(sourceRepo: Repository, volumeId: string, job: CopyJob, size: number, signal: AbortSignal): Promise<number> {
  return (await measureChain(sourceRepo, volumeId, job.format, size, job.preallocate, signal)).requiredBytes;
}

/**
 * Runs both at once and waits for both to end (neither is left running behind a failure, so
 * the caller's cleanup sees what they made); throws the first failure.
 */
async function allSettledOrThrow<A, B>(a: Promise<A>, b: () => Promise<B>): Promise<[A, B]> {
  const [ra, rb] = await Promise.allSettled([a, b()]);
  if (ra.status === 'rejected') throw ra.reason;
  if (rb.status === 'rejected') throw rb.reason;
  return [ra.value, rb.value];
}

/** Activates a volume's chain, base first, and returns the path of its top. */
async function activateChain(repo: Repository, volumes: VolumeRecord[]): Promise<string> {
  let path = '';
  for (const volume of [...volumes].reverse()) path = await repo.activate(volume.volumeId, volume.format);
  return path;
}

/**
 * Runs the copy job in `field` of image `imageId` for `operationId`. A virtual disk it reads is
 * claimed for the copy while it reads it (lifecycle.claimForCopy: no VM is let at it, and one
 * prepared for a VM is refused with IMAGE_IN_USE), and released when the step ends.
 */
export async function runCopyJob(deps: ActivityDeps, repo: Repository, imageId: string, field: JobField, operationId: string): Promise<CopyOutcome> {
  const { connections, hostId } = deps;
  const attempt = randomUUID();
  const job = await takeOverCopyJob(repo, imageId, field, attempt, hostId);
  if (job === 'removed') return 'removed';
  const sourceRepo = connections.byUuid(job.source.repoUuid);
  try {
    return await copyAsAttempt(deps, repo, sourceRepo, imageId, field, job, attempt, operationId);
  } finally {
    await releaseCopySource(sourceRepo, job.source.imageId, operationId);
  }
}

async function copyAsAttempt(
  deps: ActivityDeps,
  repo: Repository,
  sourceRepo: Repository,
  imageId: string,
  field: JobField,
  job: CopyJob,
  attempt: string,
  operationId: string,
): Promise<CopyOutcome> {
  const { hostId, operations, settings } = deps;
  const signal = Context.current().cancellationSignal;
  const updateJob = (change: (job: CopyJob) => CopyJob, stage?: { stage: Stage; percentComplete: number }) =>
    updateCopyJob(repo, imageId, field, attempt, change, stage && { ...stage, hostId });
  const readSource = () => claimForCopy(sourceRepo, job.source.imageId, { operationId, hostId }, operations);
  let current = job;
  const image = (await readImage(repo, imageId))!;
  const progress = new ProgressReporter(repo, imageId, hostId, settings.progressIntervalMs, { current: 1, total: COPY_STAGES });
  if (current.base) {
    return runIncrementalCopy({ deps, repo, sourceRepo, image, job: current, progress, signal, updateJob, readSource, operationId });
  }
  // A copy made by a copyImage counts its source's changes from here (incremental copies).
  let tracking: ChangeTracking | null = null;

  for (let round = 0; ; round++) {
    const source = await readSource();
    const liveOn = source.kind === 'virtual-disk' ? servedOn(source) : null;
    if (liveOn) {
      // A VM writes it through diskflow's block layer: the daemon serving it copies it, live.
      if (liveOn !== hostId) throw new DiskflowError('IMAGE_IN_USE', `image ${source.imageId} is served to its VM on ${liveOn}: it is copied live there (run the copy's fix with hostId ${liveOn})`);
      return runLiveFullCopy({ deps, repo, sourceRepo, image, source, job: current, progress, operationId, updateJob });
    }
    if (source.contentEpoch !== current.source.contentEpoch || round > 0) {
      if (round > MAX_RESTARTS) {
        throw new DiskflowError('IMAGE_IN_USE', `image ${source.imageId} kept changing while it was copied (a VM is writing it?); copy it while it is not in use`);
      }
      // What the call measured was the source as it was: measured anew (requiredBytes null).
      const restarted = await updateJob((j) => ({ ...j, source: { ...j.source, contentEpoch: source.contentEpoch }, copiedUpTo: 0, doneBytes: 0, totalBytes: null, requiredBytes: null }));
      if (restarted === 'removed') return 'removed';
      current = restarted;
    }

    // The target volume: made fresh when the copy starts from zero, reused when it resumes.
    const volume = newVolume({ volumeId: current.volumeId, format: current.format, size: image.size, createdBy: image.createdBy });
    // Whether this attempt made the target volume: then every byte of it is written by this
    // attempt's qemu-img runs, each of which exited 0 (flushed), or the step failed.
    let madeHere = false;
    const makeTarget = async (): Promise<'removed' | null> => {
      const stored = (await repo.listVolumes()).some((v) => v.volumeId === current.volumeId);
      if (current.copiedUpTo > 0 && stored && (await readVolume(repo, current.volumeId))) return null;
      madeHere = true;
      // Nothing is made that measurement says cannot fit (a mend of a copy that ran out of room waits for room).
      // The call measured the source already (a restart after the source changed cleared it).
      if (!stored) await requireRoom(repo, current.requiredBytes ?? (await roomForCopy(sourceRepo, source.volumeId, current, image.size, signal)), `the copy into image ${imageId}`);
      await recordIllegalVolume(repo, volume);
      await repo.createVolume({ volumeId: volume.volumeId, format: volume.format, size: volume.size, parent: null, preallocate: current.preallocate }, signal);
      if (current.copiedUpTo === 0) return null;
      const reset = await updateJob((j) => ({ ...j, copiedUpTo: 0, doneBytes: 0 }));
      if (reset === 'removed') return 'removed';
      current = reset;
      return null;
    };

    const sourceChain = await readChain(sourceRepo, source.volumeId);
    try {
      const from: Endpoint = { path: await activateChain(sourceRepo, sourceChain), format: sourceChain[0].format, directIo: sourceRepo.directIo };
      const targetIsZero = repo.readsAsZero(volume.format);
      // The source's side (its change tracking, then its map) and the target's volume touch
      // different objects: they are made at once, which is most of a small copy's fixed cost.
      const [target, extents] = await allSettledOrThrow(makeTarget(), async () => {
        tracking = field === 'pending' ? await startTracking(from.path, sourceChain[0], source, current.source.repoUuid, repo, imageId, { signal }) : null;
        return targetIsZero ? await dataExtents(from, signal) : [{ start: 0, length: image.size }];
      });
      if (target === 'removed') return 'removed';
      const to: Endpoint = { path: await repo.activate(volume.volumeId, volume.format), format: volume.format, directIo: repo.directIo };
      const totalBytes = planRanges(extents, image.size, Number.MAX_SAFE_INTEGER).reduce((sum, r) => sum + r.dataBytes, 0);
      // The job's size and the stage it enters, in one write.
      const copying = { stage: { current: 1, total: 2 }, percentComplete: totalBytes ? Math.floor((100 * current.doneBytes) / totalBytes) : 0 };
      const planned = await updateJob((j) => ({ ...j, totalBytes }), copying);
      if (planned === 'removed') return 'removed';
      current = planned;
      progress.entered(copying.stage, copying.percentComplete);
      const paceKey = `${current.source.repoUuid}>${repo.header.uuid}`;
      const sizedByPace = (perSecond: number) => rangeBytesForPace(perSecond, settings);
      let chunk = sizedByPace(paceBetween.get(paceKey) ?? 0);
      for (;;) {
        // The next range starts where the persisted resume point is, and is sized to the measured pace.
        const from_ = current.copiedUpTo;
        const rest = extents.filter((e) => e.start + e.length > from_).map((e) => ({ start: Math.max(e.start, from_), length: e.start + e.length - Math.max(e.start, from_) }));
        const [range] = planRanges(rest, image.size, chunk);
        if (!range) break;
        const before = current.doneBytes;
        await repo.ensureCapacity(volume.volumeId, volume.format === 'raw' ? image.size : roomForData(before + range.dataBytes, image.size));
        const started = Date.now();
        try {
          await copyRange(from, to, range, {
            targetIsZero,
            rateLimit: bandwidthOf(current, settings),
            signal,
            onProgress: (fraction) => {
              const done = before + fraction * range.dataBytes;
              progress.report(totalBytes ? (100 * done) / totalBytes : 100, { doneBytes: Math.floor(done), totalBytes });
            },
          });
        } catch (error) {
          // A volume the storage cannot hold is given back at once; the copy starts from zero once there is room.
          // The space first (a record write may need some): a job left ahead of a missing volume starts over anyway.
          if (error instanceof DiskflowError && error.code === 'NO_SPACE') {
            await repo.deactivate(volume.volumeId).catch(() => undefined);
            await repo.removeVolume(volume.volumeId).catch(() => undefined);
            await forgetVolume(repo, volume.volumeId).catch(() => undefined);
            await updateJob((j) => ({ ...j, copiedUpTo: 0, doneBytes: 0 })).catch(() => undefined);
          }
          throw error;
        }
        const perSecond = range.dataBytes / Math.max(0.05, (Date.now() - started) / 1000);
        if (range.dataBytes >= PACE_SAMPLE_BYTES) paceBetween.set(paceKey, perSecond);
        chunk = sizedByPace(perSecond);
        const advanced = await updateJob((j) => ({ ...j, copiedUpTo: range.end, doneBytes: j.doneBytes + range.dataBytes }));
        if (advanced === 'removed') return 'removed';
        current = advanced;
        failpoint('copy.range-done');
      }
      await progress.settled();

      // Stage 2: the volume made is sound, and the source did not move while it was read.
      // qemu-img check guards against a qcow2 left inconsistent by a writer that died mid-way
      // (a killed qemu-img, a host that lost power before a flush) when a later attempt resumed
      // into it: leaked or doubly referenced clusters, a refcount table out of step. A volume
      // made and written whole by this attempt has no such writer behind it, and the check
      // cannot see what storage corrupts under qemu (no data checksums): it runs only where
      // the copy resumed into a volume an earlier attempt wrote.
      if (volume.format === 'qcow2' && !madeHere) {
        await progress.enter({ current: 2, total: 2 });
        const check = await qemuImg.check(to.path, 'qcow2', { signal });
        if (check['check-errors'] || check.corruptions) {
          await updateJob((j) => ({ ...j, copiedUpTo: 0, doneBytes: 0 }));
          throw new DiskflowError('STORAGE_ERROR', `the copy in volume ${volume.volumeId} failed qemu-img check; it will start over`);
        }
      }
    } finally {
      await repo.deactivate(volume.volumeId).catch(() => undefined);
      for (const v of sourceChain) await sourceRepo.deactivate(v.volumeId).catch(() => undefined);
    }
    // The source must be as it was when the copy read it: a copy is of one instant.
    const after = copySourceAfter(await readImage(sourceRepo, current.source.imageId), current.source.imageId, operationId);
    if (after.contentEpoch === current.source.contentEpoch) break;
  }

  if (tracking && (await recordCopyOutcome(repo, imageId, { changeTracking: tracking })) === 'removed') return 'removed';
  failpoint('copy.before-legal');
  await markVolumeLegal(repo, current.volumeId);
  // A pending copy's completion (completePendingWork) records its last stage at 100% in the same write.
  if (field !== 'pending') await progress.enter({ current: 2, total: 2 }, 100);
  return 'done';
}
