/**
 * The error codes of API.md. Every failure a user can see carries one of them, in the client
 * (`DiskflowError.code`) and across Temporal (the ApplicationFailure type, see ./failures.ts).
 */
export const ERROR_CODES = [
  'INVALID_ARGUMENT',
  'REPO_ID_IN_USE',
  'REPO_NOT_CONNECTED',
  'REPO_NOT_EMPTY',
  'IMAGE_NOT_FOUND',
  'NOT_A_SNAPSHOT',
  'NOT_A_VIRTUAL_DISK',
  'IMAGE_BUSY',
  'IMAGE_IN_USE',
  'SRM_REQUIRED',
  'SRM_CONFLICT',
  'FIX_INVALID',
  'NO_SPACE',
  'STORAGE_ERROR',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * Codes that describe the world rather than a passing fault: retrying the same step cannot
 * succeed, so activities fail at once instead of burning their retry policy.
 * STORAGE_ERROR is the only code retried, because I/O errors are often transient.
 */
export const NON_RETRYABLE_CODES: ReadonlySet<ErrorCode> = new Set(
  ERROR_CODES.filter((code) => code !== 'STORAGE_ERROR'),
);

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}

export class DiskflowError extends Error {
  override readonly name = 'DiskflowError';

  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Whether retrying the same step may succeed; by default, only STORAGE_ERROR may. */
    readonly retryable = !NON_RETRYABLE_CODES.has(code),
  ) {
    super(message);
  }
}

export const invalidArgument = (message: string): DiskflowError =>
  new DiskflowError('INVALID_ARGUMENT', message);
