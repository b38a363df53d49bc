/**
 * Runs an operation's persist step where the repository allows: on the caller's host when any
 * host may create objects there (it resolves the references and persists in one step), else on
 * the repository's SRM with the step the caller's host resolved.
 */
import type { RepositoryRef } from '../activities/host/repositories';
import type { Persisted, PersistRequest, PersistStep } from '../activities/operations';
import { onHost, onObjectManager } from './routing';

export async function persistStep<R extends PersistRequest>(
  hostId: string,
  repoId: string,
  request: R,
): Promise<{ repo: RepositoryRef; step: Extract<PersistStep, { op: R['op'] }>; persisted: Extract<Persisted, { op: R['op'] }> }> {
  const { repo, step, persisted } = await onHost(hostId).resolveAndPersist({ repoId, request });
  const result = persisted ?? (await onObjectManager(repo).persist({ repoUuid: repo.repoUuid, step }));
  return { repo, step: step as Extract<PersistStep, { op: R['op'] }>, persisted: result as Extract<Persisted, { op: R['op'] }> };
}
