import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, openSync, rmSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MetadataSlots, SLOT_SIZE } from '../../activities/volumes/metadata-slots';

// A file on the root file system stands in for the metadata LV (O_DIRECT works on it).
const dir = mkdtempSync(join(tmpdir(), 'diskflow-slots-'));
const device = join(dir, 'meta');
execFileSync('truncate', ['-s', String(1024 * 1024 + 8 * 2 * SLOT_SIZE), device]);
const OFFSET = 1024 * 1024;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Overwrites part of a slot, as a write torn by a power loss would leave it. */
function tear(pair: number, which: number): void {
  const fd = openSync(device, 'r+');
  writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, OFFSET + (pair * 2 + which) * SLOT_SIZE + 100);
  closeSync(fd);
}

/** Record ids are UUIDs (a slot naming anything else is no slot of diskflow's). */
const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
const [A, B] = [id(1), id(2)];

describe('metadata slot pairs', () => {
  const slots = new MetadataSlots(device, OFFSET, 8);

  it('creates once, replaces, lists, and keeps the previous version when a write is torn', async () => {
    expect(await slots.write('image', A, '{"v":1}', 'create')).toBe(true);
    expect(await slots.write('image', A, '{"v":9}', 'create')).toBe(false);
    await slots.write('image', A, '{"v":2}', 'replace');
    expect(await slots.read('image', A)).toBe('{"v":2}');
    // Version 1 went to slot 0, version 2 to slot 1: tearing slot 1 brings version 1 back.
    tear(0, 1);
    expect(await new MetadataSlots(device, OFFSET, 8).read('image', A)).toBe('{"v":1}');
    // The next write goes over the torn slot.
    await slots.write('image', A, '{"v":3}', 'replace');
    expect(await new MetadataSlots(device, OFFSET, 8).read('image', A)).toBe('{"v":3}');
    await slots.write('volume', A, '{"volume":true}', 'create');
    expect(await slots.list('image')).toEqual([{ id: A, body: '{"v":3}' }]);
    expect(await slots.list('volume')).toEqual([{ id: A, body: '{"volume":true}' }]);
  });

  it('a deleted record is gone for every reader and its pair is reused', async () => {
    await slots.remove('image', A);
    expect(await new MetadataSlots(device, OFFSET, 8).read('image', A)).toBeNull();
    expect(await slots.write('image', B, '{"b":1}', 'create')).toBe(true);
    expect(await slots.list('image')).toEqual([{ id: B, body: '{"b":1}' }]);
  });

  it('refuses a new record when every pair is taken (NO_SPACE), and one too large for a slot', async () => {
    for (let i = 0; i < 6; i++) await slots.write('image', id(100 + i), '{}', 'create');
    await expect(slots.write('image', id(200), '{}', 'create')).rejects.toMatchObject({ code: 'NO_SPACE' });
    await expect(slots.write('image', B, 'x'.repeat(SLOT_SIZE), 'replace')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(await slots.read('image', B)).toBe('{"b":1}');
  });

  it('a slot whose header is not one diskflow writes (an id that is no UUID, a forged length) is no record', async () => {
    const forged = new MetadataSlots(device, OFFSET, 8);
    await expect(forged.write('image', '../../etc', '{}', 'create')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    // Pair 7 holds a hand-made slot naming a path as its id: readers skip it.
    const body = '{"x":1}';
    const header = JSON.stringify({ m: 'DFSLOT1', pair: 7, seq: 1, kind: 'image', id: '../../etc', len: body.length, sha: createHash('sha256').update(body).digest('hex') });
    const fd = openSync(device, 'r+');
    writeSync(fd, Buffer.from(`${header}\n${body}`), 0, header.length + 1 + body.length, OFFSET + 14 * SLOT_SIZE);
    closeSync(fd);
    expect((await forged.list('image')).map((r) => r.id)).not.toContain('../../etc');
  });
});
