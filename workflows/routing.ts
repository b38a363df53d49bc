/**
 * Where each kind of step runs (docs/ARCHITECTURE.md, "Hosts and task queues"), with the timeouts and
 * retries that suit it, stated here next to the queue they belong to.
 */
import { ApplicationFailure, TimeoutFailure } from '@temporalio/common';
import { ActivityCancellationType, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { RepositoryRef } from '../activities/host/repositories';
import { finalFailure } from '../api/failures';
import { hostTaskQueue, repoTaskQueue, srmTaskQueue } from '../api/task-queues';

/**
 * Steps on one host's own queue (resolving its repoId handles, status reads, prepare). A host
 * queue has a single worker that may be down: scheduleToStart fails the call within seconds
 * instead of leaving the caller waiting on a host that is not there.
 */
export function onHost(hostId: string): Activities {
  const steps = proxyActivities<Activities>({
    taskQueue: hostTaskQueue(hostId),
    scheduleToStartTimeout: `${HOST_ANSWER_SECONDS} seconds`,
    startToCloseTimeout: '2 minutes',
    // Every step heartbeats (activities/activity-defaults.ts): a host killed mid-step is noticed soon.
    heartbeatTimeout: '10 seconds',
    retry: { maximumAttempts: 3, initialInterval: '200 milliseconds' },
  });
  // Each step, with a host that never picked it up reported as such rather than as a bare timeout.
  return new Proxy(steps, {
    get: (target, name: keyof Activities) =>
      async (...args: unknown[]) => {
        try {
          return await (target[name] as (...a: unknown[]) => Promise<unknown>)(...args);
        } catch (error) {
          throw hostNotAnswering(error, hostId) ?? error;
        }
      },
  });
}

const HOST_ANSWER_SECONDS = 15;

function hostNotAnswering(error: unknown, hostId: string): ApplicationFailure | undefined {
  const cause = (error as { cause?: unknown }).cause;
  if (!(cause instanceof TimeoutFailure) || cause.timeoutType !== 'SCHEDULE_TO_START') return undefined;
  return finalFailure('STORAGE_ERROR', `host ${hostId} did not answer within ${HOST_ANSWER_SECONDS} s: is its worker (diskflow worker --host-id ${hostId}) running?`);
}

/**
 * Metadata steps that create or delete objects: on the SRM's queue where the format needs an
 * SRM, else on the repository's queue (any host that has it connected). They are short, so a
 * stuck attempt is retried quickly; they are idempotent, so retrying is safe.
 */
export const onObjectManager = (repo: Pick<RepositoryRef, 'repoUuid' | 'needsSrm'>) =>
  proxyActivities<Activities>({
    taskQueue: repo.needsSrm ? srmTaskQueue(repo.repoUuid) : repoTaskQueue(repo.repoUuid),
    startToCloseTimeout: '10 minutes',
    heartbeatTimeout: '10 seconds',
    retry: { initialInterval: '200 milliseconds', maximumInterval: '30 seconds' },
  });

/**
 * Fix steps that move data, on any host that has the repository connected (or a chosen host).
 * No scheduleToStart limit: when no suitable host is up, the step waits, visibly, until one
 * is. Steps heartbeat every second or so, so a 10 s heartbeat timeout notices a dead host
 * quickly; retries resume from persisted progress. A cancelled step is waited for until it
 * has really stopped (its qemu-img killed), so what is recorded afterwards is the final state.
 */
const forFixesOn = (taskQueue: string) =>
  proxyActivities<Activities>({
    taskQueue,
    startToCloseTimeout: '24 hours',
    heartbeatTimeout: '10 seconds',
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
  });

/**
 * Where a fix step runs, decided once: the task queue, the same place in operators' words (the
 * `runsOn` and `waitingFor` of the progress query, workflows/control.ts), and the steps proxied
 * to that queue. The step and its progress cannot name two different places.
 */
export interface FixRoute {
  repo: RepositoryRef;
  taskQueue: string;
  runsOn: string;
  steps: Activities;
}

/** What decides where a fix step on an image runs (fixRoute). */
export interface Placement {
  /** The caller's host: the host that resolved the call, with its repoId handles. */
  callerHostId: string;
  /** The step copies data from another repository than `repo`. */
  copiesFromAnotherRepository?: boolean;
  /** The image is served to its VM by a daemon on this host (its live steps run there). */
  servedOn?: string | null;
  /** The host the engine chose for the I/O (fixStorageRepository's `options.hostId`). */
  chosenHost?: string | null;
}

/**
 * The one routing rule of fix steps, first match wins:
 *
 * 1. a served image's step runs on the host whose daemon serves it, whatever was asked;
 * 2. a host the engine chose runs it;
 * 3. a copy from another repository runs on the caller's host, the one host known to have both
 *    connected (into a repository that needs an SRM too: it sends its metadata changes to the
 *    SRM, activities/srm/metadata-forwarder.ts, and moves the data itself);
 * 4. else any host that has the repository connected (its repository queue).
 */
export function fixRoute(repo: RepositoryRef, placement: Placement): FixRoute {
  const host = placement.servedOn ?? placement.chosenHost ?? (placement.copiesFromAnotherRepository ? placement.callerHostId : null);
  const taskQueue = host ? hostTaskQueue(host) : repoTaskQueue(repo.repoUuid);
  const runsOn = host ? `host ${host} (task queue ${taskQueue})` : `a host with repository ${repo.repoUuid} connected (task queue ${taskQueue})`;
  return { repo, taskQueue, runsOn, steps: forFixesOn(taskQueue) };
}

/** Where a clean runs: where objects may be deleted (onObjectManager), as a route like any fix step's. */
export function objectManagerRoute(repo: RepositoryRef): FixRoute {
  const taskQueue = repo.needsSrm ? srmTaskQueue(repo.repoUuid) : repoTaskQueue(repo.repoUuid);
  const runsOn = repo.needsSrm ? `the SRM of repository ${repo.repoUuid} (task queue ${taskQueue})` : `a host with repository ${repo.repoUuid} connected (task queue ${taskQueue})`;
  return { repo, taskQueue, runsOn, steps: onObjectManager(repo) };
}

/**
 * A backup export, held by one step on the caller's host for as long as it is used: no end but
 * the export's own (stopped, idle); heartbeats tell a dead host within seconds, and the retried
 * step serves it again there. A host that is down fails the call quickly, as host steps do.
 */
export const forBackupExport = (hostId: string) =>
  proxyActivities<Activities>({
    taskQueue: hostTaskQueue(hostId),
    scheduleToStartTimeout: `${HOST_ANSWER_SECONDS} seconds`,
    startToCloseTimeout: '7 days',
    heartbeatTimeout: '10 seconds',
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 5 },
  });
