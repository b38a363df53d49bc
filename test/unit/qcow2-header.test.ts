/**
 * diskflow reads a qcow2 volume's header itself before qemu opens it (a repository's files are
 * untrusted): real files made by qemu-img, with the names a hostile repository could plant.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { foreignReason, parseQcow2Head, Qcow2Header, readQcow2Header } from '../../activities/qemu/qcow2-header';

const dir = mkdtempSync(join(tmpdir(), 'diskflow-qcow2-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `qemu-img create` of a qcow2 file in the scratch directory; `-u`: the backing is not opened (it may not exist). */
function qcow2(name: string, options: string[] = []): string {
  const path = join(dir, name);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', ...options, path, '1M'], { cwd: dir });
  return path;
}

const header = async (path: string): Promise<Qcow2Header> => {
  const reading = await readQcow2Header(async (bytes) => readFileSync(path).subarray(0, bytes));
  if (!('qcow2' in reading)) throw new Error(`not read: ${JSON.stringify(reading)}`);
  return reading.qcow2;
};

const PARENT = '00000000-0000-4000-8000-000000000001';
const chain = [{ name: `${PARENT}.qcow2`, format: 'qcow2' }];

describe('qcow2 headers, read before qemu opens a volume', () => {
  it('a volume qemu-img made as diskflow makes them names exactly its recorded backing volume', async () => {
    const base = await header(qcow2(`${PARENT}.qcow2`));
    expect(base).toMatchObject({ backingFile: null, dataFile: null, encrypted: false, virtualSize: 2 ** 20 });
    expect(foreignReason(base, [])).toBeNull();
    const overlay = await header(qcow2('overlay.qcow2', ['-b', `${PARENT}.qcow2`, '-F', 'qcow2']));
    expect(overlay).toMatchObject({ backingFile: `${PARENT}.qcow2`, backingFormat: 'qcow2' });
    expect(foreignReason(overlay, chain)).toBeNull();
    // qcow2 v2 (no header length field, extensions at 72) reads the same.
    expect(await header(qcow2('v2.qcow2', ['-o', 'compat=0.10', '-u', '-b', `${PARENT}.qcow2`, '-F', 'qcow2']))).toMatchObject({ version: 2, backingFile: `${PARENT}.qcow2` });
  });

  it.each([
    ['an absolute path outside the repository', ['-u', '-b', '/etc/shadow', '-F', 'raw'], 'names backing file "/etc/shadow"'],
    ['a path into another repository', ['-u', '-b', '../../other/volumes/x.qcow2', '-F', 'qcow2'], 'names backing file "../../other'],
    ['a qemu json: pseudo-protocol', ['-u', '-b', 'json:{"driver":"nbd","server":{"type":"inet","host":"attacker","port":"10809"}}', '-F', 'raw'], 'json:'],
    ['an NBD URL', ['-u', '-b', 'nbd://attacker:10809/x', '-F', 'raw'], 'nbd://attacker'],
    ['the right name with another format', ['-u', '-b', `${PARENT}.qcow2`, '-F', 'raw'], 'is raw where its records say qcow2'],
  ])('a backing file that is %s is foreign', async (_what, options, why) => {
    expect(foreignReason(await header(qcow2(`f-${Math.random()}.qcow2`, options)), chain)).toContain(why);
  });

  it('a backing file where the records say none, none where they say one, and an external data file are foreign', async () => {
    const overlay = await header(qcow2('o2.qcow2', ['-u', '-b', `${PARENT}.qcow2`, '-F', 'qcow2']));
    expect(foreignReason(overlay, [])).toContain('where its records say it has none');
    expect(foreignReason(await header(qcow2('alone.qcow2')), chain)).toContain('names no backing file');
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', join(dir, 'data.raw'), '1M']);
    const external = await header(qcow2('df.qcow2', ['-o', 'data_file=data.raw,data_file_raw=on']));
    expect(external.dataFile).toBe('data.raw');
    expect(foreignReason(external, [])).toContain('external data file "data.raw"');
  });

  it('a merge between relinking and updating its record names a volume further down the recorded chain: allowed', async () => {
    const lower = '00000000-0000-4000-8000-000000000002';
    const relinked = await header(qcow2('child.qcow2', ['-u', '-b', `${lower}.qcow2`, '-F', 'qcow2']));
    expect(foreignReason(relinked, [...chain, { name: `${lower}.qcow2`, format: 'qcow2' }])).toBeNull();
  });

  it('bytes that are not qcow2, a truncated header and forged header fields are refused, not guessed at', async () => {
    expect(parseQcow2Head(Buffer.from('just raw data'))).toEqual({ notQcow2: true });
    const real = readFileSync(qcow2('t.qcow2', ['-u', '-b', `${PARENT}.qcow2`, '-F', 'qcow2']));
    expect(await readQcow2Header(async () => real.subarray(0, 50))).toEqual({ invalid: 'the file ends inside its header' });
    const forged = Buffer.from(real);
    forged.writeUInt32BE(1023 + 1, 16); // a backing name longer than qemu allows
    expect(parseQcow2Head(forged)).toMatchObject({ invalid: expect.stringContaining('backing file name') });
    const far = Buffer.from(real);
    far.writeBigUInt64BE(BigInt(2 ** 40), 8); // a backing name beyond the first cluster
    expect(parseQcow2Head(far)).toMatchObject({ invalid: expect.stringContaining('past the first cluster') });
  });
});
