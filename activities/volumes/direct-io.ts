/**
 * Reads and writes of a shared block device that bypass this host's page cache (O_DIRECT), so
 * what one host writes another host reads at once, and a write is on the device when it returns
 * (O_DSYNC). Done with dd(1): Node cannot allocate the aligned buffers O_DIRECT needs.
 */
import type { ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { DiskflowError } from '../../api/errors';
import { spawnTied } from '../process';

export const SECTOR = 512;

function dd(args: string[], input?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // Tied to the worker (process.ts): a dd must never write a lease or a record slot after its worker died.
    const child = spawnTied('dd', [...args, 'status=none'], { stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] }) as ChildProcessByStdio<Writable | null, Readable, Readable>;
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    child.on('error', (error) => reject(new DiskflowError('STORAGE_ERROR', `dd: ${error.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new DiskflowError(/No space/.test(err) ? 'NO_SPACE' : 'STORAGE_ERROR', `dd ${args.join(' ')} failed (exit ${code}): ${err.trim()}`));
    });
    if (input) child.stdin!.end(input);
  });
}

/** Reads `length` bytes at `offset` (both multiples of 512) of `device`. */
export async function readDirect(device: string, offset: number, length: number): Promise<Buffer> {
  aligned(offset, length);
  const bs = blockSize(offset, length);
  const data = await dd([`if=${device}`, `bs=${bs}`, `skip=${offset / bs}`, `count=${length / bs}`, 'iflag=direct,fullblock']);
  if (data.length !== length) throw new DiskflowError('STORAGE_ERROR', `short read of ${device} at ${offset}: ${data.length} of ${length} bytes`);
  return data;
}

/** Writes `data` (a multiple of 512 bytes) at `offset` of `device`, on the device when it returns. */
export async function writeDirect(device: string, offset: number, data: Buffer): Promise<void> {
  aligned(offset, data.length);
  const bs = blockSize(offset, data.length);
  await dd([`of=${device}`, `bs=${bs}`, `seek=${offset / bs}`, `count=${data.length / bs}`, 'iflag=fullblock', 'oflag=direct,dsync', 'conv=notrunc'], data);
}

function aligned(offset: number, length: number): void {
  if (offset % SECTOR || length % SECTOR) throw new Error(`unaligned direct I/O: offset ${offset}, length ${length}`);
}

/** The largest power-of-two block (up to 1 MiB) dividing both, so dd issues few large requests. */
function blockSize(offset: number, length: number): number {
  let bs = 1024 * 1024;
  while (bs > SECTOR && (offset % bs || length % bs)) bs /= 2;
  return bs;
}
