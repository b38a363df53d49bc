import { describe, expect, it } from 'vitest';
import type { Fix } from '../../api/image-status';
import { fitAnswer } from '../../activities/answer-size';

const fix = (n: number): Fix => ({ type: 'clean', imageIds: [`image-${n}`], description: `fix ${n}`, bytes: n, data: 'x'.repeat(100) });

describe('the answer of a check', () => {
  it('keeps the first fixes whose JSON fits in the budget, in order', () => {
    const fixes = Array.from({ length: 10 }, (_, n) => fix(n));
    const budget = JSON.stringify(fixes.slice(0, 4)).length;
    const answer = fitAnswer(fixes, budget);
    expect(answer).toEqual(fixes.slice(0, 4));
    expect(JSON.stringify(answer).length).toBeLessThanOrEqual(budget);
    expect(fitAnswer(fixes, budget - 1)).toEqual(fixes.slice(0, 3));
  });

  it('keeps everything that fits, and nothing when not even one fix fits', () => {
    const fixes = [fix(1), fix(2)];
    expect(fitAnswer(fixes, 10 * 2 ** 20)).toEqual(fixes);
    expect(fitAnswer(fixes, 50)).toEqual([]);
  });
});

describe('a page of a listing', () => {
  it('holds at least one item, however large, so that paging always moves on', () => {
    const big = { userData: 'x'.repeat(1000) };
    expect(fitAnswer([big, big], 100, { atLeastOne: true })).toEqual([big]);
    expect(fitAnswer([big, big], 100)).toEqual([]);
  });
});
