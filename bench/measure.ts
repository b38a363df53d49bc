/** What the benchmarks measure with, and how they read their options (`--name value`). */
import { randomUUID } from 'node:crypto';
import type { StorageClient } from '../client/storage-client';

/** The value of `--name` on the command line, or `fallback`. */
export function arg(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : fallback;
}

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Wall-clock seconds `work` takes. */
export async function seconds(work: () => Promise<unknown> | unknown): Promise<number> {
  const start = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/**
 * Removes an image and waits for its removal to end (its volumes purged): a timed run after it
 * then does not share the storage with a purge of GiBs, as a bare run after `rm` does not.
 */
export async function removeToTheEnd(client: StorageClient, repositoryId: string, imageId: string): Promise<void> {
  const requestId = randomUUID();
  await client.removeImage(repositoryId, imageId, { requestId });
  await client.waitForOperation(`removeImage:${requestId}`);
}
