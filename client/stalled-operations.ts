/**
 * Operations on a repository that made no progress for a while (DISKFLOW_STALL_AFTER): what
 * `diskflow repo check` lists beside the fixes, and what a worker's diskflow_operations_stalled
 * counts for the steps it runs. Found through Temporal, which knows what runs: the repository's
 * running operations (search attribute DiskflowRepo), each one's pending step and its live
 * progress (the `progress` query, updated whenever the step's stage, percent or bytes move).
 *
 * A step runs without progress (a qemu-img hung on storage, a host that froze), or waits for a
 * host that can take it (none has the repository connected, or all are at their cap, or the
 * SRM is not elected). Paused operations (the pause signal, Temporal's activity pause) are not
 * stalled: someone paused them. Times compare the clocks of this machine, the server and the
 * host that reported progress, which NTP keeps within far less than a stall time.
 */
import type { Client } from '@temporalio/client';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import { OperationProgress, PROGRESS_QUERY } from '../api/progress';
import { DiskflowImage } from '../api/search-attributes';

/** PendingActivityState: SCHEDULED (no host has it), STARTED (a host runs it). */
const SCHEDULED = 1;

export interface StalledOperation {
  /** The operation's workflow id. */
  operationId: string;
  operationType: string;
  imageId: string | null;
  /** Since when nothing moved (ISO time). */
  since: string;
  stalledMs: number;
  /** What it waits for or where it stopped moving, in operators' words. */
  reason: string;
}

const MAX_OPERATIONS = 500;

export async function findStalledOperations(temporal: Client, repositoryId: string, afterMs: number, now = Date.now()): Promise<StalledOperation[]> {
  const stalled: StalledOperation[] = [];
  const query = `DiskflowRepo = '${repositoryId}' AND ExecutionStatus = 'Running'`;
  let seen = 0;
  for await (const execution of temporal.workflow.list({ query })) {
    if (++seen > MAX_OPERATIONS) break;
    const handle = temporal.workflow.getHandle(execution.workflowId, execution.runId);
    const [described, progress] = await Promise.all([
      handle.describe().catch(() => null),
      handle.query<OperationProgress>(PROGRESS_QUERY).catch(() => null),
    ]);
    if (!described || progress?.state === 'paused') continue;
    const imageId = described.typedSearchAttributes.get(DiskflowImage) ?? null;
    const base = { operationId: execution.workflowId, operationType: execution.type, imageId };
    for (const activity of described.raw.pendingActivities ?? []) {
      if (activity.paused) continue;
      const step = activity.activityType?.name ?? 'a step';
      if (Number(activity.state) === SCHEDULED) {
        const since = optionalTsToMs(activity.lastAttemptCompleteTime) ?? optionalTsToMs(activity.scheduledTime) ?? now;
        const what = progress?.waitingFor ?? progress?.runsOn ?? 'a host that polls its task queue';
        if (now - since >= afterMs) stalled.push({ ...base, since: new Date(since).toISOString(), stalledMs: now - since, reason: `${step} waits for ${what}` });
        continue;
      }
      // Running: the last progress the step reported, or its start when it reported none in this attempt.
      const started = optionalTsToMs(activity.lastStartedTime) ?? now;
      const reported = progress?.step ? Date.parse(progress.step.at) : 0;
      const since = Math.max(started, reported);
      if (now - since < afterMs) continue;
      const where = activity.lastWorkerIdentity ? ` on ${activity.lastWorkerIdentity}` : '';
      const at = progress?.step && reported >= started ? `, at stage ${progress.step.stage.current}/${progress.step.stage.total} ${progress.step.percentComplete}%` : '';
      stalled.push({ ...base, since: new Date(since).toISOString(), stalledMs: now - since, reason: `${step}${where} made no progress${at}` });
    }
  }
  return stalled;
}
