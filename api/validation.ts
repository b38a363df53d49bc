/**
 * Boundary validation: every input is parsed with its zod schema before anything is written,
 * and a failure becomes INVALID_ARGUMENT with a message naming the field.
 */
import { z } from 'zod';
import { DiskflowError } from './errors';
import { RESERVED_KEYS } from './values';

export function formatIssues(error: z.ZodError, root: string): string {
  return error.issues
    .map((issue) => {
      const field = [root, ...issue.path.map(String)].filter(Boolean).join('.');
      return `${field}: ${issue.message}`;
    })
    .join('; ');
}

/** Nesting any input may have (userData's own limit is lower, see api/values.ts). */
export const MAX_INPUT_DEPTH = 48;
/** Values an input may hold, counted as visited: a value with shared parts counts each use (as JSON would). */
export const MAX_INPUT_NODES = 200_000;

/**
 * Why `value` cannot be plain JSON data, or null when it can: a cycle, nesting beyond
 * MAX_INPUT_DEPTH, more than MAX_INPUT_NODES values, a reserved key (`__proto__`,
 * `constructor`, `prototype`), or an object that is not a plain object. Walked without
 * recursion, so that a hostile value cannot exhaust the stack of the process checking it; run
 * before any schema, whose own walk is recursive.
 */
export function jsonShapeIssue(value: unknown, root = ''): string | null {
  // Each entry knows its parent, so a path is only spelled out for the message of a refusal.
  interface Visit {
    value: unknown;
    key: string;
    parent: Visit | null;
    depth: number;
  }
  const at = (visit: Visit | null, key?: string) => {
    const path: string[] = key === undefined ? [] : [key];
    for (let v = visit; v?.parent; v = v.parent) path.unshift(v.key);
    return [root, ...path].filter(Boolean).join('.') || 'value';
  };
  // `leave` entries take an object off the current path once its children are done.
  const stack: (Visit | { leave: object })[] = [{ value, key: '', parent: null, depth: 0 }];
  const onPath = new Set<object>();
  let nodes = 0;
  while (stack.length) {
    const entry = stack.pop()!;
    if ('leave' in entry) {
      onPath.delete(entry.leave);
      continue;
    }
    if (++nodes > MAX_INPUT_NODES) return `${at(null)}: holds more than ${MAX_INPUT_NODES} values`;
    const current = entry.value;
    if (current === null || typeof current !== 'object') continue;
    if (entry.depth >= MAX_INPUT_DEPTH) return `${at(entry)}: nests deeper than ${MAX_INPUT_DEPTH} levels`;
    if (onPath.has(current)) return `${at(entry)}: is circular (contains itself)`;
    const proto = Object.getPrototypeOf(current) as unknown;
    if (!Array.isArray(current) && proto !== Object.prototype && proto !== null) return `${at(entry)}: must be a plain JSON object`;
    onPath.add(current);
    stack.push({ leave: current });
    for (const key of Object.keys(current)) {
      if (RESERVED_KEYS.includes(key)) return `${at(entry, key)}: the keys ${RESERVED_KEYS.join(', ')} are not allowed`;
      const child = (current as Record<string, unknown>)[key];
      // Scalars need no visit of their own: counted here, never pushed.
      if (child === null || typeof child !== 'object') {
        if (++nodes > MAX_INPUT_NODES) return `${at(null)}: holds more than ${MAX_INPUT_NODES} values`;
        continue;
      }
      stack.push({ value: child, key, parent: entry, depth: entry.depth + 1 });
    }
  }
  return null;
}

/** Parses `value` with `schema`, or throws INVALID_ARGUMENT naming the offending field. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, root = ''): z.output<S> {
  const shape = jsonShapeIssue(value, root);
  if (shape) throw new DiskflowError('INVALID_ARGUMENT', shape);
  const result = schema.safeParse(value);
  if (!result.success) throw new DiskflowError('INVALID_ARGUMENT', formatIssues(result.error, root));
  return result.data;
}
