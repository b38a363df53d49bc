/** The mend step every operation that makes an image runs, routed to the hosts that may run it. */
import { workflowInfo } from '@temporalio/workflow';
import type { RepositoryRef } from '../activities/host/repositories';
import type { MendOutcome } from '../activities/images/mend';
import { forFixes } from './routing';

/**
 * Mend: brings a broken image to a usable state from what its record says is left to do. A
 * copy between two repositories runs on `taskQueue`, a host that has both connected.
 */
export function mendImage(repo: RepositoryRef, imageId: string, taskQueue?: string): Promise<MendOutcome> {
  return forFixes(repo, taskQueue).mendImage({ repoUuid: repo.repoUuid, imageId, operationId: workflowInfo().workflowId });
}
