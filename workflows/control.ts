/**
 * What operators and engines can do to a running operation: ask its live progress (query
 * `progress`), pause and resume it (signals `pause`, `resume`), cancel it (Temporal's own
 * cancellation, from the client, the CLI or the Web UI). Every fix step runs through here:
 *
 * - pause stops the step's activity (its qemu-img is killed) and waits; resume runs it again,
 *   and it continues from the progress persisted on the repository;
 * - cancel stops the step and records on the image why it stopped, leaving it in its last
 *   persisted state for a later fix.
 */
import {
  CancellationScope,
  condition,
  defineQuery,
  defineSignal,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { RepositoryRef } from '../activities/host/repositories';
import { describeFailure, isCancellation } from '../api/failures';
import { OperationProgress, PAUSE_SIGNAL, PROGRESS_QUERY, PROGRESS_SIGNAL, RESUME_SIGNAL, StepProgress } from '../api/progress';
import { codedFailure } from './failures';
import { FixRoute, onObjectManager } from './routing';

export const pauseSignal = defineSignal(PAUSE_SIGNAL);
export const resumeSignal = defineSignal(RESUME_SIGNAL);
export const progressSignal = defineSignal<[StepProgress]>(PROGRESS_SIGNAL);
export const progressQuery = defineQuery<OperationProgress>(PROGRESS_QUERY);

export interface OperationControl {
  /**
   * Runs a fix step on an image (null: on no one image, a clean of orphans), pausable and
   * cancellable as described above. The step runs on `route` (routing.ts), and the progress
   * query says the same place: both come from the one route.
   */
  fix<T>(route: FixRoute, imageId: string | null, step: (route: FixRoute) => Promise<T>): Promise<T>;
  /** Runs a step that changes no image's state (an export), cancellable, with its progress in the query. */
  run<T>(step: () => Promise<T>): Promise<T>;
  /** Marks the operation done, for the progress query. */
  done(): void;
}

/** Must be called first thing in the workflow, so signals and queries find their handlers. */
export function operationControl(): OperationControl {
  const root = CancellationScope.current();
  let state: OperationProgress['state'] = 'persisting';
  let paused = false;
  let last: StepProgress | null = null;
  let running: CancellationScope | undefined;
  // Where the current step may run, and whether a host has reported from it yet: until one
  // has, the step waits for such a host (there may be none up), and the query says so.
  let runsOn: string | null = null;
  let started = false;

  setHandler(progressQuery, () => ({
    state: paused ? 'paused' : state,
    step: last,
    waitingFor: runsOn && !started && !paused ? runsOn : null,
    runsOn,
  }));
  setHandler(progressSignal, (progress) => {
    last = progress;
    started = true;
  });
  setHandler(pauseSignal, () => {
    paused = true;
    running?.cancel();
  });
  setHandler(resumeSignal, () => {
    paused = false;
  });

  const record = (repo: RepositoryRef, imageId: string, reason: string, keepClaim: boolean) =>
    CancellationScope.nonCancellable(() =>
      onObjectManager(repo).recordStoppedWork({ repoUuid: repo.repoUuid, imageId, operationId: workflowInfo().workflowId, reason, keepClaim }),
    );

  return {
    async fix(route, imageId, step) {
      const { repo } = route;
      state = 'fixing';
      for (;;) {
        try {
          await condition(() => !paused);
          runsOn = route.runsOn;
          started = false;
          const scope = new CancellationScope();
          running = scope;
          return await scope.run(() => step(route));
        } catch (error) {
          if (isCancellation(error) && paused && !root.consideredCancelled) {
            if (imageId) await record(repo, imageId, 'paused by request; the resume signal continues it', true);
            continue;
          }
          const reason = isCancellation(error) ? 'cancelled by request; a mend fix resumes it' : describeFailure(error);
          if (imageId) await record(repo, imageId, reason, false);
          throw codedFailure(error);
        } finally {
          running = undefined;
          runsOn = null;
        }
      }
    },
    async run(step) {
      state = 'fixing';
      started = true;
      try {
        return await step();
      } catch (error) {
        throw codedFailure(error);
      }
    },
    done() {
      state = 'done';
    },
  };
}
