/**
 * The local activities of workflows: run by the host whose workflow worker runs the workflow
 * task, with no task of their own (no dispatch, no second workflow task).
 */
import type { ActivityDeps } from './deps';
import { createRepositoryActivities } from './host/repositories';
import type { Persisted, PersistRequest, PersistStep } from './operations';
import type { RepositoryRef } from './host/repositories';
import { createMetadataCheckActivities } from './srm/apply-metadata';

export type PersistedHere = { here: false } | { here: true; repo: RepositoryRef; step: PersistStep; persisted: Persisted | null };

export function createWorkflowLocalActivities(deps: ActivityDeps) {
  const { resolveAndPersist } = createRepositoryActivities(deps);
  return {
    ...createMetadataCheckActivities(deps),

    /**
     * The caller's host's resolveAndPersist (activities/host/repositories.ts), run here when
     * this host is the caller's host; `here: false` (nothing done) otherwise, and the workflow
     * sends the step to that host's queue. Saves the step's dispatch and a workflow task where
     * the host that answers is the host that must do the work (workflows/persist-step.ts).
     */
    async resolveAndPersistHere(input: { hostId: string; repoId: string; request: PersistRequest }): Promise<PersistedHere> {
      if (input.hostId !== deps.hostId) return { here: false };
      return { here: true, ...(await resolveAndPersist({ repoId: input.repoId, request: input.request })) };
    },
  };
}
export type WorkflowLocalActivities = ReturnType<typeof createWorkflowLocalActivities>;
