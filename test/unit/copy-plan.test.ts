import { describe, expect, it } from 'vitest';
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

  it('a chunk sized from a measured pace (any number of bytes) still gives whole ranges on 1 MiB bounds', () => {
    // 4.2 MiB/s for 10 s: a chunk of 44040192.5 bytes, as a slow or rate-limited host measures.
    const ranges = planRanges([{ start: 0, length: 100 * MiB }], 100 * MiB, 4.2 * MiB * 10 + 0.5);
    expect(ranges.length).toBe(3);
    for (const r of ranges) {
      expect(Number.isInteger(r.start / MiB) && Number.isInteger(r.end / MiB), JSON.stringify(r)).toBe(true);
      expect(r.dataBytes).toBe(r.end - r.start);
    }
    expect(ranges.map((r) => r.dataBytes)).toEqual([42 * MiB, 42 * MiB, 16 * MiB]);
  });

  it('an image with no data needs no range at all', () => {
    expect(planRanges([], 2 ** 40, 2 ** 30)).toEqual([]);
  });
});
