/** How workflows fail: always with a coded ApplicationFailure, so callers see an API error code. */
import { z } from 'zod';
import { DiskflowError, ErrorCode } from '../api/errors';
import { describeFailure, finalFailure, findCodedFailure, isCancellation, toApplicationFailure } from '../api/failures';
import { parseInput } from '../api/validation';

/**
 * The failure a workflow ends with for `error`: its own code when it carries one, STORAGE_ERROR
 * otherwise. Cancellation stays cancellation. Non-retryable: a workflow is retried by a fix, not
 * by Temporal.
 */
export function codedFailure(error: unknown): unknown {
  if (isCancellation(error)) return error;
  if (error instanceof DiskflowError) return toApplicationFailure(error);
  const coded = findCodedFailure(error);
  return finalFailure((coded?.type as ErrorCode | undefined) ?? 'STORAGE_ERROR', coded?.message ?? describeFailure(error));
}

/** Validates a workflow's input (engines may start workflows directly), failing with INVALID_ARGUMENT. */
export function validate<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  try {
    return parseInput(schema, input, 'input');
  } catch (error) {
    throw codedFailure(error);
  }
}

/** Runs `fn` and rethrows whatever it throws as a coded failure. */
export async function withCodes<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw codedFailure(error);
  }
}
