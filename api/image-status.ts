/** What a user reads about an image and about work left on a repository (API.md). */
import { z } from 'zod';
import { HostId, ImageId, ImageKind, RepoId, ServeMode, UserData } from './values';

export const ImageState = z.enum(['optimized', 'degraded', 'broken']);
export type ImageState = z.infer<typeof ImageState>;

export const Stage = z.object({ current: z.number().int().nonnegative(), total: z.number().int().positive() });
export type Stage = z.infer<typeof Stage>;

export const ImageStatus = z.object({
  imageId: ImageId,
  repoId: RepoId,
  kind: ImageKind,
  status: ImageState,
  size: z.number().int().positive(),
  userData: UserData,
  hostId: HostId.nullable(),
  stage: Stage.nullable(),
  percentComplete: z.number().int().min(-1).max(100),
  lastError: z.string().nullable(),
});
export type ImageStatus = z.infer<typeof ImageStatus>;

export const FixType = z.enum(['clean', 'optimize', 'merge', 'mend'], {
  error: 'must be one of clean, optimize, merge, mend',
});
export type FixType = z.infer<typeof FixType>;

export const Fix = z.object({
  type: FixType,
  imageIds: z.array(ImageId),
  description: z.string(),
  bytes: z.number().int().nonnegative(),
  data: z.string().min(1, { error: 'must be the opaque data returned by checkStorageRepository' }).max(1024 * 1024),
});
export type Fix = z.infer<typeof Fix>;

export const PreparedImage = z.object({
  path: z.string(),
  format: z.enum(['raw', 'qcow2']),
  /** A snapshot is prepared read-only: it never changes, and disks are built on it. */
  readOnly: z.boolean(),
  /**
   * How diskflow's block layer serves it (prepared with `serve`): `path` is then an nbd+unix URI,
   * a vhost-user-blk socket or a FUSE file, and live operations run while the VM writes; null
   * for a plain prepare (`path` is the top volume, and operations that would change or copy it
   * wait for the teardown).
   */
  served: ServeMode.nullable(),
});
export type PreparedImage = z.infer<typeof PreparedImage>;

export const RepositoryConstraints = z.object({ needsSrm: z.boolean(), srmHostId: HostId.nullable() });
export type RepositoryConstraints = z.infer<typeof RepositoryConstraints>;
