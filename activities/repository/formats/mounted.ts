/**
 * What posixfs-1.0 and nfs-1.0 share: a file repository on a file system that diskflow mounts
 * under DISKFLOW_HOME/mnt/ on connect and unmounts on disconnect, written by many hosts at once.
 *
 * - A worker that stops (or crashes) leaves its mounts in place: VMs may be running on images
 *   prepared from them, and the restarted worker re-uses the mount it finds at the same point.
 *   Only disconnectStorageRepository unmounts.
 * - Records are guarded across hosts by lease files on the repository (../lease-lock.ts),
 *   expiring `DISKFLOW_LEASE_TTL_MS` (30 s) after their holder stopped renewing them.
 */
import { randomUUID } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DiskflowError } from '../../../api/errors';
import { FORMAT_TRAITS, RepoFormat } from '../../../api/formats';
import { ensureMounted, MountSpec, mountPointFor, unmount } from '../../host/mounts';
import { checkLayout, FileRepository, initFileRepository, probeDirectIo, readHeader } from '../file-repository';
import { KeyedLock } from '../keyed-lock';
import { DEFAULT_LEASE_TTL_MS, LeaseLocks } from '../lease-lock';
import type { HostContext, Repository, RepositoryDriver, RepositoryHeader } from '../repository';

/** Connections of this process using each mount point: the last one to disconnect unmounts. */
const users = new Map<string, number>();
const mountLock = new KeyedLock();

async function acquire(spec: MountSpec, target: string): Promise<void> {
  await mountLock.run(target, async () => {
    if (!users.get(target)) await ensureMounted(spec, target);
    users.set(target, (users.get(target) ?? 0) + 1);
  });
}

/** Drops one user of the mount; unmounts when it was the last and `unmountIfLast`. */
async function releaseMount(target: string, unmountIfLast: boolean): Promise<void> {
  await mountLock.run(target, async () => {
    const left = (users.get(target) ?? 1) - 1;
    if (left > 0) return void users.set(target, left);
    if (unmountIfLast) await unmount(target);
    users.delete(target);
  });
}

function leaseTtlMs(): number {
  const value = Number(process.env.DISKFLOW_LEASE_TTL_MS);
  return Number.isFinite(value) && value > 0 ? value : DEFAULT_LEASE_TTL_MS;
}

class MountedRepository extends FileRepository {
  private released = false;

  constructor(header: RepositoryHeader, target: string, directIo: boolean, host: HostContext) {
    super(header, FORMAT_TRAITS[header.format], target, directIo, new LeaseLocks(join(target, 'locks'), join(target, 'tmp'), { hostId: host.hostId, pid: process.pid, home: host.homeId }, leaseTtlMs()));
  }

  /** disconnectStorageRepository: unmounts (refused while a VM or tool holds files open there). */
  override async disconnect(): Promise<void> {
    if (this.released) return;
    await releaseMount(this.location, true);
    this.released = true;
  }

  /** The worker stops: the mount stays for VMs and for the restarted worker. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await releaseMount(this.location, false);
  }
}

export function mountedDriver<P>(format: RepoFormat, mountSpec: (params: P) => MountSpec): RepositoryDriver<P> {
  return {
    format,

    async init(params, host): Promise<RepositoryHeader> {
      const spec = mountSpec(params);
      // A mount point of its own, so init never disturbs a connection of the same spec.
      const target = join(host.home, 'mnt', `.init-${randomUUID()}`);
      await ensureMounted(spec, target);
      try {
        // A fresh file system may hold lost+found; anything else means it is in use.
        const entries = (await readdir(target)).filter((e) => e !== 'lost+found');
        if (entries.length > 0) {
          throw new DiskflowError('REPO_NOT_EMPTY', `${spec.spec} is not empty (holds ${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''})`);
        }
        const header: RepositoryHeader = { schema: 'diskflow.repository/1', format, uuid: randomUUID(), createdAt: new Date().toISOString() };
        await initFileRepository(target, header);
        return header;
      } finally {
        await unmount(target);
      }
    },

    async connect(params, host): Promise<Repository> {
      const spec = mountSpec(params);
      const target = mountPointFor(host.home, spec);
      await acquire(spec, target);
      try {
        const header = await readHeader(target);
        if (!header) throw new DiskflowError('INVALID_ARGUMENT', `connectionParameters: ${spec.spec} is not a diskflow repository (no header); run initStorageRepository first`);
        if (header.format !== format) throw new DiskflowError('INVALID_ARGUMENT', `repoFormat: ${spec.spec} holds a ${header.format} repository, not ${format}`);
        await checkLayout(target);
        return new MountedRepository(header, target, await probeDirectIo(target), host);
      } catch (error) {
        await releaseMount(target, true).catch(() => undefined);
        throw error;
      }
    },
  };
}
