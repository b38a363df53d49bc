/**
 * A repository's own directories are never links: a `tmp/` linked elsewhere would make a clean
 * delete there, a `volumes/` linked to another repository would make its volumes look like
 * orphans. Node has no openat(2), so the check is made at connect and again right before
 * anything in such a directory is deleted (a writer racing that instant is out of reach; see
 * docs/ARCHITECTURE.md, "Storage is untrusted").
 */
import { lstat } from 'node:fs/promises';
import { DiskflowError } from '../../api/errors';

/**
 * Throws STORAGE_ERROR unless `dir` is a directory itself, not a symbolic link to one. Checked at
 * connect for every directory of the repository, and again right before anything there is deleted.
 */
export async function requireOwnDirectory(dir: string, optional = false): Promise<void> {
  const info = await lstat(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT' && optional) return null;
    throw new DiskflowError('STORAGE_ERROR', `${dir} is missing: not a diskflow repository, or a damaged one (${error.code})`, false);
  });
  if (!info) return;
  if (info.isSymbolicLink()) {
    throw new DiskflowError('STORAGE_ERROR', `${dir} is a symbolic link: diskflow does not follow links inside a repository; replace it with the directory itself`, false);
  }
  if (!info.isDirectory()) throw new DiskflowError('STORAGE_ERROR', `${dir} is not a directory`, false);
}

