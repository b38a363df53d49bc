import { describe, expect, it } from 'vitest';
import { bandwidthOf, MAX_RANGE_BYTES, rangeBytesForPace } from '../../activities/images/copy-limits';
import type { CopyJob } from '../../activities/images/records';
import { planRanges } from '../../activities/qemu/convert';

const MiB = 2 ** 20;

describe('planning a resumable copy', () => {
  it('groups data extents into ascending ranges of about the chunk size, each ending once it holds a chunk of data', () => {
    const extents = [
      { start: 0, length: 8 * MiB },
      { start: 100 * MiB, length: 8 * MiB },
      { start: 200 * MiB, length: 4 * MiB },
    ];
    const ranges = planRanges(extents, 256 * MiB, 10 * MiB);
    // Holes inside a range are skipped by qemu-img itself; ranges only bound how much is redone after a crash.
    expect(ranges).toEqual([
      { start: 0, end: 102 * MiB, dataBytes: 10 * MiB },
      { start: 102 * MiB, end: 204 * MiB, dataBytes: 10 * MiB },
    ]);
  });

  it('aligns ranges to 1 MiB and never runs past the end of the disk', () => {
    const ranges = planRanges([{ start: 3 * MiB + 512, length: 4096 }], 3 * MiB + 65536, 64 * MiB);
    expect(ranges).toEqual([{ start: 3 * MiB, end: 3 * MiB + 65536, dataBytes: 65536 }]);
  });

  it('splits one large extent into chunk-sized ranges', () => {
    const ranges = planRanges([{ start: 0, length: 10 * MiB }], 10 * MiB, 4 * MiB);
    expect(ranges).toEqual([
      { start: 0, end: 4 * MiB, dataBytes: 4 * MiB },
      { start: 4 * MiB, end: 8 * MiB, dataBytes: 4 * MiB },
      { start: 8 * MiB, end: 10 * MiB, dataBytes: 2 * MiB },
    ]);
  });

  it('a chunk sized from a measured pace (a fractional byte count) still gives whole-MiB ranges qemu-img accepts', () => {
    const ranges = planRanges([{ start: 0, length: 3 * 2 ** 30 }], 3 * 2 ** 30, 1356933936.560091);
    expect(ranges.length).toBe(3);
    for (const range of ranges) {
      expect(Number.isInteger(range.start) && Number.isInteger(range.end) && Number.isInteger(range.dataBytes)).toBe(true);
      expect(range.start % MiB).toBe(0);
    }
    expect(ranges[0].dataBytes).toBe(1294 * MiB);
    expect(ranges.at(-1)!.end).toBe(3 * 2 ** 30);
  });

  it('an image with no data needs no range at all', () => {
    expect(planRanges([], 2 ** 40, 2 ** 30)).toEqual([]);
  });
});

describe('sizing a copy range from the measured pace', () => {
  const defaults = { copyChunkBytes: 2 ** 30, copyRangeSeconds: 10 };

  it('a fractional pace gives a whole number of MiBs (qemu-img refuses a fractional slice size)', () => {
    // The pace of the stuck copy of issue 16: ten seconds of it is size=1356933936.560091.
    const bytes = rangeBytesForPace(1356933936.560091 / 10, { copyChunkBytes: 64 * MiB, copyRangeSeconds: 10 });
    expect(Number.isInteger(bytes)).toBe(true);
    expect(bytes % MiB).toBe(0);
    expect(bytes).toBe(1294 * MiB);
  });

  it('at default settings, any pace above ~107 MB/s gives whole MiBs too', () => {
    for (const pace of [107.4e6 + 0.3, 123456789.123, 2.5e9 / 3, 1e9 / 7]) {
      const bytes = rangeBytesForPace(pace, defaults);
      expect(bytes % MiB, `pace ${pace}`).toBe(0);
      expect(bytes).toBeGreaterThanOrEqual(defaults.copyChunkBytes);
      // and so is every range planned from it, whole bytes to qemu-img
      for (const range of planRanges([{ start: 0, length: 40 * 2 ** 30 }], 40 * 2 ** 30, bytes)) {
        expect((range.end - range.start) % MiB).toBe(0);
        expect(range.start % MiB).toBe(0);
      }
    }
  });

  it('stays within the chunk floor and the range ceiling, and a pace not yet measured gives the chunk', () => {
    expect(rangeBytesForPace(0, defaults)).toBe(2 ** 30);
    expect(rangeBytesForPace(Number.NaN, defaults)).toBe(2 ** 30);
    expect(rangeBytesForPace(1e15, defaults)).toBe(MAX_RANGE_BYTES);
    expect(rangeBytesForPace(0, { copyChunkBytes: 1.5 * MiB + 3, copyRangeSeconds: 10 })).toBe(MiB);
    expect(rangeBytesForPace(0, { copyChunkBytes: 100, copyRangeSeconds: 10 })).toBe(MiB);
  });

  it('a fractional rate limit (DISKFLOW_COPY_RATE_LIMIT=1.3M) reaches qemu-img as whole bytes per second', () => {
    const job = { bandwidth: null } as unknown as CopyJob;
    expect(bandwidthOf(job, { copyRateLimit: 1.3 * MiB })).toBe(1363148);
    expect(bandwidthOf(job, { copyRateLimit: null })).toBeUndefined();
    expect(bandwidthOf({ bandwidth: 5000 } as unknown as CopyJob, { copyRateLimit: 1.3 * MiB })).toBe(5000);
  });
});
