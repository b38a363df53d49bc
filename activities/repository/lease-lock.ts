/**
 * Locks that work across hosts sharing a file repository, and expire with their holder.
 *
 * A lock `name` is a directory `locks/<name>/` of numbered lease files `<gen>.lease`. The file
 * with the highest number says who holds the lock:
 *
 * - to take a free lock (no file, or the top one marked `released`), a host creates the next
 *   number with link(2), which fails if it exists: among hosts racing for it exactly one wins;
 * - the holder rewrites its file (atomic rename) every TTL/3 with a new renewal count;
 * - a waiter that sees the top file unchanged for a whole TTL, by its own clock, deems its holder
 *   dead and creates the next number, again with link(2). No clocks are compared across hosts.
 *   A lease of this same host whose process is gone (a restarted worker) is taken over at once;
 * - release marks the holder's own file `released`; the next holder prunes the numbers below its
 *   own. The top number is never deleted, so a waiter that acted on a stale look and created a
 *   pruned number again finds a higher one above it and withdraws.
 *
 * A holder that finds a higher number when it renews has lost the lock (it was too slow for the
 * TTL); it is reported by `lost`. The sections diskflow runs under these locks are
 * read-modify-write cycles of one record, milliseconds long against a TTL of seconds.
 */
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { createFileExclusive, writeFileAtomic } from './atomic-file';

export interface LeaseHolder {
  hostId: string;
  pid: number;
}

interface LeaseFile {
  schema: 'diskflow.lease/1';
  holder: LeaseHolder;
  state: 'held' | 'released';
  acquiredAt: string;
  renewedAt: string;
  renewals: number;
}

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
    let watched = null as { gen: number; content: string; since: number } | null;
    let pause = 10;
    for (;;) {
      const top = await topGeneration(dir);
      let next: number | null = null;
      if (top === 0) next = 1;
      else {
        const content = await readFile(join(dir, `${top}.lease`), 'utf8').catch(() => null);
        if (content === null) continue; // pruned by a newer holder: look again
        const lease = parseLease(content);
        if (lease?.state === 'released' || (lease && this.diedHere(lease))) next = top + 1;
        else if (!watched || watched.gen !== top || watched.content !== content) {
          // A new holder: its section is likely short, look again soon.
          if (!watched || watched.gen !== top) pause = 5;
          watched = { gen: top, content, since: Date.now() };
        } else if (Date.now() - watched.since >= this.ttlMs) next = top + 1; // its holder stopped renewing: expired
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
    if (lease.holder?.hostId !== this.holder.hostId || lease.holder.pid === this.holder.pid) return false;
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
    return JSON.parse(content) as LeaseFile;
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
