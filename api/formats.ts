/**
 * Repository formats and the connection parameters each takes (API.md, "Repository formats").
 * What a format *is* (shared, needs an SRM) is part of the contract; how it is implemented lives
 * in activities/repository/formats/.
 */
import { z } from 'zod';
import { AbsolutePath } from './values';

export const REPO_FORMATS = ['localfs-1.0', 'posixfs-1.0', 'nfs-1.0', 'clvm-1.0'] as const;
export const RepoFormat = z.enum(REPO_FORMATS, { error: `must be one of ${REPO_FORMATS.join(', ')}` });
export type RepoFormat = z.infer<typeof RepoFormat>;

/**
 * Mount options diskflow passes to mount(8), after its own `nosuid,nodev` (activities/host/mounts.ts).
 * An allow-list, because options such as `exec`, `suid` or `dev` would let a repository's
 * content act on the host.
 */
export const MOUNT_OPTION_ALLOW_LIST = [
  'ro', 'rw', 'sync', 'async', 'noatime', 'relatime', 'nodiratime', 'lazytime', 'nosuid', 'nodev', 'noexec',
  'hard', 'soft', 'intr', 'nointr', 'tcp', 'udp', 'nolock', 'local_lock', 'vers', 'nfsvers', 'proto', 'port',
  'timeo', 'retrans', 'rsize', 'wsize', 'sec', 'actimeo', 'lookupcache', 'nconnect', 'context',
  'inode64', 'logbufs', 'logbsize', 'discard', 'nodiscard', 'barrier', 'nobarrier', 'data', 'commit', 'loop',
] as const;

export const MountOptions = z
  .string({ error: 'must be a comma-separated list of mount options' })
  .max(1024, { error: 'must be at most 1024 characters' })
  .refine((s) => s.split(',').every((o) => /^[a-z0-9_]+(=[A-Za-z0-9_.:/@-]+)?$/.test(o)), {
    error: 'must be a comma-separated list of name or name=value options',
  })
  .refine((s) => s.split(',').every((o) => (MOUNT_OPTION_ALLOW_LIST as readonly string[]).includes(o.split('=')[0])), {
    error: `may only use ${MOUNT_OPTION_ALLOW_LIST.join(', ')}`,
  });

/**
 * File systems a posixfs-1.0 repository may be. An allow-list: mount(8) runs a helper program
 * for some types (`fuse.<anything>` runs the program the spec names, as root), and a repository
 * must never make a host run something.
 */
export const VFS_TYPES = ['xfs', 'ext4', 'ext3', 'ext2', 'btrfs', 'nfs', 'nfs4', 'ceph', 'gfs2', 'ocfs2'] as const;

const Hostname = z
  .string({ error: 'must be a host name or address' })
  .min(1)
  .max(253)
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)$/, { error: 'must be a host name or address' });

export const LocalFsParams = z.strictObject({ path: AbsolutePath });
export const PosixFsParams = z.strictObject({
  spec: z.string().min(1, { error: 'must not be empty' }).max(4096).refine((s) => !s.startsWith('-'), {
    error: 'must not start with "-"',
  }),
  vfsType: z.enum(VFS_TYPES, { error: `must be one of ${VFS_TYPES.join(', ')}` }),
  mountOptions: MountOptions.optional(),
});
export const NfsParams = z.strictObject({ server: Hostname, export: AbsolutePath, mountOptions: MountOptions.optional() });
export const ClvmParams = z.strictObject({
  devices: z.array(AbsolutePath).min(1, { error: 'must list at least one device' }),
  vgName: z.string().regex(/^[A-Za-z0-9+_][A-Za-z0-9+_.-]{0,126}$/, { error: 'must be an LVM volume group name' }),
});

export interface FormatTraits {
  /** Several hosts may connect the same repository at once. */
  shared: boolean;
  /** Objects may only be created and deleted by the repository's elected SRM host. */
  needsSrm: boolean;
}

export const FORMAT_TRAITS: Record<RepoFormat, FormatTraits> = {
  'localfs-1.0': { shared: false, needsSrm: false },
  'posixfs-1.0': { shared: true, needsSrm: false },
  'nfs-1.0': { shared: true, needsSrm: false },
  'clvm-1.0': { shared: true, needsSrm: true },
};

const FORMAT_PARAMS = {
  'localfs-1.0': LocalFsParams,
  'posixfs-1.0': PosixFsParams,
  'nfs-1.0': NfsParams,
  'clvm-1.0': ClvmParams,
} as const;

/**
 * `fields` plus a format and the connection parameters of that format, as one strict object
 * per format (a discriminated union, so JSON Schema readers see which parameters go with which).
 */
export function withRepositorySpec<F extends z.ZodRawShape>(fields: F) {
  const member = <K extends RepoFormat>(format: K) =>
    z.strictObject({ ...fields, repoFormat: z.literal(format), connectionParameters: FORMAT_PARAMS[format] });
  return z.discriminatedUnion(
    'repoFormat',
    [member('localfs-1.0'), member('posixfs-1.0'), member('nfs-1.0'), member('clvm-1.0')],
    { error: `must be one of ${REPO_FORMATS.join(', ')}` },
  );
}

export const RepositorySpec = withRepositorySpec({});
export type RepositorySpec = z.infer<typeof RepositorySpec>;
