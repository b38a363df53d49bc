/**
 * Crash-safe small files: a reader sees the old content or the new, never a mix. Each write goes
 * to a temporary file in the same file system, is fsync'd, renamed into place, and the directory
 * is fsync'd so the rename itself is durable.
 */
import { randomUUID } from 'node:crypto';
import { link, open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function writeTemporary(tmpDir: string, target: string, data: string | Uint8Array): Promise<string> {
  const tmp = join(tmpDir, `${basename(target)}.${randomUUID()}.tmp`);
  const handle = await open(tmp, 'wx', 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return tmp;
}

/** Replaces `target` atomically. `tmpDir` must be on the same file system as `target`. */
export async function writeFileAtomic(target: string, data: string | Uint8Array, tmpDir = dirname(target)): Promise<void> {
  const tmp = await writeTemporary(tmpDir, target, data);
  try {
    await rename(tmp, target);
  } catch (error) {
    await unlink(tmp).catch(() => undefined);
    throw error;
  }
  await fsyncDirectory(dirname(target));
}

/**
 * Creates `target` atomically only if it does not exist yet (link(2) fails with EEXIST), so two
 * writers racing for the same name cannot both win, and nobody ever reads a half-written file.
 * Returns false when the file already existed.
 */
export async function createFileExclusive(target: string, data: string | Uint8Array, tmpDir = dirname(target)): Promise<boolean> {
  const tmp = await writeTemporary(tmpDir, target, data);
  try {
    await link(tmp, target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  await fsyncDirectory(dirname(target));
  return true;
}

/** Reads a JSON file, or returns null when it does not exist. */
export async function readJson(path: string): Promise<unknown | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as unknown;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

export async function removeFileDurably(path: string): Promise<boolean> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  await fsyncDirectory(dirname(path));
  return true;
}
