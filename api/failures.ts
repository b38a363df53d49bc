/**
 * The one place where coded Temporal failures are built and read back. Activities throw
 * DiskflowError; an activity interceptor turns it into an ApplicationFailure whose `type` is the
 * code (toApplicationFailure); workflows fail with a coded failure Temporal does not retry
 * (finalFailure, through workflows/failures.ts), and the client turns either back into a
 * DiskflowError (toDiskflowError). Engines in other languages read the same code from the
 * failure type.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancelledFailure,
  TemporalFailure,
  TimeoutFailure,
} from '@temporalio/common';
import { DiskflowError, ErrorCode, isErrorCode } from './errors';

export function toApplicationFailure(error: DiskflowError): ApplicationFailure {
  return ApplicationFailure.create({
    type: error.code,
    message: error.message,
    nonRetryable: !error.retryable,
  });
}

/** A coded failure Temporal does not retry: how a workflow, or a step that must not be retried, fails. */
export function finalFailure(code: ErrorCode, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: code, message, nonRetryable: true });
}

/** The innermost ApplicationFailure that carries a diskflow code, if any. */
export function findCodedFailure(error: unknown): ApplicationFailure | undefined {
  let current: unknown = error;
  for (let depth = 0; current && depth < 10; depth++) {
    if (current instanceof ApplicationFailure && isErrorCode(current.type)) return current;
    current = current instanceof Error ? (current as { cause?: unknown }).cause : undefined;
  }
  return undefined;
}

/** The code a failure carries, or undefined when it carries none (a bug, a crash, a timeout). */
export function codeOf(error: unknown): ErrorCode | undefined {
  if (error instanceof DiskflowError) return error.code;
  return findCodedFailure(error)?.type as ErrorCode | undefined;
}

export function isCancellation(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; current && depth < 10; depth++) {
    if (current instanceof CancelledFailure) return true;
    current = current instanceof Error ? (current as { cause?: unknown }).cause : undefined;
  }
  return false;
}

/** Converts anything thrown by Temporal into a DiskflowError with the best code available. */
export function toDiskflowError(error: unknown): DiskflowError {
  if (error instanceof DiskflowError) return error;
  const coded = findCodedFailure(error);
  if (coded) return new DiskflowError(coded.type as ErrorCode, coded.message);
  return new DiskflowError('STORAGE_ERROR', describeFailure(error));
}

/** A readable one-line account of an uncoded failure chain, innermost cause last. */
export function describeFailure(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current && depth < 10; depth++) {
    if (current instanceof TimeoutFailure) parts.push(`timed out (${current.timeoutType})`);
    else if (current instanceof ActivityFailure) parts.push(`step ${current.activityType} failed`);
    else if (current instanceof TemporalFailure || current instanceof Error) parts.push(current.message);
    else parts.push(String(current));
    current = current instanceof Error ? (current as { cause?: unknown }).cause : undefined;
  }
  return [...new Set(parts.filter(Boolean))].join(': ') || 'unknown failure';
}
