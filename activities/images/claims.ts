/**
 * One operation at a time per image. An operation claims an image in its record; another one
 * finding a claim is refused with IMAGE_BUSY while the claimant's workflow still runs. A claim
 * left by a workflow that is gone (terminated, or a repository moved to a fresh cluster) is
 * stale and is taken over, so nothing is ever stuck behind a dead operation.
 */
import { DiskflowError } from '../../api/errors';
import type { ImageRecord } from './records';

export interface OperationRegistry {
  /** Whether the operation (a workflow id) is still running. */
  isRunning(operationId: string): Promise<boolean>;
}

export async function assertNotBusy(image: ImageRecord, operationId: string, operations: OperationRegistry): Promise<void> {
  const claim = image.operation;
  if (!claim || claim.id === operationId) return;
  if (await operations.isRunning(claim.id)) {
    throw new DiskflowError('IMAGE_BUSY', `image ${image.imageId} is busy: ${claim.type} (${claim.id}) has been working on it since ${claim.startedAt}`);
  }
}

export function claimFor(operationId: string, type: string): ImageRecord['operation'] {
  return { id: operationId, type, startedAt: new Date().toISOString() };
}
