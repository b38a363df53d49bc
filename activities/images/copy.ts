/** Persisting a copy: the new image's record, broken, holding the copy job its mend runs. */
import { randomUUID } from 'node:crypto';
import { DiskflowError } from '../../api/errors';
import type { ImageKind, Strategy, UserData } from '../../api/values';
import type { Repository } from '../repository/repository';
import { failpoint } from '../failpoints';
import { createImage, readImage } from './image-store';
import { newImageRecord } from './new-image';
import type { CopyJob, ImageRecord } from './records';
import type { SourceFacts } from './source-facts';

export interface PersistCopyInput {
  imageId: string;
  operationId: string;
  operationType: string;
  hostId: string;
  source: SourceFacts;
  kind: ImageKind;
  userData: UserData;
  strategy: Strategy;
  autoFix: boolean;
  /** An incremental copy's base: a snapshot in the target repository, and its volume. */
  base?: { imageId: string; volumeId: string } | null;
}

/** A copy has two stages: the data, then a check of the volume made. */
export const COPY_STAGES = 2;

export function newCopyJob(source: SourceFacts, strategy: Strategy, volumeId = randomUUID(), base: CopyJob['base'] = null): CopyJob {
  // An overlay on a base is qcow2 whatever the strategy: only qcow2 has a backing file.
  const performance = strategy === 'performance' && !base;
  return {
    source: { repoUuid: source.repoUuid, imageId: source.imageId, contentEpoch: source.contentEpoch },
    volumeId,
    format: performance ? 'raw' : 'qcow2',
    preallocate: performance,
    copiedUpTo: 0,
    totalBytes: null,
    doneBytes: 0,
    attempt: null,
    base,
  };
}

/**
 * Writes the copy's record in `repo`. Returns false when the image was already there (a
 * snapshot already copied into this repository: nothing to move), true when this operation
 * made it (now or in an earlier attempt of the same step).
 */
export async function persistCopy(repo: Repository, input: PersistCopyInput): Promise<boolean> {
  const existing = await readImage(repo, input.imageId);
  if (existing) return whatIsThere(existing, input);
  const job = newCopyJob(input.source, input.strategy, randomUUID(), input.base ?? null);
  const record = newImageRecord({
    imageId: input.imageId,
    kind: input.kind,
    size: input.source.size,
    userData: Object.keys(input.userData).length ? input.userData : input.source.userData,
    strategy: input.strategy,
    volumeId: job.volumeId,
    operationId: input.operationId,
    operationType: input.operationType,
    hostId: input.hostId,
    claim: input.autoFix,
    pending: { step: 'copy', job },
    stages: 2,
  });
  if (await createImage(repo, record)) {
    failpoint('persist.image-created');
    return true;
  }
  return whatIsThere((await readImage(repo, input.imageId))!, input);
}

function whatIsThere(existing: ImageRecord, input: PersistCopyInput): boolean {
  if (existing.createdBy === input.operationId) return true;
  if (existing.removed) {
    throw new DiskflowError('IMAGE_BUSY', `a removed copy of image ${input.imageId} is still in the target repository; its clean fix must run first`);
  }
  if (existing.imageId === input.source.imageId && existing.kind === 'snapshot') return false;
  throw new DiskflowError('STORAGE_ERROR', `image id ${input.imageId} is already taken in the target repository`);
}
