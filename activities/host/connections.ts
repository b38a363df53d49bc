/**
 * This host's connected repositories, under the repoId handles the engine chose. Remembered in
 * DISKFLOW_HOME/connections.json, so a restarted worker reconnects and in-flight work goes on.
 * Connecting a repository also makes this host poll the repository's task queue.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { DiskflowError } from '../../api/errors';
import { RepositorySpec } from '../../api/formats';
import { RepoId, RepoUuid } from '../../api/values';
import { readJson, writeFileAtomic } from '../repository/atomic-file';
import { driverFor } from '../repository/formats';
import { KeyedLock } from '../repository/keyed-lock';
import type { HostContext, Repository, RepositoryHeader } from '../repository/repository';
import { withSrmForwarding } from '../srm/forwarding-repository';

/** Starts and stops this host's polling of a repository's task queues. */
export interface RepositoryPollers {
  startRepository(repository: Repository): Promise<void>;
  stopRepository(repoUuid: string): Promise<void>;
}

const Connection = z.object({
  spec: RepositorySpec,
  repoUuid: RepoUuid,
  connectedAt: z.string().max(64),
});
const ConnectionsFile = z.object({
  schema: z.literal('diskflow.connections/1'),
  connections: z.record(RepoId, Connection),
});
type ConnectionsFile = z.infer<typeof ConnectionsFile>;

export interface ConnectedRepository {
  repoId: string;
  spec: RepositorySpec;
  repository: Repository;
}

export class HostConnections {
  private readonly connected = new Map<string, ConnectedRepository>();
  /** Connections remembered but not reachable right now, with why. */
  private readonly unreachable = new Map<string, string>();
  private readonly lock = new KeyedLock();
  private readonly file: string;

  constructor(
    readonly host: HostContext,
    private readonly pollers: RepositoryPollers,
    private readonly log: (message: string, fields?: Record<string, unknown>) => void = () => undefined,
  ) {
    this.file = join(host.home, 'connections.json');
  }

  /** Reconnects everything this host had connected before it stopped. */
  async restore(): Promise<void> {
    const saved = await this.load();
    for (const [repoId, connection] of Object.entries(saved.connections)) {
      try {
        const repository = await this.reach(connection.spec);
        if (repository.header.uuid !== connection.repoUuid) {
          throw new DiskflowError('STORAGE_ERROR', `a different repository (${repository.header.uuid}) is now at this location`);
        }
        this.connected.set(repoId, { repoId, spec: connection.spec, repository });
        await this.pollers.startRepository(repository);
        this.log('repository reconnected', { repoId, location: repository.location });
      } catch (error) {
        this.unreachable.set(repoId, (error as Error).message);
        this.log('repository could not be reconnected', { repoId, error: (error as Error).message });
      }
    }
  }

  /** Connects the format, with the SRM's forwarding around it where the format needs one. */
  private async reach(spec: RepositorySpec): Promise<Repository> {
    return withSrmForwarding(await driverFor(spec.repoFormat).connect(spec.connectionParameters, this.host), this.host);
  }

  async init(spec: RepositorySpec): Promise<RepositoryHeader> {
    return driverFor(spec.repoFormat).init(spec.connectionParameters, this.host);
  }

  async connect(repoId: string, spec: RepositorySpec): Promise<Repository> {
    return this.lock.run('connections', async () => {
      if (this.connected.has(repoId) || this.unreachable.has(repoId)) {
        throw new DiskflowError('REPO_ID_IN_USE', `repoId ${repoId} is already in use on host ${this.host.hostId}`);
      }
      const repository = await this.reach(spec);
      const twin = [...this.connected.values()].find((c) => c.repository.header.uuid === repository.header.uuid);
      if (twin) {
        await repository.disconnect();
        throw new DiskflowError('REPO_ID_IN_USE', `this repository is already connected on host ${this.host.hostId} as ${twin.repoId}`);
      }
      try {
        const saved = await this.load();
        saved.connections[repoId] = { spec, repoUuid: repository.header.uuid, connectedAt: new Date().toISOString() };
        await this.save(saved);
        this.connected.set(repoId, { repoId, spec, repository });
        await this.pollers.startRepository(repository);
      } catch (error) {
        await this.forget(repoId).catch(() => undefined);
        await repository.disconnect().catch(() => undefined);
        throw error;
      }
      return repository;
    });
  }

  async disconnect(repoId: string): Promise<void> {
    return this.lock.run('connections', async () => {
      const connection = this.connected.get(repoId);
      if (!connection && !this.unreachable.has(repoId)) {
        throw new DiskflowError('REPO_NOT_CONNECTED', `repoId ${repoId} is not connected on host ${this.host.hostId}`);
      }
      if (connection) {
        await this.pollers.stopRepository(connection.repository.header.uuid);
        try {
          await connection.repository.disconnect();
        } catch (error) {
          // Still connected (e.g. the mount is busy): keep serving it.
          await this.pollers.startRepository(connection.repository);
          throw error;
        }
      }
      await this.forget(repoId);
    });
  }

  /** The repository this host connected as `repoId`. */
  byRepoId(repoId: string): Repository {
    const connection = this.connected.get(repoId);
    if (connection) return connection.repository;
    const why = this.unreachable.get(repoId);
    throw new DiskflowError(
      'REPO_NOT_CONNECTED',
      why ? `repoId ${repoId} on host ${this.host.hostId} could not be reconnected: ${why}` : `repoId ${repoId} is not connected on host ${this.host.hostId}`,
    );
  }

  /**
   * The repository with this identity, if this host has it connected. Steps name repositories
   * this way only where they were routed to a host that should have it: one that finds it
   * missing (a host still reconnecting after a restart, or that just disconnected it) fails
   * retryably, so the step runs again, here or on another host, instead of failing the work.
   */
  byUuid(repoUuid: string): Repository {
    for (const connection of this.connected.values()) {
      if (connection.repository.header.uuid === repoUuid) return connection.repository;
    }
    throw new DiskflowError('REPO_NOT_CONNECTED', `repository ${repoUuid} is not connected on host ${this.host.hostId}`, true);
  }

  /** The handles this host uses for a repository (usually one). */
  repoIdsOf(repoUuid: string): string[] {
    return [...this.connected.values()].filter((c) => c.repository.header.uuid === repoUuid).map((c) => c.repoId);
  }

  list(): ConnectedRepository[] {
    return [...this.connected.values()];
  }

  async close(): Promise<void> {
    for (const { repository } of this.connected.values()) await (repository.release ? repository.release() : repository.disconnect()).catch(() => undefined);
    this.connected.clear();
  }

  private async forget(repoId: string): Promise<void> {
    const saved = await this.load();
    delete saved.connections[repoId];
    await this.save(saved);
    this.connected.delete(repoId);
    this.unreachable.delete(repoId);
  }

  private async load(): Promise<ConnectionsFile> {
    const raw = await readJson(this.file);
    if (raw === null) return { schema: 'diskflow.connections/1', connections: {} };
    const parsed = ConnectionsFile.safeParse(raw);
    if (!parsed.success) throw new DiskflowError('STORAGE_ERROR', `${this.file} is corrupt: ${parsed.error.message}`);
    return parsed.data;
  }

  private async save(file: ConnectionsFile): Promise<void> {
    await mkdir(this.host.home, { recursive: true });
    await writeFileAtomic(this.file, JSON.stringify(file, null, 2) + '\n');
  }
}
