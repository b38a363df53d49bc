/** Import jobs (inside `pending`): taken over by one attempt at a time, advanced by it alone. */
import { DiskflowError } from '../../../api/errors';
import type { Repository } from '../../repository/repository';
import { updateImage } from '../image-store';
import type { ImageRecord, ImportJob } from '../records';

const importOf = (image: ImageRecord): ImportJob | null => (image.pending?.step === 'import' ? image.pending.job : null);

/** An import attempt takes the job over (an older attempt that finds another one here stops). */
export async function takeOverImportJob(repo: Repository, imageId: string, attempt: string, hostId: string): Promise<ImportJob | 'removed'> {
  let job: ImportJob | 'removed' = 'removed';
  await updateImage(repo, imageId, (img) => {
    const current = importOf(img);
    if (img.removed || !current) return undefined;
    job = { ...current, attempt };
    return { ...img, hostId, lastError: null, pending: { step: 'import', job } };
  });
  return job;
}

/** Applies `change` to the job if it is still this attempt's; stops the attempt otherwise. */
export async function updateImportJob(repo: Repository, imageId: string, attempt: string, change: (job: ImportJob) => ImportJob): Promise<ImportJob | 'removed'> {
  let result: ImportJob | 'removed' = 'removed';
  await updateImage(repo, imageId, (img) => {
    const job = importOf(img);
    if (img.removed || !job) return undefined;
    if (job.attempt !== attempt) throw new DiskflowError('STORAGE_ERROR', `import into ${imageId} was taken over by another attempt`, false);
    result = change(job);
    return { ...img, pending: { step: 'import', job: result } };
  });
  return result;
}
