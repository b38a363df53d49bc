/**
 * The key that signs fix data. A cluster shares it through DISKFLOW_FIX_KEY, so a fix checked on
 * one host runs on another; without it, a host makes one of its own under DISKFLOW_HOME, which
 * is right for one host and says so.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export async function loadFixKey(home: string, env: NodeJS.ProcessEnv = process.env): Promise<{ key: Buffer; shared: boolean }> {
  if (env.DISKFLOW_FIX_KEY) return { key: createHash('sha256').update(env.DISKFLOW_FIX_KEY).digest(), shared: true };
  const file = join(home, 'fix.key');
  try {
    return { key: Buffer.from((await readFile(file, 'utf8')).trim(), 'base64'), shared: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const key = randomBytes(32);
  try {
    await writeFile(file, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    return { key, shared: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return loadFixKey(home, env);
  }
}
