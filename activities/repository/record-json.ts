/**
 * Reading JSON that storage holds (records, headers, lease files, DISKFLOW_HOME's own files) as
 * untrusted input: bounded in size, parsed without echoing its content in errors (a record that
 * is a link to a secret must not leak it into a message), and shaped like plain data (no
 * cycles are possible in JSON, but nesting and reserved keys are checked: the schemas that read
 * it next walk it recursively). Anything else is STORAGE_ERROR, not retried.
 */
import { DiskflowError } from '../../api/errors';
import { MAX_INPUT_DEPTH } from '../../api/validation';
import { RESERVED_KEYS } from '../../api/values';

/** No record diskflow writes comes near this: userData is at most 64 KiB, a clvm slot 128 KiB. */
export const MAX_STORED_JSON_BYTES = 1024 * 1024;

export const corrupt = (what: string, why: string) => new DiskflowError('STORAGE_ERROR', `${what} is corrupt: ${why}`, false);

export function parseStoredJson(text: string, what: string): unknown {
  // Characters bound bytes from below: files are bounded by their size already, slots by theirs.
  if (text.length > MAX_STORED_JSON_BYTES) throw corrupt(what, `larger than ${MAX_STORED_JSON_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw corrupt(what, 'not valid JSON');
  }
  const shape = parsedJsonIssue(value);
  if (shape) throw corrupt(what, shape);
  return value;
}

/**
 * api/validation.ts's shape check, for what JSON.parse just made (plain objects and arrays, no
 * cycles possible): nesting and reserved keys only, at the cost of a scan of every record.
 */
function parsedJsonIssue(value: unknown): string | null {
  // Two stacks rather than one of pairs: thousands of records are checked in a scan, without garbage.
  const values: unknown[] = [value];
  const depths: number[] = [0];
  while (values.length) {
    const current = values.pop() as object;
    const depth = depths.pop()!;
    if (depth >= MAX_INPUT_DEPTH) return `nests deeper than ${MAX_INPUT_DEPTH} levels`;
    for (const key in current) {
      if (RESERVED_KEYS.includes(key)) return `holds a key ${key}, which diskflow never writes`;
      const child = (current as Record<string, unknown>)[key];
      if (child !== null && typeof child === 'object') {
        values.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return null;
}

/** A record is stored under its own id: one stored under another name is corrupt (never used for that id). */
export function requireOwnId(kind: 'image' | 'volume', id: string, raw: unknown, what: string): unknown {
  const field = kind === 'image' ? 'imageId' : 'volumeId';
  const own = raw !== null && typeof raw === 'object' ? (raw as Record<string, unknown>)[field] : undefined;
  if (own !== id) throw corrupt(what, `it is stored as ${kind} ${id} but holds ${typeof own === 'string' ? `the record of ${own.slice(0, 80)}` : `no ${field}`}`);
  return raw;
}
