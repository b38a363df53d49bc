/**
 * The SRM roles this host holds: one delta lease per repository (delta-lease.ts), and the
 * poller of the repository's SRM task queue, which runs only while the lease is held. Formats
 * that need an SRM ask `assertHolding` before every metadata change (SrmGuard).
 */
import { Context } from '@temporalio/activity';
import { DiskflowError } from '../../api/errors';
import type { Repository, SrmGuard } from '../repository/repository';
import { DeltaLease, LeaseTiming, readLease } from './delta-lease';

/** Starts and stops this host's polling of a repository's SRM queue. */
export interface SrmPollers {
  startSrm(repoUuid: string): Promise<void>;
  stopSrm(repoUuid: string): Promise<void>;
}

export class SrmRoles implements SrmGuard {
  private readonly leases = new Map<string, DeltaLease>();

  constructor(
    readonly hostId: string,
    /** This host's DISKFLOW_HOME identity: a lease of this host id made from another one is another holder's. */
    readonly homeId: string,
    readonly timing: LeaseTiming,
    private readonly pollers: SrmPollers,
    private readonly log: (message: string, fields?: Record<string, unknown>) => void = () => undefined,
  ) {}

  private static leaseOf(repo: Repository) {
    if (!repo.traits.needsSrm || !repo.srmLease) {
      throw new DiskflowError('INVALID_ARGUMENT', `repository ${repo.location} (${repo.header.format}) needs no SRM: any host creates and deletes objects there`);
    }
    return repo.srmLease;
  }

  /** Makes this host the repository's SRM: takes the lease (SRM_CONFLICT if another host holds it), then polls the SRM queue. */
  async start(repo: Repository, progress?: () => void): Promise<void> {
    const uuid = repo.header.uuid;
    const existing = this.leases.get(uuid);
    if (existing?.held) return;
    const lease = new DeltaLease(SrmRoles.leaseOf(repo), this.hostId, this.homeId, this.timing, (why) => {
      // Fencing: past the deadline this host stops taking SRM work at once (in-flight steps fail
      // their next assertHolding); another host may take the role only after the deadline.
      this.log('SRM lease lost: this host is no longer the SRM', { repoUuid: uuid, why });
      if (this.leases.get(uuid) === lease) this.leases.delete(uuid);
      void this.pollers.stopSrm(uuid).catch(() => undefined);
    });
    await lease.acquire(progress);
    this.leases.set(uuid, lease);
    try {
      await this.pollers.startSrm(uuid);
    } catch (error) {
      this.leases.delete(uuid);
      await lease.release().catch(() => undefined);
      throw error;
    }
    this.log('SRM lease acquired: this host is the SRM', { repoUuid: uuid });
  }

  /** Gives the role up: stops polling the SRM queue first, then frees the lease. */
  async stop(repoUuid: string): Promise<void> {
    const lease = this.leases.get(repoUuid);
    await this.pollers.stopSrm(repoUuid);
    if (!lease) return;
    this.leases.delete(repoUuid);
    await lease.release();
    this.log('SRM role released', { repoUuid });
  }

  async stopAll(): Promise<void> {
    for (const uuid of [...this.leases.keys()]) await this.stop(uuid).catch(() => undefined);
  }

  holds(repoUuid: string): boolean {
    return this.leases.get(repoUuid)?.held ?? false;
  }

  async assertHolding(repoUuid: string, what: string): Promise<void> {
    try {
      const lease = this.leases.get(repoUuid);
      if (!lease) throw new DiskflowError('SRM_REQUIRED', `${what}: host ${this.hostId} is not the SRM of this repository; start it with startRepositoryManager`);
      await lease.assertHolding(what);
    } catch (error) {
      // A step taken from the SRM queue by a host that has since lost the role is retried on
      // that queue, where the new SRM takes it; a step sent to this host itself just fails.
      if (error instanceof DiskflowError && onSrmQueue()) throw new DiskflowError(error.code, error.message, true);
      throw error;
    }
  }

  /** The host holding the repository's SRM lease now, as its lease area says (null: none, or expired). */
  async holderOf(repo: Repository): Promise<string | null> {
    if (!repo.traits.needsSrm || !repo.srmLease) return null;
    if (this.holds(repo.header.uuid)) return this.hostId;
    const lease = await readLease(repo.srmLease);
    // The holder's clock stamp is a hint for reporting only; the election never relies on it.
    return lease.holder && Date.now() - lease.renewedAt < this.timing.leaseMs ? lease.holder : null;
  }
}

function onSrmQueue(): boolean {
  try {
    return Context.current().info.taskQueue.startsWith('diskflow.srm.');
  } catch {
    return false;
  }
}
