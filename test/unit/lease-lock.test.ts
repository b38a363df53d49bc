/**
 * Lease locks on real files in a temporary directory, with two holders standing for two hosts
 * (two LeaseLocks instances share nothing but the directory, like two hosts share a mount).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createFileExclusive } from '../../activities/repository/atomic-file';
import { LeaseLocks } from '../../activities/repository/lease-lock';

/** The DISKFLOW_HOME identity of the holders (workers/home-lock.ts). */
const HOME = '00000000-0000-4000-8000-000000000001';
const OTHER_HOME = '00000000-0000-4000-8000-000000000002';

const dirs: string[] = [];
function repo(): { locks: string; tmp: string } {
  const root = mkdtempSync(join(tmpdir(), 'lease-'));
  dirs.push(root);
  mkdirSync(join(root, 'tmp'));
  return { locks: join(root, 'locks'), tmp: join(root, 'tmp') };
}
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('lease locks', () => {
  it('two holders never run a section at once, and no update is lost', async () => {
    const { locks, tmp } = repo();
    const a = new LeaseLocks(locks, tmp, { hostId: 'a', pid: 1, home: HOME }, 5000);
    const b = new LeaseLocks(locks, tmp, { hostId: 'b', pid: 2, home: HOME }, 5000);
    let inside = 0;
    let most = 0;
    let counter = 0;
    const section = async () => {
      inside++;
      most = Math.max(most, inside);
      const seen = counter;
      await sleep(2);
      counter = seen + 1;
      inside--;
    };
    await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).run('image_x', section)));
    expect(most).toBe(1);
    expect(counter).toBe(20);
    // One lease file is left, marked released.
    const files = readdirSync(join(locks, 'image_x'));
    expect(files).toHaveLength(1);
    expect(JSON.parse(readFileSync(join(locks, 'image_x', files[0]), 'utf8')).state).toBe('released');
  });

  it('different names do not wait on each other', async () => {
    const { locks, tmp } = repo();
    const a = new LeaseLocks(locks, tmp, { hostId: 'a', pid: 1, home: HOME }, 5000);
    const b = new LeaseLocks(locks, tmp, { hostId: 'b', pid: 2, home: HOME }, 5000);
    const held = await a.acquire('image_1');
    const started = Date.now();
    await b.run('image_2', async () => undefined);
    expect(Date.now() - started).toBeLessThan(1000);
    await held.release();
  });

  it('a live holder keeps the lock past the TTL by renewing it', async () => {
    const { locks, tmp } = repo();
    const a = new LeaseLocks(locks, tmp, { hostId: 'a', pid: 1, home: HOME }, 300);
    const b = new LeaseLocks(locks, tmp, { hostId: 'b', pid: 2, home: HOME }, 300);
    const held = await a.acquire('image_x');
    let bGot = false;
    const waiting = b.run('image_x', async () => {
      bGot = true;
    });
    await sleep(1200); // four TTLs
    expect(bGot).toBe(false);
    expect(held.lost).toBe(false);
    await held.release();
    await waiting;
    expect(bGot).toBe(true);
  });

  it('a dead holder (its lease never renewed) is taken over one TTL after the waiter first saw it', async () => {
    const { locks, tmp } = repo();
    // What a killed holder leaves: a lease marked held that nobody renews any more.
    mkdirSync(join(locks, 'image_x'), { recursive: true });
    const dead = { schema: 'diskflow.lease/1', holder: { hostId: 'a', pid: 1, home: HOME }, state: 'held', acquiredAt: '', renewedAt: '', renewals: 3 };
    expect(await createFileExclusive(join(locks, 'image_x', '1.lease'), JSON.stringify(dead), tmp)).toBe(true);
    const b = new LeaseLocks(locks, tmp, { hostId: 'b', pid: 2, home: HOME }, 400);
    const c = new LeaseLocks(locks, tmp, { hostId: 'c', pid: 3, home: HOME }, 400);
    const started = Date.now();
    // Two waiters see it expire at once: exactly one takes it over, the other waits for that one.
    const order: string[] = [];
    await Promise.all([
      b.run('image_x', async () => {
        order.push('b in');
        await sleep(50);
        order.push('b out');
      }),
      c.run('image_x', async () => {
        order.push('c in');
        await sleep(50);
        order.push('c out');
      }),
    ]);
    const waited = Date.now() - started;
    expect(waited).toBeGreaterThanOrEqual(390);
    expect(waited).toBeLessThan(5000);
    expect(['b in,b out,c in,c out', 'c in,c out,b in,b out']).toContain(order.join(','));
    // The dead holder's file is gone; the top one is released.
    const files = readdirSync(join(locks, 'image_x'));
    expect(files).toEqual(['3.lease']);
  });

  it('a holder too slow to renew within the TTL learns that it lost the lock', async () => {
    const { locks, tmp } = repo();
    // `slow` renews every 1 s; `eager` deems a lease dead after 100 ms without change.
    const slow = new LeaseLocks(locks, tmp, { hostId: 'slow', pid: 1, home: HOME }, 3000);
    const eager = new LeaseLocks(locks, tmp, { hostId: 'eager', pid: 2, home: HOME }, 100);
    const held = await slow.acquire('image_x');
    const taken = await eager.acquire('image_x');
    expect(taken.gen).toBe(2);
    await sleep(1300);
    expect(held.lost).toBe(true);
    await held.release();
    // Its release did not touch the new holder's lease.
    expect(JSON.parse(readFileSync(join(locks, 'image_x', '2.lease'), 'utf8')).state).toBe('held');
    await taken.release();
  });

  it('a lease of this same host whose process is gone (the worker before a restart) is taken over at once', async () => {
    const { locks, tmp } = repo();
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
    mkdirSync(join(locks, 'image_x'), { recursive: true });
    const before = { schema: 'diskflow.lease/1', holder: { hostId: 'h', pid: gone, home: HOME }, state: 'held', acquiredAt: '', renewedAt: '', renewals: 0 };
    await createFileExclusive(join(locks, 'image_x', '1.lease'), JSON.stringify(before), tmp);
    const restarted = new LeaseLocks(locks, tmp, { hostId: 'h', pid: process.pid, home: HOME }, 10_000);
    const started = Date.now();
    const held = await restarted.acquire('image_x');
    expect(Date.now() - started).toBeLessThan(1000);
    expect(held.gen).toBe(2);
    await held.release();
    // Another host's lease with the same (dead) pid is not judged by this machine's processes.
    await createFileExclusive(join(locks, 'image_x', '3.lease'), JSON.stringify({ ...before, holder: { hostId: 'other', pid: gone, home: HOME } }), tmp);
    const waiter = new LeaseLocks(locks, tmp, { hostId: 'h', pid: process.pid, home: HOME }, 400);
    const t0 = Date.now();
    await (await waiter.acquire('image_x')).release();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(390);
  });

  it('a lease of this host id from another DISKFLOW_HOME (a second worker with the same host id) is not taken over as its own', async () => {
    const { locks, tmp } = repo();
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
    mkdirSync(join(locks, 'image_x'), { recursive: true });
    const twin = { schema: 'diskflow.lease/1', holder: { hostId: 'h', pid: gone, home: OTHER_HOME }, state: 'held', acquiredAt: '', renewedAt: '', renewals: 0 };
    await createFileExclusive(join(locks, 'image_x', '1.lease'), JSON.stringify(twin), tmp);
    const waiter = new LeaseLocks(locks, tmp, { hostId: 'h', pid: process.pid, home: HOME }, 400);
    const t0 = Date.now();
    await (await waiter.acquire('image_x')).release();
    // Its pid means nothing on this machine: the lease expires only after the TTL.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(390);
  });

  it('a lease file that is a link is a holder nobody knows: it expires after the TTL, and what it points to is left alone', async () => {
    const { locks, tmp } = repo();
    const elsewhere = join(mkdtempSync(join(tmpdir(), 'lease-elsewhere-')), 'precious');
    dirs.push(join(elsewhere, '..'));
    writeFileSync(elsewhere, 'precious');
    mkdirSync(join(locks, 'image_x'), { recursive: true });
    symlinkSync(elsewhere, join(locks, 'image_x', '1.lease'));
    const waiter = new LeaseLocks(locks, tmp, { hostId: 'h', pid: process.pid, home: HOME }, 300);
    const t0 = Date.now();
    const held = await waiter.acquire('image_x');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect(held.gen).toBe(2);
    await held.release();
    expect(readFileSync(elsewhere, 'utf8')).toBe('precious');
  });

  it('a lock directory that is a link is refused: lease files are never deleted through it', async () => {
    const { locks, tmp } = repo();
    const elsewhere = mkdtempSync(join(tmpdir(), 'lease-elsewhere-'));
    dirs.push(elsewhere);
    mkdirSync(locks);
    symlinkSync(elsewhere, join(locks, 'image_x'));
    const holder = new LeaseLocks(locks, tmp, { hostId: 'h', pid: process.pid, home: HOME }, 400);
    await expect(holder.acquire('image_x')).rejects.toMatchObject({ code: 'STORAGE_ERROR', message: expect.stringContaining('symbolic link') });
    expect(readdirSync(elsewhere)).toEqual([]);
  });

  it('a waiter acting on a stale look, re-creating a number that was pruned meanwhile, withdraws instead of holding it', async () => {
    const { locks, tmp } = repo();
    const a = new LeaseLocks(locks, tmp, { hostId: 'a', pid: 1, home: HOME }, 5000);
    const b = new LeaseLocks(locks, tmp, { hostId: 'b', pid: 2, home: HOME }, 5000);
    // a looked while the directory was empty and acts on that look only now (on a loaded
    // machine a look can be any number of holders old). Meanwhile b took 1, released it, took
    // 2 and pruned 1, so link(2) lets a create 1 again.
    await (await b.acquire('image_x')).release();
    const held = await b.acquire('image_x');
    expect(held.gen).toBe(2);
    expect(readdirSync(join(locks, 'image_x'))).toEqual(['2.lease']);
    const staleClaim = (a as unknown as { tryCreate(dir: string, gen: number): Promise<unknown> }).tryCreate(join(locks, 'image_x'), 1);
    expect(await staleClaim).toBeNull();
    expect(readdirSync(join(locks, 'image_x'))).toEqual(['2.lease']);
    expect(held.lost).toBe(false);
    await held.release();
  });
});
