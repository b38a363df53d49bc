/** Repositories for tests: real directories, created and removed by the test that uses them. */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import type { StorageClient } from '../../client/storage-client';

const made: string[] = [];

export function tempDir(prefix = 'repo'): string {
  const dir = mkdtempSync(join(tmpdir(), `diskflow-${prefix}-`));
  made.push(dir);
  return dir;
}

/** A new localfs repository, initialised and connected under `repoId`. */
export async function localRepository(client: StorageClient, repoId: string): Promise<string> {
  const path = tempDir(repoId);
  await client.initStorageRepository('localfs-1.0', { path });
  await client.connectStorageRepository(repoId, 'localfs-1.0', { path });
  return path;
}

export function removeTempDirs(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/**
 * Every file under `root` with its size and content hash: two snapshots are equal only if
 * nothing was created, removed or changed. Used to prove that refused calls write nothing.
 */
export function snapshotTree(root: string): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const info = statSync(path);
      if (info.isDirectory()) walk(path);
      else files[relative(root, path)] = `${info.size}:${createHash('sha256').update(readFileSync(path)).digest('hex')}`;
    }
  };
  walk(root);
  return files;
}
