/**
 * What every activity gets, registered once on every worker so no activity does it by hand:
 *
 * - its input checked against its schema (activity-inputs.ts) before it runs: anything else is
 *   INVALID_ARGUMENT, and nothing is touched;
 * - a heartbeat every two seconds while it runs, so a host that dies mid-step is noticed by its
 *   heartbeat timeout (10 s), whatever the step, and cancellation reaches it promptly;
 * - failures that carry an API error code: DiskflowError keeps its code, a full file system
 *   becomes NO_SPACE, any other I/O error STORAGE_ERROR (retried).
 */
import { Context } from '@temporalio/activity';
import type { ActivityExecuteInput, ActivityInboundCallsInterceptor, Next } from '@temporalio/worker';
import { ApplicationFailure } from '@temporalio/common';
import { DiskflowError } from '../api/errors';
import { toApplicationFailure } from '../api/failures';
import { parseInput } from '../api/validation';
import { ACTIVITY_INPUTS } from './activity-inputs';

export function toCodedError(error: unknown): unknown {
  if (error instanceof DiskflowError) return toApplicationFailure(error);
  const errno = (error as NodeJS.ErrnoException | undefined)?.code;
  if (errno === 'ENOSPC' || errno === 'EDQUOT') return toApplicationFailure(new DiskflowError('NO_SPACE', (error as Error).message));
  if (typeof errno === 'string' && errno.startsWith('E')) {
    return toApplicationFailure(new DiskflowError('STORAGE_ERROR', (error as Error).message));
  }
  return error;
}

/** Throws INVALID_ARGUMENT unless `args` is the one input its activity takes, as its schema says. */
export function checkActivityInput(activityType: string, args: readonly unknown[]): void {
  const schema = (ACTIVITY_INPUTS as Record<string, (typeof ACTIVITY_INPUTS)[keyof typeof ACTIVITY_INPUTS]>)[activityType];
  if (!Object.hasOwn(ACTIVITY_INPUTS, activityType) || !schema) throw new DiskflowError('INVALID_ARGUMENT', `${activityType} is not a diskflow step`);
  if (args.length !== 1) throw new DiskflowError('INVALID_ARGUMENT', `${activityType} takes one input, not ${args.length}`);
  parseInput(schema, args[0], `${activityType} input`);
}

const HEARTBEAT_EVERY_MS = 2000;

export class ActivityDefaultsInterceptor implements ActivityInboundCallsInterceptor {
  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    const context = Context.current();
    // Local activities (checks a workflow runs on its own host) are short and have no heartbeat.
    const timer = context.info.isLocal ? undefined : setInterval(() => context.heartbeat(), HEARTBEAT_EVERY_MS);
    try {
      checkActivityInput(context.info.activityType, input.args);
      return await next(input);
    } catch (error) {
      if (error instanceof ApplicationFailure) throw error;
      throw toCodedError(error);
    } finally {
      clearInterval(timer);
    }
  }
}
