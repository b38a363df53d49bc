/**
 * Boundary validation: every input is parsed with its zod schema before anything is written,
 * and a failure becomes INVALID_ARGUMENT with a message naming the field.
 */
import { z } from 'zod';
import { DiskflowError } from './errors';

export function formatIssues(error: z.ZodError, root: string): string {
  return error.issues
    .map((issue) => {
      const field = [root, ...issue.path.map(String)].filter(Boolean).join('.');
      return `${field}: ${issue.message}`;
    })
    .join('; ');
}

/** Parses `value` with `schema`, or throws INVALID_ARGUMENT naming the offending field. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, root = ''): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new DiskflowError('INVALID_ARGUMENT', formatIssues(result.error, root));
  return result.data;
}
