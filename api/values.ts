/** The small value types of the API, each with the rule a user can read in its error message. */
import { z } from 'zod';

/** qcow2 with 64 KiB clusters, the volumes diskflow makes, cannot address more than 2 PiB. */
export const MAX_VIRTUAL_SIZE = 2 ** 51;
export const SECTOR_SIZE = 512;
export const MAX_USER_DATA_BYTES = 64 * 1024;

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
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, {
    error: 'must be an image id (a lowercase UUID)',
  });
export type ImageId = z.infer<typeof ImageId>;

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

export const UserData = z
  .record(z.string(), z.json({ error: 'must be JSON: no undefined, functions, NaN or Infinity' }), {
    error: 'must be a JSON object',
  })
  .refine((value) => new TextEncoder().encode(JSON.stringify(value)).length <= MAX_USER_DATA_BYTES, {
    error: `must be at most ${MAX_USER_DATA_BYTES} bytes as JSON`,
  })
  .describe(`any JSON object, at most ${MAX_USER_DATA_BYTES} bytes as JSON`);
export type UserData = z.infer<typeof UserData>;

export const Strategy = z.enum(['space', 'performance'], { error: 'must be "space" or "performance"' });
export type Strategy = z.infer<typeof Strategy>;

export const ImageKind = z.enum(['virtual-disk', 'snapshot'], { error: 'must be "virtual-disk" or "snapshot"' });
export type ImageKind = z.infer<typeof ImageKind>;
