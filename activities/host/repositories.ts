/** Steps that run on one host: its repoId handles and its connections. */
import { Context } from '@temporalio/activity';
import { DiskflowError } from '../../api/errors';
import type { RepoFormat, RepositorySpec } from '../../api/formats';
import type { ActivityDeps } from '../deps';
import { createPersistActivities, Persisted, PersistRequest, PersistStep, resolveRequest } from '../operations';
import type { Repository } from '../repository/repository';

/** What a workflow needs to route the rest of an operation once a repoId has been resolved. */
export interface RepositoryRef {
  repoUuid: string;
  repoFormat: RepoFormat;
  needsSrm: boolean;
  /** The host holding the SRM role, when the format needs one and a host holds it. */
  srmHostId: string | null;
  /** The host whose handle this was. */
  hostId: string;
}

/** How workflows name `repo` from here on: by identity, with what routing its steps needs. */
export async function repositoryRef({ hostId, srm }: ActivityDeps, repo: Repository): Promise<RepositoryRef> {
  return {
    repoUuid: repo.header.uuid,
    repoFormat: repo.header.format,
    needsSrm: repo.traits.needsSrm,
    // Read from the repository's SRM lease, so every host reports the same holder.
    srmHostId: repo.traits.needsSrm && srm ? await srm.holderOf(repo) : null,
    hostId,
  };
}

export function createRepositoryActivities(deps: ActivityDeps) {
  const { connections, hostId } = deps;
  const { persist } = createPersistActivities(deps);
  const resolve = (repoId: string) => repositoryRef(deps, connections.byRepoId(repoId));

  return {
    async initRepository(spec: RepositorySpec): Promise<void> {
      await connections.init(spec);
    },

    async connectRepository(input: { repoId: string } & RepositorySpec): Promise<void> {
      const { repoId, ...spec } = input;
      await connections.connect(repoId, spec as RepositorySpec);
    },

    async disconnectRepository(input: { repoId: string }): Promise<void> {
      await connections.disconnect(input.repoId);
    },

    async resolveRepository(input: { repoId: string }): Promise<RepositoryRef> {
      return resolve(input.repoId);
    },

    /** Makes this host the SRM of the repository it connected as repoId (SRM_CONFLICT if another host is). */
    async startRepositoryManager(input: { repoId: string }): Promise<void> {
      if (!deps.srm) throw new DiskflowError('SRM_REQUIRED', `host ${hostId} cannot act as an SRM`);
      await deps.srm.start(connections.byRepoId(input.repoId), () => Context.current().heartbeat());
    },

    /** This host stops being the repository's SRM (nothing if it was not). */
    async stopRepositoryManager(input: { repoId: string }): Promise<void> {
      await deps.srm?.stop(connections.byRepoId(input.repoId).header.uuid);
    },

    /** Asked of a host the engine chose for a fix's I/O: does it have the repository connected? */
    async requireConnected(input: { repoUuid: string; repoId: string }): Promise<void> {
      try {
        connections.byUuid(input.repoUuid);
      } catch {
        throw new DiskflowError('REPO_NOT_CONNECTED', `host ${hostId} does not have repository ${input.repoId} connected, so it cannot run this fix; connect it there or choose another host`);
      }
    },

    /**
     * Resolves the caller's repoId and references and, where this host may create and delete
     * objects on the repository, persists the operation right here. `persisted` is null when
     * the resolved step must go to the repository's SRM instead.
     */
    async resolveAndPersist(input: {
      repoId: string;
      request: PersistRequest;
    }): Promise<{ repo: RepositoryRef; step: PersistStep; persisted: Persisted | null }> {
      const repo = await resolve(input.repoId);
      const step = await resolveRequest(deps, input.repoId, input.request);
      if (repo.needsSrm && repo.srmHostId === null) {
        // Nobody would take the step: say so now rather than leave the caller waiting.
        throw new DiskflowError('SRM_REQUIRED', `repository ${input.repoId} needs an SRM to create or delete objects and none is elected; run startRepositoryManager first`);
      }
      if (repo.needsSrm && repo.srmHostId !== hostId) return { repo, step, persisted: null };
      return { repo, step, persisted: await persist({ repoUuid: repo.repoUuid, step }) };
    },
  };
}
