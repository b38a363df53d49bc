/**
 * An import's source, probed safely: a file on this host or an http(s) URL. diskflow reads the
 * first bytes itself to tell the format (magic) and, for qcow2, parses the header
 * (qemu/qcow2-header.ts) before qemu opens anything: a source naming a backing file or an
 * external data file is refused (INVALID_ARGUMENT), and so is a VMDK descriptor (its extents are
 * other files). qemu then only ever opens the source through an explicit blockdev (json:
 * pseudo-protocol) with `backing: null`, so no name inside the source is followed; what
 * `qemu-img info` reports is checked once more (a VMDK's parentFileNameHint, its extents).
 *
 * HTTP goes through qemu's curl driver (Debian qemu-block-extra), which reads by byte ranges:
 * the same range-by-range resumable copy as between repositories, zero ranges skipped from the
 * source's own map, and qcow2/vmdk/vhdx/vdi converted without a local temporary copy. A server
 * that does not answer ranges is refused.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { DiskflowError } from '../../api/errors';
import type { SourceFormat } from '../images/records';
import { run } from '../process';
import { FIRST_HEAD_BYTES, MAX_HEAD_BYTES, parseQcow2Head } from '../qemu/qcow2-header';

export type DeclaredFormat = SourceFormat | 'auto';

const isUrl = (location: string) => /^https?:\/\//i.test(location);
const refuse = (why: string) => new DiskflowError('INVALID_ARGUMENT', `source: ${why}`);
/** How long one HTTP request of a probe may take. */
const HTTP_TIMEOUT_MS = 30_000;

/** The blockdev qemu opens the source through: never a name from inside it. */
export function sourceBlockdev(location: string, format: SourceFormat): Record<string, unknown> {
  const file = isUrl(location)
    ? { driver: location.toLowerCase().startsWith('https:') ? 'https' : 'http', url: location, readahead: 4 * 2 ** 20, timeout: 60 }
    : { driver: 'file', filename: location, locking: 'off' };
  const spec: Record<string, unknown> = { driver: format, file };
  if (format === 'qcow2' || format === 'vmdk') spec.backing = null;
  return spec;
}

export const jsonSpec = (spec: Record<string, unknown>) => `json:${JSON.stringify(spec)}`;

/** The source's first `bytes` bytes (fewer at its end); over HTTP, one Range request. */
async function readHead(location: string, bytes: number): Promise<Buffer> {
  if (!isUrl(location)) {
    const handle = await open(location, 'r');
    try {
      const buffer = Buffer.alloc(bytes);
      const { bytesRead } = await handle.read(buffer, 0, bytes, 0);
      return buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }
  const response = await fetch(location, { headers: { Range: `bytes=0-${bytes - 1}` }, signal: AbortSignal.timeout(HTTP_TIMEOUT_MS), redirect: 'error' });
  if (response.status !== 206) {
    await response.body?.cancel();
    throw refuse(`${location} answered ${response.status} to a byte-range request; the server must answer ranges (206)`);
  }
  return Buffer.from(await response.arrayBuffer()).subarray(0, bytes);
}

/**
 * What identifies the source's content now: its size, and its mtime and inode (a file) or its
 * ETag and Last-Modified (HTTP). An import that finds another identity starts over.
 */
export async function sourceIdentity(location: string): Promise<{ identity: string; bytes: number }> {
  if (!isUrl(location)) {
    let s;
    try {
      s = await stat(location);
    } catch (error) {
      throw refuse(`${location}: ${(error as Error).message}`);
    }
    if (!s.isFile()) throw refuse(`${location} is not a regular file`);
    return { identity: `file:${s.size}:${s.mtimeMs}:${s.ino}`, bytes: s.size };
  }
  let response;
  try {
    response = await fetch(location, { headers: { Range: 'bytes=0-0' }, signal: AbortSignal.timeout(HTTP_TIMEOUT_MS), redirect: 'error' });
  } catch (error) {
    throw new DiskflowError('STORAGE_ERROR', `source ${location}: ${(error as Error).message}`);
  }
  await response.body?.cancel();
  if (response.status !== 206) throw refuse(`${location} answered ${response.status} to a byte-range request; the server must answer ranges (206)`);
  const total = /\/(\d+)$/.exec(response.headers.get('content-range') ?? '');
  if (!total) throw refuse(`${location} did not say its size (Content-Range)`);
  const bytes = Number(total[1]);
  return { identity: `http:${bytes}:${response.headers.get('etag') ?? ''}:${response.headers.get('last-modified') ?? ''}`, bytes };
}

/** The format the magic says; a file that is none of the others is raw. */
function formatOfHead(head: Buffer): SourceFormat {
  if (head.length >= 4 && head.readUInt32BE(0) === 0x514649fb) return 'qcow2';
  if (head.subarray(0, 4).toString('latin1') === 'KDMV') return 'vmdk';
  if (head.subarray(0, 8).toString('latin1') === 'vhdxfile') return 'vhdx';
  if (head.length >= 68 && head.readUInt32LE(64) === 0xbeda107f) return 'vdi';
  return 'raw';
}

const looksLikeVmdkDescriptor = (head: Buffer) => /^\s*#\s*Disk DescriptorFile/i.test(head.subarray(0, 512).toString('latin1')) || head.subarray(0, 4).toString('latin1') === 'COWD';

export interface ProbedSource {
  format: SourceFormat;
  virtualSize: number;
  identity: string;
  /** Bytes of the source file itself (what a checksum reads). */
  bytes: number;
}

interface QemuInfo {
  'virtual-size': number;
  format: string;
  'backing-filename'?: string;
  'format-specific'?: { type: string; data?: { 'data-file'?: string; extents?: { filename: string }[]; encrypted?: boolean } };
  encrypted?: boolean;
}

/** Probes the source: format, virtual size, identity. INVALID_ARGUMENT for what is refused. */
export async function probeSource(location: string, declared: DeclaredFormat, signal?: AbortSignal): Promise<ProbedSource> {
  const { identity, bytes } = await sourceIdentity(location);
  if (bytes === 0) throw refuse(`${location} is empty`);
  let head = await readHead(location, Math.min(bytes, FIRST_HEAD_BYTES));
  const magic = formatOfHead(head);
  const format = declared === 'auto' ? magic : declared;
  if (format === 'qcow2') {
    let reading = parseQcow2Head(head);
    while ('needBytes' in reading && reading.needBytes <= Math.min(MAX_HEAD_BYTES, bytes) && reading.needBytes > head.length) {
      head = await readHead(location, reading.needBytes);
      reading = parseQcow2Head(head);
    }
    if ('notQcow2' in reading) throw refuse(`${location} is not a qcow2 image`);
    if ('invalid' in reading) throw refuse(`${location} is not a valid qcow2 image (${reading.invalid})`);
    if ('needBytes' in reading) throw refuse(`${location} has a qcow2 header longer than its first cluster`);
    const h = reading.qcow2;
    if (h.backingFile !== null) throw refuse(`${location} names a backing file (${JSON.stringify(h.backingFile)}); diskflow imports standalone images only (flatten it first with qemu-img convert)`);
    if (h.dataFile !== null) throw refuse(`${location} names an external data file${h.dataFile ? ` (${JSON.stringify(h.dataFile)})` : ''}; diskflow imports standalone images only`);
    if (h.encrypted) throw refuse(`${location} is encrypted`);
  }
  if (format === 'vmdk' && (magic !== 'vmdk' || looksLikeVmdkDescriptor(head))) {
    throw refuse(`${location} is not a single-file (monolithic sparse or stream-optimized) VMDK: a descriptor names its extents as other files`);
  }
  if (format !== 'raw' && format !== magic) throw refuse(`${location} is not a ${format} image (its header says ${magic})`);

  let info: QemuInfo;
  try {
    const { stdout } = await run('qemu-img', ['info', '--output=json', jsonSpec(sourceBlockdev(location, format))], { signal });
    info = JSON.parse(stdout) as QemuInfo;
  } catch (error) {
    if (error instanceof DiskflowError && error.code === 'NO_SPACE') throw error;
    throw refuse(`qemu-img cannot read ${location} as ${format}: ${(error as Error).message}`);
  }
  if (info['backing-filename']) throw refuse(`${location} names a backing file (${JSON.stringify(info['backing-filename'])}); diskflow imports standalone images only`);
  const data = info['format-specific']?.data;
  if (data?.['data-file']) throw refuse(`${location} names an external data file (${JSON.stringify(data['data-file'])})`);
  if (data?.extents && data.extents.length !== 1) throw refuse(`${location} has ${data.extents.length} extents; only single-file VMDKs are imported`);
  if (info.encrypted || data?.encrypted) throw refuse(`${location} is encrypted`);
  const virtualSize = info['virtual-size'];
  if (!Number.isSafeInteger(virtualSize) || virtualSize <= 0) throw refuse(`${location} has no usable virtual size`);
  return { format, virtualSize, identity, bytes };
}

export interface MeasuredRoom {
  requiredBytes: number;
  fullyAllocatedBytes: number;
}

/** `qemu-img measure` of a blockdev into a new volume of `targetFormat` (raw preallocated: all of it). */
export async function measureSpec(spec: Record<string, unknown>, targetFormat: 'raw' | 'qcow2', virtualSize: number, preallocate: boolean, signal?: AbortSignal): Promise<MeasuredRoom> {
  const { stdout } = await run('qemu-img', ['measure', '--output=json', '-O', targetFormat, jsonSpec(spec)], { signal });
  const m = JSON.parse(stdout) as { required: number; 'fully-allocated': number };
  const required = preallocate ? Math.max(m['fully-allocated'], virtualSize) : m.required;
  return { requiredBytes: required, fullyAllocatedBytes: m['fully-allocated'] };
}

/** SHA-256 of the source's bytes, streamed (a file, or one GET); `onBytes` as they are read. */
export async function sourceSha256(location: string, signal: AbortSignal, onBytes: (done: number) => void): Promise<string> {
  const hash = createHash('sha256');
  let done = 0;
  if (!isUrl(location)) {
    for await (const chunk of createReadStream(location, { highWaterMark: 4 * 2 ** 20, signal })) {
      hash.update(chunk as Buffer);
      done += (chunk as Buffer).length;
      onBytes(done);
    }
    return hash.digest('hex');
  }
  const response = await fetch(location, { signal, redirect: 'error' });
  if (!response.ok || !response.body) throw new DiskflowError('STORAGE_ERROR', `source ${location} answered ${response.status}`);
  for await (const chunk of response.body) {
    hash.update(chunk);
    done += chunk.length;
    onBytes(done);
  }
  return hash.digest('hex');
}
