/** Copy jobs (inside `pending` or `optimizing`), their progress and what they learned. */
import { DiskflowError } from '../../../api/errors';
import type { Stage } from '../../../api/image-status';
import type { Repository } from '../../repository/repository';
import { updateImage } from '../image-store';
import type { ChangeTracking, CopyJob, ImageRecord, IncrementalMethod } from '../records';

export type JobField = 'pending' | 'optimizing';

export function jobOf(image: ImageRecord, field: JobField): CopyJob | null {
  if (field === 'optimizing') return image.optimizing;
  return image.pending?.step === 'copy' ? image.pending.job : null;
}

function withJob(image: ImageRecord, field: JobField, job: CopyJob): ImageRecord {
  if (field === 'optimizing') return { ...image, optimizing: job };
  return { ...image, pending: { step: 'copy', job } };
}

/** A copy attempt takes the job over (an older attempt that finds another one here stops). */
export async function takeOverCopyJob(repo: Repository, imageId: string, field: JobField, attempt: string, hostId: string): Promise<CopyJob | 'removed'> {
  let job: CopyJob | 'removed' = 'removed';
  await updateImage(repo, imageId, (img) => {
    const current = jobOf(img, field);
    if (img.removed || !current) return undefined;
    job = { ...current, attempt };
    return withJob({ ...img, hostId, lastError: null }, field, job);
  });
  return job;
}

/**
 * Applies `change` to the job if it is still this attempt's; stops the attempt otherwise. With
 * `progress`, the same write records the stage the step enters (ProgressReporter.entered).
 */
export async function updateCopyJob(
  repo: Repository,
  imageId: string,
  field: JobField,
  attempt: string,
  change: (job: CopyJob) => CopyJob,
  progress?: { stage: Stage; percentComplete: number; hostId: string },
): Promise<CopyJob | 'removed'> {
  let result: CopyJob | 'removed' = 'removed';
  await updateImage(repo, imageId, (img) => {
    const job = jobOf(img, field);
    if (img.removed || !job) return undefined;
    if (job.attempt !== attempt) throw new DiskflowError('STORAGE_ERROR', `copy into ${imageId} was taken over by another attempt`, false);
    result = change(job);
    return withJob(progress ? { ...img, ...progress } : img, field, result);
  });
  return result;
}

/** What a finished copy learned: where its source's later changes are counted, and how it was made. */
export async function recordCopyOutcome(
  repo: Repository,
  imageId: string,
  outcome: { changeTracking: ChangeTracking | null; incremental?: { baseImageId: string; method: IncrementalMethod } },
): Promise<'recorded' | 'removed'> {
  const image = await updateImage(repo, imageId, (img) => (img.removed ? undefined : { ...img, ...outcome }));
  return image.removed ? 'removed' : 'recorded';
}

/** The last persisted stage and percent of an image's work (what getImageStatus shows). */
export async function recordProgress(repo: Repository, imageId: string, stage: Stage, percentComplete: number, hostId: string): Promise<void> {
  await updateImage(repo, imageId, (img) => (img.removed ? undefined : { ...img, stage, percentComplete, hostId }));
}
