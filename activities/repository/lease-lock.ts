/**
 * Locks that work across hosts sharing a file repository, and expire with their holder.
 *
 * A lock `name` is a directory `locks/<name>/` of numbered lease files `<gen>.lease`. The file
 * with the highest number says who holds the lock:
 *
 * - to take a free lock (no file, or the top one marked `released`), a host creates the next
 *   number with link(2), which fails if it exists: among hosts racing for it exactly one wins;
 * - the holder rewrites its file (atomic rename) every TTL/3 with a new renewal count;
 * - a waiter that sees the top file unchanged for a whole TTL, by its own monotonic clock, deems
 *   its holder dead and creates the next number, again with link(2). No clocks are compared
 *   across hosts (the times written in lease files are for people reading them).
 *   A lease of this same host and DISKFLOW_HOME whose process is gone (a restarted worker) is
 *   taken over at once; one of the same host id from another DISKFLOW_HOME is another holder's;
 * - release marks the holder's own file `released`; the next holder prunes the numbers below its
 *   own. The top number is never deleted, so a waiter that acted on a stale look and created a
 *   pruned number again finds a higher one above it and withdraws.
 *
 * A holder that finds a higher number when it renews has lost the lock (it was too slow for the
 * TTL); it is reported by `lost`. The sections diskflow runs under these locks are
 * read-modify-write cycles of one record, milliseconds long against a TTL of seconds.
 */
import { mkdir, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { HostId, Uuid } from '../../api/values';
import { createFileExclusive, readSmallFile, writeFileAtomic } from './atomic-file';
import { requireOwnDirectory } from './own-directory';

export interface LeaseHolder {
  hostId: string;
  pid: number;
  /** The holder's DISKFLOW_HOME identity (workers/home-lock.ts). */
  home: string;
}

/** A lease file as diskflow writes it; anything else is a holder nobody knows, which expires after the TTL. */
const LeaseFile = z.object({
  schema: z.literal('diskflow.lease/1'),
  holder: z.object({ hostId: HostId, pid: z.number().int().positive().max(2 ** 31), home: Uuid.optional() }),
  state: z.enum(['held', 'released']),
  acquiredAt: z.string().max(64),
  renewedAt: z.string().max(64),
  renewals: z.number().int().nonnegative(),
});
type LeaseFile = z.infer<typeof LeaseFile>;

export interface HeldLease {
  readonly gen: number;
  /** True once another holder took the lock over because this one did not renew in time. */
  readonly lost: boolean;
  release(): Promise<void>;
}

const LEASE = /^(\d+)\.lease$/;
export const DEFAULT_LEASE_TTL_MS = 30_000;

export class LeaseLocks {
  private readonly known = new Set<string>();

  constructor(
    private readonly dir: string,
    /** Temporary files of atomic writes, on the same file system as `dir`. */
    private readonly tmpDir: string,
    private readonly holder: LeaseHolder,
    readonly ttlMs: number = DEFAULT_LEASE_TTL_MS,
  ) {}

  async run<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const lease = await this.acquire(name);
    try {
      return await fn();
    } finally {
      await lease.release();
    }
  }

  async acquire(name: string): Promise<HeldLease> {
    const dir = await this.lockDir(name);
    // `since` is this process's monotonic clock: a wall clock stepped back would stretch the wait.
    let watched = null as { gen: number; content: string; since: number } | null;
    let pause = 10;
    for (;;) {
      const top = await topGeneration(dir);
      let next: number | null = null;
      if (top === 0) next = 1;
      else {
        // A lease file that cannot be read as one (a link, a directory, too large) holds the lock
        // for a holder nobody knows: it expires after the TTL like any silent holder's.
        const content = await readSmallFile(join(dir, `${top}.lease`), 64 * 1024).catch((error: Error) => `unreadable: ${error.message}`);
        if (content === null) continue; // pruned by a newer holder: look again
        const lease = parseLease(content);
        if (lease?.state === 'released' || (lease && this.diedHere(lease))) next = top + 1;
        else if (!watched || watched.gen !== top || watched.content !== content) {
          // A new holder: its section is likely short, look again soon.
          if (!watched || watched.gen !== top) pause = 5;
          watched = { gen: top, content, since: performance.now() };
        } else if (performance.now() - watched.since >= this.ttlMs) next = top + 1; // its holder stopped renewing: expired
      }
      if (next !== null) {
        const held = await this.tryCreate(dir, next);
        if (held) return held;
        watched = null;
        continue;
      }
      // Sections are short: poll often, backing off a little while the same holder holds on.
      await sleep(pause);
      pause = Math.min(pause * 2, 50);
    }
  }

  /**
   * A lease of this very host whose process is gone (the worker before a restart): taken over
   * at once instead of after a TTL. Host ids are unique in a cluster, so its pid is on this machine.
   */
  private diedHere(lease: LeaseFile): boolean {
    // Only a lease of this DISKFLOW_HOME: the same host id elsewhere is another process on another machine.
    if (lease.holder.hostId !== this.holder.hostId || lease.holder.home !== this.holder.home || lease.holder.pid === this.holder.pid) return false;
    try {
      process.kill(lease.holder.pid, 0);
      return false;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }

  private async lockDir(name: string): Promise<string> {
    if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new Error(`not a lock name: ${name}`);
    const dir = join(this.dir, name);
    if (!this.known.has(dir)) {
      await mkdir(dir, { recursive: true });
      // Lease files are deleted here: never through a link to somewhere else.
      await requireOwnDirectory(this.dir);
      await requireOwnDirectory(dir);
      this.known.add(dir);
    }
    return dir;
  }

  private async tryCreate(dir: string, gen: number): Promise<HeldLease | null> {
    const now = new Date().toISOString();
    let lease: LeaseFile = { schema: 'diskflow.lease/1', holder: this.holder, state: 'held', acquiredAt: now, renewedAt: now, renewals: 0 };
    const path = join(dir, `${gen}.lease`);
    if (!(await createFileExclusive(path, JSON.stringify(lease), this.tmpDir))) return null;
    // A waiter whose look at the directory has gone stale can still create a number below the
    // top: older numbers are pruned (just below), so link(2) succeeds on a number that was used
    // and removed while it waited. The highest number ever created is never removed, so such a
    // lease is recognisable at once: it is not the top. Withdraw it and look again.
    const numbers = await generations(dir);
    if (numbers.some((n) => n > gen)) {
      await unlink(path).catch(() => undefined);
      return null;
    }
    // Older numbers are history now; only the top one matters.
    for (const older of numbers) if (older < gen) await unlink(join(dir, `${older}.lease`)).catch(() => undefined);

    let lost = false;
    let writing: Promise<void> = Promise.resolve();
    const write = (next: LeaseFile) => (writing = writing.then(async () => {
      if (lost) return;
      if ((await topGeneration(dir)) > gen) {
        lost = true;
        return;
      }
      lease = next;
      await writeFileAtomic(path, JSON.stringify(lease), this.tmpDir);
    }));
    const timer = setInterval(() => {
      void write({ ...lease, renewedAt: new Date().toISOString(), renewals: lease.renewals + 1 }).catch(() => undefined);
    }, Math.max(1, Math.floor(this.ttlMs / 3)));
    timer.unref();
    return {
      gen,
      get lost() {
        return lost;
      },
      async release() {
        clearInterval(timer);
        await writing.catch(() => undefined);
        await write({ ...lease, state: 'released', renewedAt: new Date().toISOString() });
      },
    };
  }
}

function parseLease(content: string): LeaseFile | null {
  try {
    const parsed = LeaseFile.safeParse(JSON.parse(content));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

async function generations(dir: string): Promise<number[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.flatMap((n) => {
    const m = LEASE.exec(n);
    return m ? [Number(m[1])] : [];
  });
}

async function topGeneration(dir: string): Promise<number> {
  return Math.max(0, ...(await generations(dir)));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
