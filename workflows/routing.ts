/**
 * Where each kind of step runs (docs/ARCHITECTURE.md, "Task queues"), with the timeouts and
 * retries that suit it, stated here next to the queue they belong to.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { RepositoryRef } from '../activities/host/repositories';
import { hostTaskQueue, repoTaskQueue, srmTaskQueue } from '../api/task-queues';

/**
 * Steps on one host's own queue (resolving its repoId handles, status reads, prepare). A host
 * queue has a single worker that may be down: scheduleToStart fails the call within seconds
 * instead of leaving the caller waiting on a host that is not there.
 */
export const onHost = (hostId: string) =>
  proxyActivities<Activities>({
    taskQueue: hostTaskQueue(hostId),
    scheduleToStartTimeout: '15 seconds',
    startToCloseTimeout: '2 minutes',
    retry: { maximumAttempts: 3, initialInterval: '200 milliseconds' },
  });

/**
 * Metadata steps that create or delete objects: on the SRM's queue where the format needs an
 * SRM, else on the repository's queue (any host that has it connected). They are short, so a
 * stuck attempt is retried quickly; they are idempotent, so retrying is safe.
 */
export const onObjectManager = (repo: RepositoryRef) =>
  proxyActivities<Activities>({
    taskQueue: repo.needsSrm ? srmTaskQueue(repo.repoUuid) : repoTaskQueue(repo.repoUuid),
    startToCloseTimeout: '1 minute',
    retry: { initialInterval: '200 milliseconds', maximumInterval: '30 seconds' },
  });

/**
 * Fix steps that move data, on any host that has the repository connected (or a chosen host).
 * No scheduleToStart limit: when no suitable host is up, the step waits, visibly, until one
 * is. The heartbeat timeout notices a dead host quickly; retries resume from persisted progress.
 */
export const forFixes = (repo: RepositoryRef, taskQueue = repoTaskQueue(repo.repoUuid)) =>
  proxyActivities<Activities>({
    taskQueue,
    startToCloseTimeout: '24 hours',
    heartbeatTimeout: '30 seconds',
    retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
  });
