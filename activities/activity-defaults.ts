/**
 * What every activity gets, registered once on every worker so no activity does it by hand:
 *
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

export function toCodedError(error: unknown): unknown {
  if (error instanceof DiskflowError) return toApplicationFailure(error);
  const errno = (error as NodeJS.ErrnoException | undefined)?.code;
  if (errno === 'ENOSPC' || errno === 'EDQUOT') return toApplicationFailure(new DiskflowError('NO_SPACE', (error as Error).message));
  if (typeof errno === 'string' && errno.startsWith('E')) {
    return toApplicationFailure(new DiskflowError('STORAGE_ERROR', (error as Error).message));
  }
  return error;
}

const HEARTBEAT_EVERY_MS = 2000;

export class ActivityDefaultsInterceptor implements ActivityInboundCallsInterceptor {
  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    const context = Context.current();
    const timer = setInterval(() => context.heartbeat(), HEARTBEAT_EVERY_MS);
    try {
      return await next(input);
    } catch (error) {
      if (error instanceof ApplicationFailure) throw error;
      throw toCodedError(error);
    } finally {
      clearInterval(timer);
    }
  }
}
