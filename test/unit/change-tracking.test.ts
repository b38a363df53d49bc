import { describe, expect, it } from 'vitest';
import { bitmapName, bitmapOwner, judgeTracking, SourceNow } from '../../activities/images/change-tracking';
import type { Bitmap } from '../../activities/qemu/bitmaps';
import type { ChangeTracking } from '../../activities/images/records';

const SIZE = 2 ** 30;
const source: SourceNow = { repoUuid: 'r1', imageId: 'disk', volumeId: 'v1', contentEpoch: 3, chainEpoch: 1, size: SIZE };
const tracking: ChangeTracking = { repoUuid: 'r1', imageId: 'disk', volumeId: 'v1', bitmap: 'diskflow-copy1', contentEpoch: 3, chainEpoch: 1 };
const good: Bitmap = { name: 'diskflow-copy1', granularity: 65536, flags: ['auto'] };

describe('change tracking is trusted only when it covers every change since the base was copied', () => {
  it('trusts a record matching the source, with its bitmap present, enabled and consistent', () => {
    expect(judgeTracking(tracking, SIZE, source, [good])).toEqual({ trusted: true, bitmap: 'diskflow-copy1' });
  });

  it('trusts it after a VM ran on the disk (prepare moves contentEpoch; the bitmap counted the writes)', () => {
    expect(judgeTracking(tracking, SIZE, { ...source, contentEpoch: 5 }, [good])).toEqual({ trusted: true, bitmap: 'diskflow-copy1' });
  });

  const cases: [string, ChangeTracking | null, number, SourceNow, Bitmap[], RegExp][] = [
    ['no record', null, SIZE, source, [good], /no change tracking/],
    ['a record of another image', { ...tracking, imageId: 'other' }, SIZE, source, [good], /copy of image other/],
    ['a record of the same id in another repository', { ...tracking, repoUuid: 'r9' }, SIZE, source, [good], /copy of image/],
    ['a disk moved onto a new volume (snapshot)', tracking, SIZE, { ...source, volumeId: 'v2' }, [good], /another volume/],
    ['a chain replaced (chainEpoch moved)', tracking, SIZE, { ...source, chainEpoch: 2 }, [good], /chainEpoch/],
    ['a record from before chainEpoch, whose contentEpoch moved', { ...tracking, chainEpoch: undefined }, SIZE, { ...source, contentEpoch: 4 }, [good], /replaced/],
    ['a resized disk', tracking, SIZE / 2, source, [good], /resized/],
    ['a missing bitmap', tracking, SIZE, source, [{ ...good, name: 'diskflow-copy2' }], /missing/],
    ['an inconsistent bitmap', tracking, SIZE, source, [{ ...good, flags: ['in-use', 'auto'] }], /inconsistent/],
    ['a disabled bitmap', tracking, SIZE, source, [{ ...good, flags: [] }], /disabled/],
  ];
  it.each(cases)('falls back on %s', (_case, record, baseSize, now, bitmaps, reason) => {
    const verdict = judgeTracking(record, baseSize, now, bitmaps);
    expect(verdict.trusted).toBe(false);
    expect(!verdict.trusted && verdict.reason).toMatch(reason);
  });
});

describe('bitmap names', () => {
  it('name the repository and the copy, and are read back; other bitmaps belong to nobody', () => {
    const repoUuid = '0b7e2a52-8f55-4f7e-9a53-4f1f4c1e2a10';
    const imageId = 'c0a8f1de-2b3c-4d5e-8f90-1a2b3c4d5e6f';
    expect(bitmapOwner(bitmapName(repoUuid, imageId))).toEqual({ repoUuid, imageId });
    expect(bitmapOwner('backup-2024')).toBeNull();
    expect(bitmapOwner(`diskflow-${imageId}`)).toBeNull();
  });
});
