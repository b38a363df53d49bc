/**
 * The key that signs fix data and the metadata changes hosts send to an SRM. A cluster shares it
 * through DISKFLOW_FIX_KEY, so a fix checked on one host runs on another; without it, a host
 * makes one of its own under DISKFLOW_HOME, which is right for one host and says so.
 *
 * A key shorter than 32 bytes stops the worker: an empty or guessable key would let anyone
 * forge fixes. The key file is created atomically (written and fsync'd under another name,
 * then linked into place), so a crash never leaves a short or empty key behind.
 */
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createFileExclusive, readSmallFile } from '../activities/repository/atomic-file';
import { DiskflowError } from '../api/errors';

export const MIN_FIX_KEY_BYTES = 32;
export const FIX_KEY_FILE = 'fix.key';

/** A refusal to start (INVALID_ARGUMENT: the worker's configuration), naming what to change. */
const refuse = (message: string) => new DiskflowError('INVALID_ARGUMENT', message);

/** The bytes a key file holds, if it is the one encoding diskflow writes (base64 and a newline). */
function decodeKeyFile(text: string): Buffer | null {
  const body = text.replace(/\n$/, '');
  const bytes = Buffer.from(body, 'base64');
  return bytes.toString('base64') === body ? bytes : null;
}

export async function loadFixKey(home: string, env: NodeJS.ProcessEnv = process.env): Promise<{ key: Buffer; shared: boolean; source: string }> {
  if (env.DISKFLOW_FIX_KEY !== undefined) {
    const bytes = Buffer.byteLength(env.DISKFLOW_FIX_KEY);
    if (bytes < MIN_FIX_KEY_BYTES) {
      throw refuse(
        `DISKFLOW_FIX_KEY holds ${bytes} bytes; it must hold at least ${MIN_FIX_KEY_BYTES} (the same on every host; e.g. \`openssl rand -base64 48\`)`,
      );
    }
    return { key: createHash('sha256').update(env.DISKFLOW_FIX_KEY).digest(), shared: true, source: 'DISKFLOW_FIX_KEY' };
  }
  const file = join(home, FIX_KEY_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    let text: string | null;
    try {
      text = await readSmallFile(file, 4096);
    } catch (error) {
      throw refuse(`${file} cannot be read as a fix key: ${(error as Error).message}`);
    }
    if (text !== null) {
      const key = decodeKeyFile(text);
      if (!key) throw refuse(`${file} does not hold a fix key (base64, as diskflow writes it); remove it to have a new one made, or set DISKFLOW_FIX_KEY`);
      if (key.length < MIN_FIX_KEY_BYTES) {
        throw refuse(`${file} holds a fix key of ${key.length} bytes; it must hold at least ${MIN_FIX_KEY_BYTES}: remove it to have a new one made, or set DISKFLOW_FIX_KEY`);
      }
      return { key, shared: false, source: file };
    }
    // Written and fsync'd under another name, then linked into place (never a half-written key);
    // a worker racing for it makes the same choice: the first link wins, the other reads it.
    await createFileExclusive(file, randomBytes(32).toString('base64') + '\n', home, 0o600);
  }
  throw refuse(`${file} could not be made`);
}
