/**
 * The qcow2 header of a volume, read by diskflow itself before qemu ever opens the file
 * (docs/interop/qcow2.txt of QEMU). A qcow2 file names its backing file, and may name an
 * external data file, by any path or protocol (`/etc/shadow`, `../other/volume`, `json:{...}`,
 * `nbd://...`): qemu follows those names when it opens the file. A repository's files are
 * untrusted, so a qcow2 volume is opened only if its header names exactly the backing volume
 * its records say (or one further down the same recorded chain, as a merge leaves it between
 * relinking and updating the record), with the format they say, and no external data file.
 */

const MAGIC = 0x514649fb; // 'QFI\xfb'
const EXT_END = 0;
const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_DATA_FILE = 0x44415441;
const INCOMPAT_DATA_FILE = 1n << 2n;
/** Header, extensions and backing file name all lie in the first cluster; qemu allows clusters up to 2 MiB. */
export const MAX_HEAD_BYTES = 2 * 1024 * 1024;
/** What is read first: qemu's own files need less (header, extensions and backing name take a few hundred bytes). */
export const FIRST_HEAD_BYTES = 4096;

export interface Qcow2Header {
  version: number;
  virtualSize: number;
  backingFile: string | null;
  backingFormat: string | null;
  dataFile: string | null;
  encrypted: boolean;
}

export type HeadReading = { qcow2: Qcow2Header } | { notQcow2: true } | { needBytes: number } | { invalid: string };

/** Parses the start of a file; `needBytes` when the header reaches beyond `head` (read that many and parse again). */
export function parseQcow2Head(head: Buffer): HeadReading {
  if (head.length < 4 || head.readUInt32BE(0) !== MAGIC) return { notQcow2: true };
  if (head.length < 104) return { needBytes: 104 };
  const version = head.readUInt32BE(4);
  if (version !== 2 && version !== 3) return { invalid: `qcow2 version ${version}` };
  const clusterBits = head.readUInt32BE(20);
  if (clusterBits < 9 || clusterBits > 21) return { invalid: `cluster bits ${clusterBits}` };
  const clusterSize = 2 ** clusterBits;
  const backingOffset = Number(head.readBigUInt64BE(8));
  const backingSize = head.readUInt32BE(16);
  const encrypted = head.readUInt32BE(32) !== 0;
  const incompatible = version === 3 ? head.readBigUInt64BE(72) : 0n;
  const headerLength = version === 3 ? head.readUInt32BE(100) : 72;
  if (headerLength < (version === 3 ? 104 : 72) || headerLength > clusterSize) return { invalid: `header length ${headerLength}` };

  let backingFormat: string | null = null;
  let dataFile: string | null = (incompatible & INCOMPAT_DATA_FILE) !== 0n ? '' : null;
  for (let at = headerLength; ; ) {
    if (at + 8 > clusterSize) return { invalid: 'header extensions run past the first cluster' };
    if (at + 8 > head.length) return { needBytes: at + 8 };
    const type = head.readUInt32BE(at);
    const length = head.readUInt32BE(at + 4);
    if (type === EXT_END) break;
    const end = at + 8 + length;
    if (end > clusterSize) return { invalid: 'a header extension runs past the first cluster' };
    if (end > head.length) return { needBytes: end };
    const data = head.subarray(at + 8, end);
    if (type === EXT_BACKING_FORMAT) backingFormat = data.toString('latin1');
    if (type === EXT_DATA_FILE) dataFile = data.toString('latin1');
    at = at + 8 + Math.ceil(length / 8) * 8;
  }

  let backingFile: string | null = null;
  if (backingOffset !== 0) {
    if (backingSize > 1023) return { invalid: `a backing file name of ${backingSize} bytes` };
    if (backingOffset + backingSize > clusterSize) return { invalid: 'the backing file name lies past the first cluster' };
    if (backingOffset + backingSize > head.length) return { needBytes: backingOffset + backingSize };
    backingFile = head.subarray(backingOffset, backingOffset + backingSize).toString('latin1');
  }
  return { qcow2: { version, virtualSize: Number(head.readBigUInt64BE(24)), backingFile, backingFormat, dataFile, encrypted } };
}

/** A backing volume a qcow2 volume may name: as qcow2 records it, and the format of that volume. */
export interface AllowedBacking {
  name: string;
  format: string;
}

/**
 * Why a qcow2 volume must not be opened, or null when its header names only what its records
 * say: `allowed` is its recorded chain below it (its parent first), empty for a volume with none.
 */
export function foreignReason(header: Qcow2Header, allowed: readonly AllowedBacking[]): string | null {
  if (header.dataFile !== null) return `its qcow2 header names an external data file${header.dataFile ? ` "${header.dataFile}"` : ''}`;
  if (header.encrypted) return 'its qcow2 header says it is encrypted';
  if (allowed.length === 0) {
    return header.backingFile === null ? null : `its qcow2 header names backing file "${header.backingFile}" where its records say it has none`;
  }
  if (header.backingFile === null) return `its qcow2 header names no backing file where its records say "${allowed[0].name}"`;
  const match = allowed.find((a) => a.name === header.backingFile);
  if (!match) return `its qcow2 header names backing file "${header.backingFile}" where its records say "${allowed[0].name}"`;
  if (header.backingFormat !== null && header.backingFormat !== match.format) {
    return `its qcow2 header says its backing file "${header.backingFile}" is ${header.backingFormat} where its records say ${match.format}`;
  }
  return null;
}

/** The next read a header needs after `reading` of `bytes`, or the final reading. */
function next(reading: HeadReading, bytes: number): { bytes: number } | HeadReading {
  if (!('needBytes' in reading)) return reading;
  if (reading.needBytes <= bytes) return { invalid: 'the file ends inside its header' };
  return { bytes: Math.min(MAX_HEAD_BYTES, Math.ceil(reading.needBytes / 4096) * 4096) };
}

// At most four reads: the first, then up to the header's end, the extensions' end, the backing name's end.
const MAX_READS = 4;

/** Reads a qcow2 head with `read(bytes)` (the first `bytes` of the volume), as far as the header needs. */
export async function readQcow2Header(read: (bytes: number) => Promise<Buffer>): Promise<HeadReading> {
  for (let bytes = FIRST_HEAD_BYTES, attempt = 0; attempt < MAX_READS; attempt++) {
    const step = next(parseQcow2Head(await read(bytes)), bytes);
    if (!('bytes' in step)) return step;
    bytes = step.bytes;
  }
  return { invalid: 'its header could not be read' };
}

/** readQcow2Header with a synchronous `read` (a check reading thousands of heads in batches). */
export function readQcow2HeaderSync(read: (bytes: number) => Buffer): HeadReading {
  for (let bytes = FIRST_HEAD_BYTES, attempt = 0; attempt < MAX_READS; attempt++) {
    const step = next(parseQcow2Head(read(bytes)), bytes);
    if (!('bytes' in step)) return step;
    bytes = step.bytes;
  }
  return { invalid: 'its header could not be read' };
}
