/** The small value types of the API, each with the rule a user can read in its error message. */
import { z } from 'zod';

/** qcow2 with 64 KiB clusters, the volumes diskflow makes, cannot address more than 2 PiB. */
export const MAX_VIRTUAL_SIZE = 2 ** 51;
export const SECTOR_SIZE = 512;
export const MAX_USER_DATA_BYTES = 64 * 1024;
/** Levels of objects and arrays a userData value may nest (the object itself is level 1). */
export const MAX_USER_DATA_DEPTH = 32;
/**
 * Keys refused anywhere in a value: JavaScript gives them meaning (a prototype), so a value
 * carrying them would not read back as it was written in every language.
 */
export const RESERVED_KEYS: readonly string[] = ['__proto__', 'constructor', 'prototype'];

/** A lowercase UUID, as a pattern to build names from (volume files, LVs, bitmaps). */
export const UUID_PATTERN = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const UUID = new RegExp(`^${UUID_PATTERN}$`);

/** A lowercase UUID: how diskflow names images, volumes and repositories (never a path). */
export const Uuid = z.string({ error: 'must be a UUID' }).regex(UUID, { error: 'must be a lowercase UUID' });

export const Size = z
  .number({ error: 'must be a number of bytes' })
  .int({ error: 'must be a whole number of bytes' })
  .positive({ error: 'must be greater than 0' })
  .max(MAX_VIRTUAL_SIZE, { error: `must be at most ${MAX_VIRTUAL_SIZE} bytes (2 PiB), the qcow2 limit` })
  .refine((n) => n % SECTOR_SIZE === 0, { error: `must be a multiple of ${SECTOR_SIZE} bytes` })
  .describe(`bytes: a whole multiple of ${SECTOR_SIZE}, greater than 0, at most 2^51 (2 PiB)`);

/**
 * How diskflow's own block layer (qemu-storage-daemon) serves a prepared image to its VM: an NBD
 * export on a unix socket, a vhost-user-blk socket, or a FUSE file.
 */
export const ServeMode = z.enum(['nbd', 'vhost-user-blk', 'fuse'], { error: 'must be one of nbd, vhost-user-blk, fuse' });
export type ServeMode = z.infer<typeof ServeMode>;

export const ImageId = z
  .string({ error: 'must be an image id' })
  .regex(UUID, {
    error: 'must be an image id (a lowercase UUID)',
  });
export type ImageId = z.infer<typeof ImageId>;

/** A volume's id, as records and volume names hold it. */
export const VolumeId = Uuid;
/** The identity of a repository (the `uuid` of its header), as task queue names and steps carry it. */
export const RepoUuid = Uuid;

/**
 * An operation's id: the workflow id of the operation (chosen by the engine, at most Temporal's
 * 1000 characters), never used as a path.
 */
export const OperationId = z
  .string({ error: 'must be an operation id' })
  .min(1, { error: 'must not be empty' })
  .max(1000, { error: 'must be at most 1000 characters' })
  .regex(/^\P{Cc}+$/u, { error: 'must not contain control characters' });

const HANDLE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export const RepoId = z
  .string({ error: 'must be a repository id' })
  .min(1, { error: 'must not be empty' })
  .max(64, { error: 'must be at most 64 characters' })
  .regex(HANDLE, { error: 'must start with a letter or digit and hold only letters, digits, ".", "_" and "-"' });
export type RepoId = z.infer<typeof RepoId>;

export const HostId = z
  .string({ error: 'must be a host id' })
  .min(1, { error: 'must not be empty' })
  .max(253, { error: 'must be at most 253 characters' })
  .regex(HANDLE, { error: 'must start with a letter or digit and hold only letters, digits, ".", "_" and "-"' });
export type HostId = z.infer<typeof HostId>;

export const RequestId = z
  .string({ error: 'must be a string' })
  .min(1, { error: 'must not be empty' })
  .max(128, { error: 'must be at most 128 characters' })
  .regex(/^[A-Za-z0-9._:-]+$/, { error: 'may hold only letters, digits, ".", "_", ":" and "-"' });

/**
 * An absolute, normalised path: no relative parts, no `.` or `..` segments, no doubled or
 * trailing slashes. (Written without node:path, because workflow code validates inputs too.)
 */
export const AbsolutePath = z
  .string({ error: 'must be a path' })
  .min(1, { error: 'must not be empty' })
  .max(4096, { error: 'must be at most 4096 characters' })
  .refine((p) => p.startsWith('/'), { error: 'must be an absolute path' })
  .refine((p) => !p.includes('\0'), { error: 'must not contain NUL' })
  .refine((p) => p === '/' || p.slice(1).split('/').every((s) => s !== '' && s !== '.' && s !== '..'), {
    error: 'must be normalised: no "..", "." or empty segments and no trailing "/"',
  })
  .describe('an absolute, normalised path: no "..", "." or empty segments, no trailing "/"');

/**
 * Where an import reads from: an absolute path on the importing host (a regular file), or an
 * http(s) URL (the server must answer byte ranges: qemu's curl driver reads it by ranges).
 */
export const ImportSource = z
  .string({ error: 'must be an absolute path or an http(s) URL' })
  .min(1, { error: 'must not be empty' })
  .max(4096, { error: 'must be at most 4096 characters' })
  .refine((s) => !s.includes('\0') && !/[\s]/.test(s.startsWith('/') ? '' : s), { error: 'must not contain NUL or (in a URL) whitespace' })
  .refine((s) => (s.startsWith('/') ? AbsolutePath.safeParse(s).success : /^https?:\/\/[^/?#\s]+(\/[^\s]*)?$/i.test(s)), {
    error: 'must be an absolute, normalised path or an http:// or https:// URL',
  })
  .describe('an absolute path on the importing host, or an http(s) URL whose server answers byte ranges');

/** A SHA-256 digest, lowercase hex. */
export const Sha256 = z.string({ error: 'must be a SHA-256 in hex' }).regex(/^[0-9a-f]{64}$/, { error: 'must be 64 lowercase hex digits' });

/** How deep a JSON value nests: 0 for a scalar, 1 for an object or array of scalars, ... */
export function jsonDepth(value: unknown): number {
  let deepest = 0;
  // Two stacks, no pairs: userData is checked on every record a scan reads.
  const values: unknown[] = [value];
  const depths: number[] = [0];
  while (values.length) {
    const current = values.pop();
    const depth = depths.pop()!;
    if (current === null || typeof current !== 'object') continue;
    deepest = Math.max(deepest, depth + 1);
    for (const key in current) {
      const child = (current as Record<string, unknown>)[key];
      if (child !== null && typeof child === 'object') {
        values.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return deepest;
}

export const UserData = z
  .record(z.string(), z.json({ error: 'must be JSON: no undefined, functions, NaN or Infinity' }), {
    error: 'must be a JSON object',
  })
  .refine((value) => new TextEncoder().encode(JSON.stringify(value)).length <= MAX_USER_DATA_BYTES, {
    error: `must be at most ${MAX_USER_DATA_BYTES} bytes as JSON`,
  })
  .refine((value) => jsonDepth(value) <= MAX_USER_DATA_DEPTH, {
    error: `must nest at most ${MAX_USER_DATA_DEPTH} levels of objects and arrays`,
  })
  .describe(
    `any JSON object, at most ${MAX_USER_DATA_BYTES} bytes as JSON, nesting at most ${MAX_USER_DATA_DEPTH} levels, ` +
      `without the keys ${RESERVED_KEYS.join(', ')}`,
  );
export type UserData = z.infer<typeof UserData>;

export const Strategy = z.enum(['space', 'performance'], { error: 'must be "space" or "performance"' });
export type Strategy = z.infer<typeof Strategy>;

export const ImageKind = z.enum(['virtual-disk', 'snapshot'], { error: 'must be "virtual-disk" or "snapshot"' });
export type ImageKind = z.infer<typeof ImageKind>;
