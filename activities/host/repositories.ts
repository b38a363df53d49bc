/** Steps that run on one host: its repoId handles and its connections. */
import type { RepositorySpec } from '../../api/formats';
import type { RepoFormat } from '../../api/formats';
import type { ActivityDeps } from '../deps';

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

export function createRepositoryActivities({ connections, hostId }: ActivityDeps) {
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
      const repo = connections.byRepoId(input.repoId);
      return {
        repoUuid: repo.header.uuid,
        repoFormat: repo.header.format,
        needsSrm: repo.traits.needsSrm,
        srmHostId: null,
        hostId,
      };
    },
  };
}
