/** Fix data has one encoding and the key that signs it cannot be weak: FIX_INVALID, or a worker that does not start. */
import { mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openFix, signFix } from '../../activities/fixes/fix-data';
import type { FixPlan } from '../../activities/fixes/plans';
import { loadFixKey } from '../../workers/fix-key';

const REPO = '00000000-0000-4000-8000-0000000000aa';
const IMAGE = '00000000-0000-4000-8000-0000000000bb';
const key = Buffer.alloc(32, 7);
const plan: FixPlan = { type: 'mend', imageId: IMAGE, copyFrom: null, images: { [IMAGE]: 3 } };
const data = signFix(plan, REPO, key);

const dirs: string[] = [];
const home = () => {
  const dir = mkdtempSync(join(tmpdir(), 'diskflow-key-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('fix data', () => {
  it('opens as it was signed', () => {
    expect(openFix(data, REPO, key)).toEqual(plan);
  });

  it.each([
    ['trailing junk', `${data}!!`],
    ['a trailing newline', `${data}\n`],
    ['base64 padding', `${data.split('.')[0]}=.${data.split('.')[1]}`],
    ['a standard base64 character', data.replace('.', '+.')],
    ['a third part', `${data}.x`],
    ['a signature with its unused bits set', `${data.slice(0, -1)}${String.fromCharCode(data.charCodeAt(data.length - 1) + 1)}`],
    ['another key', signFix(plan, REPO, Buffer.alloc(32, 8))],
    ['another repository', signFix(plan, '00000000-0000-4000-8000-0000000000cc', key)],
    ['a plan naming a path', signFix({ ...plan, imageId: '../../etc' } as FixPlan, REPO, key)],
  ])('with %s is FIX_INVALID', (_what, altered) => {
    expect(() => openFix(altered, REPO, key)).toThrow(expect.objectContaining({ code: 'FIX_INVALID' }));
  });
});

describe('the fix key', () => {
  it('DISKFLOW_FIX_KEY of fewer than 32 bytes stops the worker, saying so', async () => {
    for (const value of ['', 'x', 'a'.repeat(31)]) {
      await expect(loadFixKey(home(), { DISKFLOW_FIX_KEY: value })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('DISKFLOW_FIX_KEY holds') });
    }
    expect((await loadFixKey(home(), { DISKFLOW_FIX_KEY: 'k'.repeat(32) })).shared).toBe(true);
  });

  it('a key file that is empty, short, not base64 or a link stops the worker with a message naming the file', async () => {
    for (const [content, why] of [['', 'holds a fix key of 0 bytes'], [Buffer.alloc(1).toString('base64'), 'holds a fix key of 1 bytes'], ['not base64!', 'does not hold a fix key']]) {
      const dir = home();
      writeFileSync(join(dir, 'fix.key'), content);
      await expect(loadFixKey(dir, {})).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining(`${join(dir, 'fix.key')} ${why}`) });
    }
    const linked = home();
    writeFileSync(join(linked, 'elsewhere'), Buffer.alloc(32).toString('base64'));
    symlinkSync(join(linked, 'elsewhere'), join(linked, 'fix.key'));
    await expect(loadFixKey(linked, {})).rejects.toMatchObject({ message: expect.stringContaining('symbolic link') });
  });

  it('a new key file holds 32 random bytes, readable by its owner only, and is the key the next start reads', async () => {
    const dir = home();
    const made = await loadFixKey(dir, {});
    expect(made.key.length).toBe(32);
    expect(statSync(join(dir, 'fix.key')).mode & 0o777).toBe(0o600);
    expect(Buffer.from(readFileSync(join(dir, 'fix.key'), 'utf8').trim(), 'base64')).toEqual(made.key);
    expect((await loadFixKey(dir, {})).key).toEqual(made.key);
  });
});
