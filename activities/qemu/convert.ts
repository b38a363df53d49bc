/**
 * Copying an image's content, resumably: the data extents of the source (its whole chain, as
 * `qemu-img map` sees it) are grouped into ranges of about `chunkBytes` of data, and each range
 * is one `qemu-img convert` between `raw` slices (offset/size) of the source and the target.
 * A copy interrupted anywhere resumes at the first range not known to be done; rewriting a
 * range writes the same bytes. Holes are never read or written when the target reads as zeros,
 * so time follows the allocated data, not the virtual size.
 */
import { stat } from 'node:fs/promises';
import { run } from '../process';
import { progressParser, VolumeFormat } from './qemu-img';

export interface Endpoint {
  path: string;
  format: VolumeFormat;
  /** O_DIRECT works where the endpoint lives (not on tmpfs, for instance). */
  directIo: boolean;
}

/** A source opened through an explicit blockdev (an import: a file or URL outside any repository). */
export interface SpecEndpoint {
  spec: Record<string, unknown>;
}

export type Source = Endpoint | SpecEndpoint;

const specArgs = (source: Source) => ('spec' in source ? [`json:${JSON.stringify(source.spec)}`] : ['-U', '-f', source.format, source.path]);

export interface Extent {
  start: number;
  length: number;
}

export interface CopyRange {
  start: number;
  end: number;
  /** Bytes of data inside the range (holes excluded). */
  dataBytes: number;
}

/** Range boundaries fall on 1 MiB: whole qcow2 clusters (64 KiB) and whole 2 MiB-friendly writes. */
const ALIGN = 2 ** 20;

interface MapEntry {
  start: number;
  length: number;
  zero: boolean;
  data: boolean;
  /** 0 where the top image of the chain holds the extent itself. */
  depth: number;
}

/** The extents of the image's content that are not known to read as zeros. */
export async function dataExtents(source: Source, signal?: AbortSignal): Promise<Extent[]> {
  const { stdout } = await run('qemu-img', ['map', '--output=json', ...specArgs(source)], { signal });
  const entries = JSON.parse(stdout) as MapEntry[];
  return entries.filter((e) => !e.zero).map((e) => ({ start: e.start, length: e.length }));
}

/** Bytes of data the top image of `source`'s chain holds itself (what a commit of it writes below). */
export async function topDataBytes(source: Endpoint, signal?: AbortSignal): Promise<number> {
  const { stdout } = await run('qemu-img', ['map', '--output=json', '-U', '-f', source.format, source.path], { signal });
  return (JSON.parse(stdout) as MapEntry[]).filter((e) => e.depth === 0 && e.data).reduce((sum, e) => sum + e.length, 0);
}

/**
 * Groups extents into ascending ranges of about `chunkBytes` of data each. Ranges hold whole
 * MiBs whatever `chunkBytes` is (a size measured from a pace is fractional, and qemu-img refuses
 * a fractional slice size), so every boundary is a whole byte offset.
 */
export function planRanges(extents: Extent[], virtualSize: number, chunkBytes: number): CopyRange[] {
  const chunk = Math.max(ALIGN, Math.floor(chunkBytes / ALIGN) * ALIGN);
  const aligned = extents
    .map((e) => ({ start: Math.floor(e.start / ALIGN) * ALIGN, end: Math.min(virtualSize, Math.ceil((e.start + e.length) / ALIGN) * ALIGN) }))
    .sort((a, b) => a.start - b.start);
  const merged: { start: number; end: number }[] = [];
  for (const e of aligned) {
    const last = merged[merged.length - 1];
    if (last && e.start <= last.end) last.end = Math.max(last.end, e.end);
    else merged.push({ ...e });
  }
  const ranges: CopyRange[] = [];
  let current: CopyRange | undefined;
  for (const extent of merged) {
    for (let start = extent.start; start < extent.end; ) {
      if (!current) current = { start, end: start, dataBytes: 0 };
      const take = Math.min(extent.end - start, chunk - current.dataBytes);
      current.end = start + take;
      current.dataBytes += take;
      start += take;
      if (current.dataBytes >= chunk) {
        ranges.push(current);
        current = undefined;
      }
    }
  }
  if (current) ranges.push(current);
  return ranges;
}

async function protocolDriver(path: string): Promise<'file' | 'host_device'> {
  return (await stat(path)).isBlockDevice() ? 'host_device' : 'file';
}

/** qemu's option syntax doubles commas inside values. */
const escape = (value: string) => value.replace(/,/g, ',,');

async function sliceSpec(endpoint: Source, range: CopyRange): Promise<string> {
  if ('spec' in endpoint) return `json:${JSON.stringify({ driver: 'raw', offset: range.start, size: range.end - range.start, file: endpoint.spec })}`;
  const protocol = `driver=${await protocolDriver(endpoint.path)},filename=${escape(endpoint.path)}`;
  const slice = `driver=raw,offset=${range.start},size=${range.end - range.start}`;
  if (endpoint.format === 'raw') return `${slice},${protocol.replace('driver=', 'file.driver=').replace('filename=', 'file.filename=')}`;
  return `${slice},file.driver=qcow2,${protocol.replace('driver=', 'file.file.driver=').replace('filename=', 'file.file.filename=')}`;
}

export interface CopyRangeOptions {
  /** The target reads as zeros where nothing was written (fresh qcow2, sparse or fallocated file). */
  targetIsZero: boolean;
  /** Bytes per second, to spare the storage for others; unlimited when absent. */
  rateLimit?: number;
  signal?: AbortSignal;
  /** Fraction (0..1) of this range done, as qemu-img reports it. */
  onProgress?: (fraction: number) => void;
}

export async function copyRange(source: Source, target: Endpoint, range: CopyRange, options: CopyRangeOptions): Promise<void> {
  const args = ['convert', '-p', '-n', '-W'];
  if (options.targetIsZero) args.push('--target-is-zero');
  if ('directIo' in source && source.directIo) args.push('-T', 'none');
  if (target.directIo) args.push('-t', 'none');
  if (options.rateLimit) args.push('-r', String(options.rateLimit));
  // A blockdev source is a json: filename (--image-opts takes key=value options only).
  if (!('spec' in source)) args.push('--image-opts');
  args.push(await sliceSpec(source, range), '--target-image-opts', await sliceSpec(target, range));
  await run('qemu-img', args, { signal: options.signal, onStdout: progressParser(options.onProgress) });
}
