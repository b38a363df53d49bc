/**
 * Crash-safe small files: a reader sees the old content or the new, never a mix. Each write goes
 * to a temporary file in the same file system, is fsync'd, renamed into place, and the directory
 * is fsync'd so the rename itself is durable.
 *
 * Files are read without following symbolic links (O_NOFOLLOW): a repository's content is
 * untrusted, and a record that is a link would make diskflow read whatever it points to.
 */
import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { link, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { DiskflowError } from '../../api/errors';
import { UUID_PATTERN } from '../../api/values';
import { MAX_STORED_JSON_BYTES, parseStoredJson } from './record-json';

/**
 * Names of the temporary files diskflow leaves when a writer dies: those of atomic writes
 * (`<name>.<uuid>.tmp`) and the O_DIRECT probe of file-repository.ts. Only files so named are
 * ever cleaned from a repository's `tmp/`.
 */
export const STRAY_NAME = new RegExp(`^(?:[A-Za-z0-9_-][A-Za-z0-9._-]{0,200}\\.${UUID_PATTERN}\\.tmp|\\.direct-io-probe-\\d{1,10})$`);

/** fsync(2) calls of this process's record writes so far, for the benchmarks' breakdowns (bench/breakdown.ts). */
export const recordFsyncs = { files: 0, directories: 0 };

export async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
    recordFsyncs.directories++;
  } finally {
    await handle.close();
  }
}

async function writeTemporary(tmpDir: string, target: string, data: string | Uint8Array, mode: number): Promise<string> {
  const tmp = join(tmpDir, `${basename(target)}.${randomUUID()}.tmp`);
  // O_EXCL: never writes through a link or into a file someone else made.
  const handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
    recordFsyncs.files++;
  } finally {
    await handle.close();
  }
  return tmp;
}

/** Replaces `target` atomically. `tmpDir` must be on the same file system as `target`. */
export async function writeFileAtomic(target: string, data: string | Uint8Array, tmpDir = dirname(target)): Promise<void> {
  const tmp = await writeTemporary(tmpDir, target, data, 0o644);
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
export async function createFileExclusive(target: string, data: string | Uint8Array, tmpDir = dirname(target), mode = 0o644): Promise<boolean> {
  const tmp = await writeTemporary(tmpDir, target, data, mode);
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

/**
 * The content of a small regular file, read without following a link, or null when it does
 * not exist. A link, a directory or a file over `maxBytes` is STORAGE_ERROR.
 */
export async function readSmallFile(path: string, maxBytes = MAX_STORED_JSON_BYTES): Promise<string | null> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP') throw new DiskflowError('STORAGE_ERROR', `${path} is a symbolic link: diskflow does not follow links in a repository or DISKFLOW_HOME`, false);
    throw error;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new DiskflowError('STORAGE_ERROR', `${path} is not a regular file`, false);
    if (info.size > maxBytes) throw new DiskflowError('STORAGE_ERROR', `${path} is larger than ${maxBytes} bytes: not a file diskflow wrote`, false);
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/** Reads a JSON file (see readSmallFile and record-json.ts), or returns null when it does not exist. */
export async function readJson(path: string): Promise<unknown | null> {
  const text = await readSmallFile(path);
  return text === null ? null : parseStoredJson(text, path);
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
