/**
 * "All operations return once the operation has been committed to disk, NOT when the operation
 * actually completes" (the RFC). The client starts an operation with Update-With-Start on the
 * `persisted` update; the update returns as soon as the persist step is durable on the
 * repository, while the workflow goes on with the fix.
 *
 * The update takes the request as its argument (the workflow's own input, as the caller sent
 * it): a requestId (a workflow id) names one request, so a call that reuses it with other
 * arguments is refused with INVALID_ARGUMENT by the update's validator, before anything is
 * recorded. Without the argument (an engine that does not send it) nothing is compared.
 */
import { allHandlersFinished, condition, defineUpdate, setHandler, workflowInfo } from '@temporalio/workflow';
import { finalFailure } from '../api/failures';
import { PERSISTED_UPDATE, requestIdentity, WORKFLOW_CONTRACTS, WorkflowType } from '../api/operations';
import { codedFailure } from './failures';
import { startedWith } from './started-with';

export const persistedUpdate = defineUpdate<unknown, unknown[]>(PERSISTED_UPDATE);

/** Refuses a `persisted` update whose request is not the one this workflow was started with. */
function assertSameRequest(request: unknown): void {
  if (request === undefined) return;
  const { workflowType, workflowId } = workflowInfo();
  const input = startedWith();
  if (!input || !Object.hasOwn(WORKFLOW_CONTRACTS, workflowType)) return;
  const type = workflowType as WorkflowType;
  const asked = requestIdentity(type, request);
  if (asked !== null && asked === requestIdentity(type, input.value)) return;
  throw finalFailure('INVALID_ARGUMENT', `operation ${workflowId} was started with other arguments: a requestId names one request; use another requestId for another request`);
}

type Outcome = { ok: true; answer: unknown } | { ok: false; failure: unknown };

export interface PersistFirst<A> {
  /**
   * Runs the steps that make the operation durable; once they succeed, the `persisted` update
   * answers `answer(result)`. If they fail, the update and the workflow fail with the same code.
   */
  persisting<T>(steps: () => Promise<T>, answer: (persisted: T) => A): Promise<T>;
  /** Ends the workflow with `result` once the update has been answered. */
  done<R>(result: R): Promise<R>;
}

/** Must be called first thing in the workflow, so the update finds its handler. */
export function answerOncePersisted<A>(): PersistFirst<A> {
  let outcome: Outcome | undefined;
  setHandler(
    persistedUpdate,
    async () => {
      await condition(() => outcome !== undefined);
      if (!outcome!.ok) throw outcome!.failure;
      return outcome!.answer;
    },
    { validator: (...args: unknown[]) => assertSameRequest(args[0]) },
  );
  return {
    async persisting(steps, answer) {
      try {
        const persisted = await steps();
        outcome = { ok: true, answer: answer(persisted) };
        return persisted;
      } catch (error) {
        outcome = { ok: false, failure: codedFailure(error) };
        await condition(allHandlersFinished);
        throw outcome.failure;
      }
    },
    async done(result) {
      await condition(allHandlersFinished);
      return result;
    },
  };
}
