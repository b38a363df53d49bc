/**
 * Runs an operation's persist step where the repository allows: on the caller's host when any
 * host may create objects there (it resolves the repoId and persists in one step), else on the
 * repository's SRM.
 */
import type { RepositoryRef } from '../activities/host/repositories';
import type { Persisted, PersistStep } from '../activities/images/persist';
import { onHost, onObjectManager } from './routing';

export async function persistStep<K extends PersistStep['kind']>(
  hostId: string,
  repoId: string,
  step: Extract<PersistStep, { kind: K }>,
): Promise<{ repo: RepositoryRef; persisted: Extract<Persisted, { kind: K }> }> {
  const { repo, persisted } = await onHost(hostId).resolveAndPersist({ repoId, step });
  const result = persisted ?? (await onObjectManager(repo).persist({ repoUuid: repo.repoUuid, step }));
  return { repo, persisted: result as Extract<Persisted, { kind: K }> };
}
