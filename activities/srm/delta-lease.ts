/**
 * The SRM role of a repository, held as a delta lease on the repository's own storage (the
 * idea of sanlock's delta leases, without its watchdog): one 512-byte sector holding
 * `{ holder, generation, counter, renewedAt }`, read and written with O_DIRECT|O_DSYNC.
 *
 * - acquire: read the sector. Free (or our own host's, left by an earlier incarnation of this
 *   worker from the same DISKFLOW_HOME, which its lock proves dead): take it. The same host id
 *   from another DISKFLOW_HOME is another holder (a second worker started with this host id).
 *   Held by another holder and renewed
 *   less than a lease timeout ago by its clock: SRM_CONFLICT naming it. Otherwise watch it for a
 *   lease timeout plus a margin: any change means the holder lives (SRM_CONFLICT); none, and
 *   the holder has stopped itself (below), so write ours with the next generation, wait, read
 *   again and hold only if the sector is still ours.
 * - renew every `renewMs`: read, check the sector is still ours (holder and generation), write
 *   the next counter. A renewal counts only if it completed before the current deadline; the
 *   deadline becomes its start + `leaseMs` (this host's monotonic clock).
 * - fencing: past its deadline a holder does no SRM work (`assertHolding` throws SRM_REQUIRED
 *   before every metadata change, and checks the sector's generation on the device too); a lost
 *   lease is reported once through `onLost`, which stops the SRM queue's poller.
 *
 * Why two hosts never act at once: see docs/SRM.md, "The SRM: lease and fencing".
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { DiskflowError } from '../../api/errors';
import { HostId, Uuid } from '../../api/values';
import { readDirect, SECTOR, writeDirect } from '../volumes/direct-io';

const MAGIC = 'DFLEASE1';

export interface LeaseRecord {
  holder: string | null;
  /** The holder's DISKFLOW_HOME identity (null: written before leases carried it, or free). */
  home: string | null;
  generation: number;
  counter: number;
  /** Wall-clock ms of the holder's last renewal: only a hint (clocks differ), never relied on for safety. */
  renewedAt: number;
}

/** A sector as diskflow writes it; anything else reads as free (never written, torn, or not ours). */
const Sector = z.object({
  m: z.literal(MAGIC),
  holder: HostId.nullable(),
  home: Uuid.nullable().default(null),
  generation: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  counter: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  renewedAt: z.number().finite(),
});

export interface LeaseTiming {
  /** A holder that could not renew for this long has stopped acting as SRM. */
  leaseMs: number;
  renewMs: number;
  /** What a taker waits beyond leaseMs, for clock rates and I/O in flight. */
  marginMs: number;
}

export function leaseTiming(env: NodeJS.ProcessEnv = process.env): LeaseTiming {
  const leaseMs = Number(env.DISKFLOW_SRM_LEASE_MS ?? 20_000);
  if (!Number.isFinite(leaseMs) || leaseMs < 500) throw new Error(`DISKFLOW_SRM_LEASE_MS must be at least 500, not ${env.DISKFLOW_SRM_LEASE_MS}`);
  return { leaseMs, renewMs: Math.max(100, Math.floor(leaseMs / 5)), marginMs: Math.floor(leaseMs / 2) };
}

/** Where the lease sector lies. */
export interface LeaseArea {
  device: string;
  offset: number;
}

export async function readLease(area: LeaseArea): Promise<LeaseRecord> {
  const raw = await readDirect(area.device, area.offset, SECTOR);
  const end = raw.indexOf(0);
  try {
    const parsed = Sector.safeParse(JSON.parse(raw.subarray(0, end < 0 ? raw.length : end).toString('utf8')));
    if (parsed.success) {
      const { holder, home, generation, counter, renewedAt } = parsed.data;
      return { holder, home, generation, counter, renewedAt };
    }
  } catch {
    // A never-written or torn sector: nobody holds it (a torn write is the writer's failed renewal).
  }
  return { holder: null, home: null, generation: 0, counter: 0, renewedAt: 0 };
}

async function writeLease(area: LeaseArea, record: LeaseRecord): Promise<void> {
  const sector = Buffer.alloc(SECTOR);
  sector.write(JSON.stringify({ m: MAGIC, ...record }), 'utf8');
  await writeDirect(area.device, area.offset, sector);
}

const same = (a: LeaseRecord, b: LeaseRecord) => a.holder === b.holder && a.home === b.home && a.generation === b.generation && a.counter === b.counter;

export class DeltaLease {
  private generation = 0;
  private counter = 0;
  /** performance.now() after which this host no longer holds the lease. */
  private deadline = 0;
  private timer: NodeJS.Timeout | undefined;
  private lost = true;
  private renewing = false;

  constructor(
    private readonly area: LeaseArea,
    readonly hostId: string,
    /** This worker's DISKFLOW_HOME identity (workers/home-lock.ts). */
    readonly home: string,
    readonly timing: LeaseTiming,
    private readonly onLost: (why: string) => void,
  ) {}

  get held(): boolean {
    return !this.lost && performance.now() < this.deadline;
  }

  /** Takes the lease or throws SRM_CONFLICT; `progress` is called while it waits out a silent holder. */
  async acquire(progress: () => void = () => undefined): Promise<void> {
    if (this.held) return;
    const { leaseMs, marginMs } = this.timing;
    const seen = await readLease(this.area);
    if (seen.holder && !this.mine(seen)) {
      // The holder's clock stamp is compared with ours only to refuse at once; the wait below decides.
      const twin = seen.holder === this.hostId;
      if (Date.now() - seen.renewedAt < leaseMs) {
        throw new DiskflowError(
          'SRM_CONFLICT',
          twin
            ? `host id ${seen.holder} holds the SRM lease of this repository from another DISKFLOW_HOME (another worker started with this host id; lease renewed ${Date.now() - seen.renewedAt} ms ago): every worker needs its own host id`
            : `host ${seen.holder} is the SRM of this repository (lease renewed ${Date.now() - seen.renewedAt} ms ago); stop it first`,
        );
      }
      // Its clock says stale, but clocks differ: only silence for a whole lease timeout proves it.
      const until = performance.now() + leaseMs + marginMs;
      while (performance.now() < until) {
        await sleep(Math.min(this.timing.renewMs, until - performance.now()));
        progress();
        const now = await readLease(this.area);
        if (!same(now, seen)) {
          throw new DiskflowError('SRM_CONFLICT', `host ${now.holder ?? '(none)'} renewed the SRM lease of this repository while host ${this.hostId} waited for it`);
        }
      }
    }
    const start = performance.now();
    const mine: LeaseRecord = { holder: this.hostId, home: this.home, generation: seen.generation + 1, counter: 0, renewedAt: Date.now() };
    await writeLease(this.area, mine);
    // Another taker writing at the same time: the later write wins; both read again after a pause.
    await sleep(Math.min(1000, this.timing.renewMs));
    const check = await readLease(this.area);
    if (!same(check, mine)) {
      throw new DiskflowError('SRM_CONFLICT', `host ${check.holder ?? '(none)'} took the SRM lease of this repository at the same time as host ${this.hostId}`);
    }
    this.generation = mine.generation;
    this.counter = 0;
    this.deadline = start + leaseMs;
    this.lost = false;
    this.timer = setInterval(() => void this.renew(), this.timing.renewMs);
  }

  private async renew(): Promise<void> {
    if (this.lost) return;
    if (this.renewing) {
      // A renewal stuck on storage that stopped answering: the deadline still decides.
      if (performance.now() >= this.deadline) this.lose(`renewing the lease has not completed within ${this.timing.leaseMs} ms`);
      return;
    }
    this.renewing = true;
    const start = performance.now();
    try {
      if (start >= this.deadline) return this.lose(`the lease was not renewed within ${this.timing.leaseMs} ms`);
      const now = await readLease(this.area);
      if (!this.mine(now) || now.generation !== this.generation) {
        return this.lose(`host ${now.holder ?? '(none)'} holds the lease now (generation ${now.generation})`);
      }
      // Never write past the deadline: by then another host may have taken the lease.
      if (performance.now() >= this.deadline) return this.lose(`the lease was not renewed within ${this.timing.leaseMs} ms`);
      await writeLease(this.area, { holder: this.hostId, home: this.home, generation: this.generation, counter: ++this.counter, renewedAt: Date.now() });
      if (performance.now() >= this.deadline) return this.lose(`renewing the lease took until after its deadline`);
      this.deadline = start + this.timing.leaseMs;
    } catch (error) {
      // An I/O error is a missed renewal; the deadline decides.
      if (performance.now() >= this.deadline) this.lose(`the lease could not be renewed: ${(error as Error).message}`);
    } finally {
      this.renewing = false;
    }
  }

  private lose(why: string): void {
    if (this.lost) return;
    this.lost = true;
    clearInterval(this.timer);
    this.onLost(why);
  }

  /**
   * Throws SRM_REQUIRED unless this host holds the lease now, checked by its own deadline and
   * by the sector on the device. Called before every metadata change a format makes as SRM.
   */
  async assertHolding(what: string): Promise<void> {
    if (!this.held) {
      const why = this.lost ? 'was lost or released' : 'expired';
      this.lose(`the lease was not renewed within ${this.timing.leaseMs} ms`);
      throw new DiskflowError('SRM_REQUIRED', `${what}: host ${this.hostId} is not the SRM of this repository (its lease ${why})`);
    }
    const now = await readLease(this.area);
    if (!this.mine(now) || now.generation !== this.generation) {
      this.lose(`host ${now.holder ?? '(none)'} holds the lease now`);
      throw new DiskflowError('SRM_REQUIRED', `${what}: host ${this.hostId} lost the SRM role to ${now.holder ?? '(none)'}`);
    }
    if (!this.held) throw new DiskflowError('SRM_REQUIRED', `${what}: host ${this.hostId}'s SRM lease expired`);
  }

  /** Gives the role up: the sector is marked free (if still ours) so another host may take it at once. */
  async release(): Promise<void> {
    const wasHeld = !this.lost;
    this.lost = true;
    clearInterval(this.timer);
    if (!wasHeld) return;
    const now = await readLease(this.area);
    if (this.mine(now) && now.generation === this.generation) {
      await writeLease(this.area, { holder: null, home: null, generation: this.generation, counter: this.counter + 1, renewedAt: Date.now() });
    }
  }

  /** A sector written by this host id from this DISKFLOW_HOME (this worker, or its earlier incarnation). */
  private mine(record: LeaseRecord): boolean {
    return record.holder === this.hostId && record.home === this.home;
  }
}
