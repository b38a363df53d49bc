/**
 * qcow2 persistent dirty bitmaps: qemu (a VM, qemu-io, qemu-img) marks in them every cluster
 * it writes, and keeps them in the image file across runs. diskflow adds one to a disk's top
 * volume when it copies the disk, so that the next copy knows what changed since.
 */
import { run, RunOptions } from '../process';

export interface Bitmap {
  name: string;
  granularity: number;
  /** `auto`: enabled (recording); `in-use`: the image was not closed cleanly, contents unknown. */
  flags: string[];
}

interface InfoWithBitmaps {
  'format-specific'?: { type: string; data?: { bitmaps?: Bitmap[] } };
}

export async function listBitmaps(path: string, runOptions?: RunOptions): Promise<Bitmap[]> {
  const { stdout } = await run('qemu-img', ['info', '--output=json', '-U', '-f', 'qcow2', path], runOptions);
  return (JSON.parse(stdout) as InfoWithBitmaps)['format-specific']?.data?.bitmaps ?? [];
}

/** Adds an enabled persistent bitmap, empty: changes are counted from now. */
export async function addBitmap(path: string, name: string, runOptions?: RunOptions): Promise<void> {
  await run('qemu-img', ['bitmap', '--add', '-f', 'qcow2', path, name], runOptions);
}

export async function removeBitmap(path: string, name: string, runOptions?: RunOptions): Promise<void> {
  await run('qemu-img', ['bitmap', '--remove', '-f', 'qcow2', path, name], runOptions);
}
