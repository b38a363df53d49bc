import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DeltaLease, leaseTiming, readLease } from '../../activities/srm/delta-lease';

const dir = mkdtempSync(join(tmpdir(), 'diskflow-lease-'));
const area = { device: join(dir, 'lease'), offset: 0 };
execFileSync('truncate', ['-s', '4096', area.device]);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const timing = leaseTiming({ DISKFLOW_SRM_LEASE_MS: '800' });
const lost: string[] = [];
const HOME = '00000000-0000-4000-8000-00000000000a';
const lease = (hostId: string, home = HOME) => new DeltaLease(area, hostId, home, timing, (why: string) => lost.push(`${hostId}: ${why}`));
/** Stops a holder's renewals without telling it, as a frozen or dead process would. */
const freeze = (l: DeltaLease) => clearInterval((l as unknown as { timer: NodeJS.Timeout }).timer);

describe('SRM delta lease', () => {
  it('one holder at a time: a second host is refused with SRM_CONFLICT naming the holder; a released lease is free at once', async () => {
    const a = lease('a');
    await a.acquire();
    await new Promise((r) => setTimeout(r, 2 * timing.renewMs));
    expect((await readLease(area)).counter).toBeGreaterThan(0);
    await expect(lease('b').acquire()).rejects.toMatchObject({ code: 'SRM_CONFLICT', message: expect.stringContaining('host a') });
    await a.assertHolding('test');
    await a.release();
    await expect(a.assertHolding('test')).rejects.toMatchObject({ code: 'SRM_REQUIRED' });
    const b = lease('b');
    await b.acquire();
    expect(await readLease(area)).toMatchObject({ holder: 'b', generation: 2 });
    await b.release();
  });

  it('a silent holder is taken over only after a lease timeout plus a margin, by which time it refuses SRM work itself', async () => {
    const a = lease('a');
    await a.acquire();
    freeze(a);
    const frozenAt = performance.now();
    // Its clock stamp is fresh: refused at once.
    await expect(lease('c').acquire()).rejects.toMatchObject({ code: 'SRM_CONFLICT' });
    await new Promise((r) => setTimeout(r, timing.leaseMs));
    const c = lease('c');
    await c.acquire();
    expect(performance.now() - frozenAt).toBeGreaterThanOrEqual(2 * timing.leaseMs + timing.marginMs - 50);
    expect(a.held).toBe(false);
    await expect(a.assertHolding('late write')).rejects.toMatchObject({ code: 'SRM_REQUIRED' });
    // Finding its deadline passed, it reports the role lost (its SRM poller stops).
    expect(lost.some((l) => l.startsWith('a: the lease was not renewed'))).toBe(true);
    await c.assertHolding('test');
    await c.release();
  });

  it('the same host id from another DISKFLOW_HOME is another holder: refused with SRM_CONFLICT, while its own restarted worker retakes the lease at once', async () => {
    const first = lease('h');
    await first.acquire();
    freeze(first);
    await expect(lease('h', '00000000-0000-4000-8000-00000000000b').acquire()).rejects.toMatchObject({
      code: 'SRM_CONFLICT',
      message: expect.stringContaining('another DISKFLOW_HOME'),
    });
    // The same DISKFLOW_HOME: the worker after a restart (its home lock proves the first is gone).
    const restarted = lease('h');
    const t0 = performance.now();
    await restarted.acquire();
    expect(performance.now() - t0).toBeLessThan(timing.leaseMs);
    await restarted.release();
  });
});
