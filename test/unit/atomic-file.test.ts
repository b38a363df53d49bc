import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createFileExclusive, readJson, removeFileDurably, writeFileAtomic } from '../../activities/repository/atomic-file';

const dirs: string[] = [];
const dir = () => {
  const d = mkdtempSync(join(tmpdir(), 'atomic-'));
  dirs.push(d);
  return d;
};
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('atomic files', () => {
  it('a replaced file holds the new content and no temporary file is left behind', async () => {
    const d = dir();
    writeFileSync(join(d, 'a.json'), '{"v":1}');
    await writeFileAtomic(join(d, 'a.json'), '{"v":2}');
    expect(readFileSync(join(d, 'a.json'), 'utf8')).toBe('{"v":2}');
    expect(readdirSync(d)).toEqual(['a.json']);
  });

  it('exclusive creation has exactly one winner among racers, and the file is whole', async () => {
    const d = dir();
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => createFileExclusive(join(d, 'x.json'), JSON.stringify({ i }))));
    expect(results.filter(Boolean)).toHaveLength(1);
    const winner = results.indexOf(true);
    expect(await readJson(join(d, 'x.json'))).toEqual({ i: winner });
    expect(readdirSync(d)).toEqual(['x.json']);
  });

  it('reading a missing file gives null, and removing one is not an error', async () => {
    const d = dir();
    expect(await readJson(join(d, 'none.json'))).toBeNull();
    expect(await removeFileDurably(join(d, 'none.json'))).toBe(false);
  });
});
