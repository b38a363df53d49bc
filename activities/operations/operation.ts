/**
 * One RFC operation's first half, "persist first": what the caller asked (`Request`, images
 * named as the caller named them) is resolved on the caller's host into a `Step` that names
 * repositories by identity and carries the facts it needs about its sources; the step then
 * makes the operation's intent durable on the repository (`Persisted` is what the workflow
 * needs to go on). Each operation is one module implementing this; operations/index.ts is the
 * registry that dispatches to them.
 */
import type { ActivityDeps } from '../deps';
import type { Repository } from '../repository/repository';

export interface Operation<Request, Step, Persisted> {
  /** On the caller's host, whose repoId handles and lookup options the request is in. */
  resolve(deps: ActivityDeps, targetRepoId: string, request: Request): Promise<Step>;
  /**
   * Where the repository lets objects be created (the caller's host, or the SRM): makes the
   * intent durable. Idempotent: a retried step recognises what an earlier attempt persisted.
   */
  persist(deps: ActivityDeps, repo: Repository, step: Step): Promise<Persisted>;
}
