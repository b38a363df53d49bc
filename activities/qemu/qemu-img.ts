/** qemu-img, the data plane's workhorse. Every call is an argument array (see ../process.ts). */
import { run, RunOptions } from '../process';

export type VolumeFormat = 'raw' | 'qcow2';

export interface CreateOptions {
  format: VolumeFormat;
  size: number;
  /** Backing file, as it should be written in the qcow2 header (relative to the new file). */
  backing?: { file: string; format: VolumeFormat };
  /** Allocate every byte now (raw, `performance`): falloc is instant on extent file systems. */
  preallocate?: boolean;
}

export async function create(path: string, options: CreateOptions, runOptions?: RunOptions): Promise<void> {
  const o: string[] = [];
  if (options.format === 'qcow2') o.push('compat=1.1', 'lazy_refcounts=off');
  if (options.preallocate) o.push('preallocation=falloc');
  const args = ['create', '-q', '-f', options.format];
  if (o.length) args.push('-o', o.join(','));
  if (options.backing) args.push('-b', options.backing.file, '-F', options.backing.format);
  args.push(path, String(options.size));
  await run('qemu-img', args, runOptions);
}

export interface ImageInfo {
  'virtual-size': number;
  'actual-size'?: number;
  format: string;
  filename: string;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
  'backing-filename-format'?: string;
  'dirty-flag'?: boolean;
}

/** `qemu-img info` of one file (no chain), read with -U so a running VM does not block it. */
export async function info(path: string, format?: VolumeFormat, runOptions?: RunOptions): Promise<ImageInfo> {
  const args = ['info', '--output=json', '-U'];
  if (format) args.push('-f', format);
  args.push(path);
  const { stdout } = await run('qemu-img', args, runOptions);
  return JSON.parse(stdout) as ImageInfo;
}

export interface CheckResult {
  'check-errors': number;
  corruptions?: number;
  leaks?: number;
  'image-end-offset'?: number;
}

export async function check(path: string, format: VolumeFormat, runOptions?: RunOptions): Promise<CheckResult> {
  // Exit 2: corruptions, 3: leaks; both are reported in the JSON rather than thrown.
  const { stdout } = await run('qemu-img', ['check', '--output=json', '-f', format, path], {
    ...runOptions,
    okExitCodes: [2, 3],
  });
  return JSON.parse(stdout) as CheckResult;
}

/**
 * `qemu-img check` of one qcow2 volume alone (its backing chain is not opened: it may not be
 * reachable where the check runs). The volume is a block device (an activated LV).
 */
export async function checkDeviceAlone(path: string, runOptions?: RunOptions): Promise<CheckResult> {
  const spec = { driver: 'qcow2', backing: null, file: { driver: 'host_device', filename: path } };
  const { stdout } = await run('qemu-img', ['check', '--output=json', `json:${JSON.stringify(spec)}`], { ...runOptions, okExitCodes: [2, 3] });
  return JSON.parse(stdout) as CheckResult;
}

/**
 * Commits `path` (a qcow2 overlay) into `base`, a volume below it in its chain, then empties it.
 * Idempotent: committing again writes the same data.
 */
export async function commit(
  path: string,
  options: { base: string; directIo: boolean; rateLimit?: number; signal?: AbortSignal; onProgress?: (fraction: number) => void },
): Promise<void> {
  const args = ['commit', '-p', '-f', 'qcow2', '-b', options.base];
  if (options.directIo) args.push('-t', 'none');
  if (options.rateLimit) args.push('-r', String(options.rateLimit));
  args.push(path);
  await run('qemu-img', args, { signal: options.signal, onStdout: progressParser(options.onProgress) });
}

/** Points a qcow2 overlay at another backing file whose content is the same (header only). */
export async function rebaseUnsafe(path: string, backing: { file: string; format: VolumeFormat }, runOptions?: RunOptions): Promise<void> {
  await run('qemu-img', ['rebase', '-u', '-f', 'qcow2', '-b', backing.file, '-F', backing.format, path], runOptions);
}

/** Reads `qemu-img -p` output ("    (42.00/100%)" lines) into fractions done. */
export function progressParser(onProgress?: (fraction: number) => void): (chunk: string) => void {
  let buffer = '';
  return (chunk) => {
    buffer = (buffer + chunk).slice(-200);
    const matches = [...buffer.matchAll(/\((\d+(?:\.\d+)?)\/100%\)/g)];
    if (matches.length) onProgress?.(Number(matches[matches.length - 1][1]) / 100);
  };
}

/**
 * Points a qcow2 overlay at another backing file, keeping its content (safe mode): every cluster
 * where the old backing and the new one differ is written into the overlay, and only those.
 * Reads both in full. Used as the content-compare path of an incremental copy.
 */
export async function rebaseSafe(
  path: string,
  backing: { file: string; format: VolumeFormat },
  options: { directIo: boolean; signal?: AbortSignal; onProgress?: (fraction: number) => void },
): Promise<void> {
  const args = ['rebase', '-p', '-f', 'qcow2', '-b', backing.file, '-F', backing.format];
  if (options.directIo) args.push('-t', 'none', '-T', 'none');
  args.push(path);
  await run('qemu-img', args, { signal: options.signal, onStdout: progressParser(options.onProgress) });
}

/**
 * Grows a volume to `size` bytes (virtual): a qcow2 header and L1 table, or a raw file's length
 * (a raw block device must be that big already). `falloc` keeps a preallocated raw file so.
 */
export async function resize(path: string, format: VolumeFormat, size: number, options: { falloc?: boolean } & RunOptions = {}): Promise<void> {
  const { falloc, ...runOptions } = options;
  const args = ['resize', '-q', '-f', format];
  if (falloc) args.push('--preallocation=falloc');
  args.push(path, String(size));
  await run('qemu-img', args, runOptions);
}
