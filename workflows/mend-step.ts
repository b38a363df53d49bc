/** The mend step every operation that makes an image runs, routed to the hosts that may run it. */
import { workflowInfo } from '@temporalio/workflow';
import type { MendOutcome } from '../activities/images/mend';
import type { FixRoute } from './routing';

/**
 * Mend: brings a broken image to a usable state from what its record says is left to do, on
 * the route given (routing.ts, fixRoute): the step for control.fix.
 */
export const mendStep =
  (imageId: string) =>
  ({ repo, steps }: FixRoute): Promise<MendOutcome> =>
    steps.mendImage({ repoUuid: repo.repoUuid, imageId, operationId: workflowInfo().workflowId });
