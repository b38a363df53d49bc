/**
 * Turns what activities throw into failures that carry an API error code: DiskflowError keeps
 * its code, a full file system becomes NO_SPACE, any other I/O error STORAGE_ERROR (retried).
 * Registered once on every worker, so no activity converts errors by hand.
 */
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

export class FailureCodeInterceptor implements ActivityInboundCallsInterceptor {
  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    try {
      return await next(input);
    } catch (error) {
      if (error instanceof ApplicationFailure) throw error;
      throw toCodedError(error);
    }
  }
}
