/**
 * Real data for tests: qemu-io writes patterns through prepareImage (a VM stand-in), and each
 * image's expected content is kept as a raw "model" file receiving the same writes, so
 * `qemu-img compare` can prove an image holds exactly what it should.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { StorageClient } from '../../client/storage-client';
import { tempDir } from './repositories';

export interface Write {
  pattern: number;
  offset: number;
  length: number;
}

const qemuIoWrite = (w: Write) => ['-c', `write -P 0x${w.pattern.toString(16)} ${w.offset} ${w.length}`];

/** The content an image should have, as a raw file. */
export class Model {
  private static count = 0;
  constructor(readonly path: string) {}

  static blank(size: number): Model {
    const path = join(tempDir('model'), `model-${Model.count++}.raw`);
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', path, String(size)]);
    return new Model(path);
  }

  /** A model that starts as a copy of this one (what a snapshot or a new disk from it holds). */
  fork(size?: number): Model {
    const path = join(tempDir('model'), `model-${Model.count++}.raw`);
    copyFileSync(this.path, path);
    if (size) execFileSync('qemu-img', ['resize', '-q', '-f', 'raw', path, String(size)]);
    return new Model(path);
  }

  write(...writes: Write[]): this {
    execFileSync('qemu-io', ['-f', 'raw', ...writes.flatMap(qemuIoWrite), this.path], { stdio: 'ignore' });
    return this;
  }
}

/** Writes into an image as a VM would: prepare, write, tear down. */
export async function writeImage(client: StorageClient, repoId: string, imageId: string, ...writes: Write[]): Promise<void> {
  const { path, format } = await client.prepareImage(repoId, imageId);
  try {
    execFileSync('qemu-io', ['-f', format, ...writes.flatMap(qemuIoWrite), path], { stdio: 'ignore' });
  } finally {
    await client.teardownImage(repoId, imageId);
  }
}

/** Whether the image holds exactly the model's content (`qemu-img compare`). */
export async function sameContent(client: StorageClient, repoId: string, imageId: string, model: Model): Promise<boolean> {
  const { path, format } = await client.prepareImage(repoId, imageId);
  try {
    execFileSync('qemu-img', ['compare', '-q', '-f', format, '-F', 'raw', path, model.path]);
    return true;
  } catch {
    return false;
  } finally {
    await client.teardownImage(repoId, imageId);
  }
}

/** `qemu-img info` of the image's top volume, with its backing chain. */
export async function chainOf(client: StorageClient, repoId: string, imageId: string): Promise<{ filename: string; format: string; 'backing-filename'?: string }[]> {
  const { path } = await client.prepareImage(repoId, imageId);
  try {
    return JSON.parse(execFileSync('qemu-img', ['info', '--output=json', '--backing-chain', '-U', path], { encoding: 'utf8' }));
  } finally {
    await client.teardownImage(repoId, imageId);
  }
}

/**
 * The qcow2 files of an image's chain (prepared and torn down to read it): what a clean-volume
 * check must find among the repository's volumes, so that it cannot pass on an empty repository.
 */
export async function qcow2ChainFiles(client: StorageClient, repoId: string, imageId: string): Promise<string[]> {
  return (await chainOf(client, repoId, imageId)).filter((v) => v.format === 'qcow2').map((v) => basename(v.filename));
}

/**
 * Which instant of a sequence of writes an image holds: k when it holds the first k writes and
 * none of the others (every write at its own offset, over content `before` that differs from each
 * pattern); throws when it holds no prefix (a torn copy). Read with qemu-io, the image opened
 * read-only at `path`.
 */
export function instantOf(path: string, format: string, writes: Write[]): number {
  const holds = writes.map((w) => {
    try {
      execFileSync('qemu-io', ['-r', '-U', '-f', format, '-c', `read -P 0x${w.pattern.toString(16)} ${w.offset} ${w.length}`, path], { stdio: 'pipe' });
      return !/Pattern verification failed/.test(execFileSync('qemu-io', ['-r', '-U', '-f', format, '-c', `read -P 0x${w.pattern.toString(16)} ${w.offset} ${w.length}`, path], { encoding: 'utf8' }));
    } catch {
      return false;
    }
  });
  const k = holds.indexOf(false) === -1 ? holds.length : holds.indexOf(false);
  if (holds.slice(k).some(Boolean)) throw new Error(`torn: the image holds writes ${holds.map((h, i) => (h ? i : null)).filter((i) => i !== null).join(',')} of ${writes.length}, not a prefix`);
  return k;
}
