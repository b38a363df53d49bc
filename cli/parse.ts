/** Parsing of command-line values: sizes, --param k=v, JSON arguments. */
import { DiskflowError, invalidArgument } from '../api/errors';

export { parseSize } from '../config/size';

/** `k=v`: the value as JSON where it parses as JSON, as a string otherwise. */
export function parseParam(text: string, previous: Record<string, unknown> = {}): Record<string, unknown> {
  const at = text.indexOf('=');
  if (at <= 0) throw invalidArgument(`--param: "${text}" is not of the form key=value`);
  const key = text.slice(0, at);
  const raw = text.slice(at + 1);
  let value: unknown = raw;
  try {
    value = JSON.parse(raw);
  } catch {
    // not JSON: a plain string
  }
  return { ...previous, [key]: value };
}

export function parseJsonObject(text: string, field: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw invalidArgument(`${field}: not valid JSON (${(error as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidArgument(`${field}: must be a JSON object`);
  return value as Record<string, unknown>;
}

/** `IMAGE=REPO`, repeatable. */
export function parseHint(text: string, previous: Record<string, string> = {}): Record<string, string> {
  const [image, repo, ...rest] = text.split('=');
  if (!image || !repo || rest.length) throw new DiskflowError('INVALID_ARGUMENT', `--hint: "${text}" is not of the form IMAGE=REPO`);
  return { ...previous, [image]: repo };
}

export function parseList(text: string): string[] {
  return text.split(',').map((s) => s.trim()).filter(Boolean);
}
