/** What a copy may take: room on block storage before it writes, bandwidth while it does. */
import type { CopyJob } from './records';

const MiB = 2 ** 20;

/**
 * What a qcow2 volume of a `virtualSize`-byte disk needs to hold `dataBytes` of data, with its
 * metadata (block storage grows a volume to this before a writer needs it).
 */
export const roomForData = (dataBytes: number, virtualSize: number): number => Math.min(Math.ceil(dataBytes * 1.05) + 16 * MiB, virtualSize + 64 * MiB);

/** The bytes per second a copy job may move: its call's, else the host's, else unlimited. */
export const bandwidthOf = (job: Pick<CopyJob, 'bandwidth'>, settings: { copyRateLimit: number | null }): number | undefined => {
  const limit = job.bandwidth ?? settings.copyRateLimit ?? undefined;
  // qemu-img -r and QMP speed take whole bytes (DISKFLOW_COPY_RATE_LIMIT=1.3M is not one).
  return limit === undefined ? undefined : Math.max(1, Math.floor(limit));
};

/** No range larger than this, whatever the pace: a crash never redoes more. */
export const MAX_RANGE_BYTES = 64 * 2 ** 30;

/**
 * The data bytes of the next copy range at a measured pace of `perSecond` bytes/s: about
 * `copyRangeSeconds` of data, at least `copyChunkBytes`, at most MAX_RANGE_BYTES, and always a
 * whole number of MiBs. A pace is fractional (bytes over elapsed seconds); a range sized from it
 * without rounding gave qemu-img a fractional slice size, which it refuses, and the step retried
 * forever (issue 16).
 */
export function rangeBytesForPace(perSecond: number, settings: { copyChunkBytes: number; copyRangeSeconds: number }): number {
  const wanted = Math.min(MAX_RANGE_BYTES, Math.max(settings.copyChunkBytes, Number.isFinite(perSecond) ? perSecond * settings.copyRangeSeconds : 0));
  return Math.max(MiB, Math.floor(wanted / MiB) * MiB);
}
