/** Repositories for tests: real directories, created and removed by the test that uses them. */
import { createHash } from 'node:crypto';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
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
 * Every file under `root` with its size and content hash (links as what they point to, never
 * followed; directories too, so an empty one made or removed shows): two snapshots are equal
 * only if nothing was created, removed or changed. Used to prove that refused calls write nothing.
 */
export function snapshotTree(root: string): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const info = lstatSync(path);
      if (info.isSymbolicLink()) files[relative(root, path)] = `link:${readlinkSync(path)}`;
      else if (info.isDirectory()) {
        files[`${relative(root, path)}/`] = 'dir';
        walk(path);
      } else if (info.isFile()) files[relative(root, path)] = `${info.size}:${createHash('sha256').update(readFileSync(path)).digest('hex')}`;
      else files[relative(root, path)] = 'special';
    }
  };
  walk(root);
  return files;
}

/** One hash of everything under `roots` (snapshotTree): what a refused call must leave unchanged. */
export function treeHash(...roots: string[]): string {
  const hash = createHash('sha256');
  for (const root of roots) hash.update(`${root}\0${JSON.stringify(snapshotTree(root))}\0`);
  return hash.digest('hex');
}
