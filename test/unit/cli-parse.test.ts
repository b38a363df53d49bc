import { describe, expect, it } from 'vitest';
import { parseHint, parseParam, parseSize } from '../../cli/parse';

describe('command-line values', () => {
  it.each([
    ['4096', 4096],
    ['512M', 512 * 2 ** 20],
    ['10G', 10 * 2 ** 30],
    ['10GiB', 10 * 2 ** 30],
    ['1.5T', 1.5 * 2 ** 40],
    ['2p', 2 * 2 ** 50],
    ['-5G', -5 * 2 ** 30],
  ])('size %s is %d bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(['', 'G', '5X', '1e3', '10 apples'])('size %j is refused with INVALID_ARGUMENT', (text) => {
    expect(() => parseSize(text)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('--param takes a JSON value where one parses, a string otherwise, and accumulates', () => {
    let params = parseParam('path=/srv/images');
    params = parseParam('devices=["/dev/loop3"]', params);
    params = parseParam('retries=3', params);
    params = parseParam('opts=a=b', params);
    expect(params).toEqual({ path: '/srv/images', devices: ['/dev/loop3'], retries: 3, opts: 'a=b' });
  });

  it('--param without a key is refused', () => {
    expect(() => parseParam('=x')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => parseParam('novalue')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('--hint is IMAGE=REPO', () => {
    expect(parseHint('a=b', { c: 'd' })).toEqual({ c: 'd', a: 'b' });
    expect(() => parseHint('a=b=c')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});
