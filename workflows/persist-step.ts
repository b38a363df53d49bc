/**
 * Runs an operation's persist step where the repository allows: on the caller's host when any
 * host may create objects there (it resolves the references and persists in one step), else on
 * the repository's SRM with the step the caller's host resolved. The caller's host's step is a
 * local activity when that host runs the workflow task.
 */
import { patched, proxyLocalActivities } from '@temporalio/workflow';
import type { RepositoryRef } from '../activities/host/repositories';
import type { Persisted, PersistRequest, PersistStep } from '../activities/operations';
import type { WorkflowLocalActivities } from '../activities/workflow-local';
import { onHost, onObjectManager } from './routing';

/** As onHost's steps (workflows/routing.ts): short, idempotent, retried a little. */
const local = proxyLocalActivities<WorkflowLocalActivities>({
  startToCloseTimeout: '2 minutes',
  retry: { maximumAttempts: 3, initialInterval: '200 milliseconds' },
});

export async function persistStep<R extends PersistRequest>(
  hostId: string,
  repoId: string,
  request: R,
): Promise<{ repo: RepositoryRef; step: Extract<PersistStep, { op: R['op'] }>; persisted: Extract<Persisted, { op: R['op'] }> }> {
  // Where the workflow task runs on the caller's host, the step runs right here, as a local
  // activity: no dispatch and no workflow task of its own. Elsewhere it goes to that host's
  // queue. Operations started before replay as they ran.
  const here = patched('persist-on-the-answering-host') ? await local.resolveAndPersistHere({ hostId, repoId, request }) : ({ here: false } as const);
  const { repo, step, persisted } = here.here ? here : await onHost(hostId).resolveAndPersist({ repoId, request });
  const result = persisted ?? (await onObjectManager(repo).persist({ repoUuid: repo.repoUuid, step }));
  return { repo, step: step as Extract<PersistStep, { op: R['op'] }>, persisted: result as Extract<Persisted, { op: R['op'] }> };
}
