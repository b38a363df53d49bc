/**
 * Running a fix step on an image. When the step stops for a reason other than a crash (an
 * operator cancelled it, it failed for good), the reason is written to the image's record as
 * lastError and the image keeps its last persisted state, ready for a later fix.
 */
import { CancellationScope, workflowInfo } from '@temporalio/workflow';
import type { RepositoryRef } from '../activities/host/repositories';
import { describeFailure, isCancellation } from '../api/failures';
import { codedFailure } from './failures';
import { forFixes, onObjectManager } from './routing';

export async function recordingStops<T>(repo: RepositoryRef, imageId: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    const reason = isCancellation(error) ? 'cancelled by request; a mend fix resumes it' : describeFailure(error);
    await CancellationScope.nonCancellable(() =>
      onObjectManager(repo).recordStoppedWork({ repoUuid: repo.repoUuid, imageId, operationId: workflowInfo().workflowId, reason }),
    );
    throw codedFailure(error);
  }
}

/** Mend: brings a broken image to a usable state from what its record says is left to do. */
export function mendImage(repo: RepositoryRef, imageId: string) {
  const operationId = workflowInfo().workflowId;
  return recordingStops(repo, imageId, () => forFixes(repo).mendImage({ repoUuid: repo.repoUuid, imageId, operationId }));
}
