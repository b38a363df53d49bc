/**
 * "All operations return once the operation has been committed to disk, NOT when the operation
 * actually completes" (the RFC). The client starts an operation with Update-With-Start on the
 * `persisted` update; the update returns as soon as the persist step is durable on the
 * repository, while the workflow goes on with the fix.
 */
import { allHandlersFinished, condition, defineUpdate, setHandler } from '@temporalio/workflow';
import { PERSISTED_UPDATE } from '../api/operations';
import { codedFailure } from './failures';

export const persistedUpdate = defineUpdate<unknown>(PERSISTED_UPDATE);

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
  setHandler(persistedUpdate, async () => {
    await condition(() => outcome !== undefined);
    if (!outcome!.ok) throw outcome!.failure;
    return outcome!.answer;
  });
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
