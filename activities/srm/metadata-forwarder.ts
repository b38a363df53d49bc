/**
 * How a host that is not a repository's SRM gets a metadata change made (docs/ARCHITECTURE.md,
 * "clvm-1.0 on disk", "Who writes what"): from inside the step that needs it, it runs the
 * `srmMetadataStep` workflow, whose one activity (`applyMetadataOnSrm`) runs on the SRM queue
 * and makes the change on the SRM's own connection. The step keeps heartbeating meanwhile
 * (activity-defaults.ts), so it stays alive while no SRM is elected and the change waits.
 */
import { randomUUID } from 'node:crypto';
import { Context, getClient } from '@temporalio/activity';
import { toDiskflowError } from '../../api/failures';
import { srmTaskQueue, WORKFLOW_TASK_QUEUE } from '../../api/task-queues';
import type { MetadataCall, MetadataForwarder } from '../repository/repository';

export const SRM_METADATA_WORKFLOW = 'srmMetadataStep';

export interface SrmMetadataInput {
  repoUuid: string;
  call: MetadataCall;
}

export const metadataForwarder: MetadataForwarder = {
  forward(repoUuid, call) {
    let context: Context;
    try {
      context = Context.current();
    } catch {
      return null; // not inside a step: no client to send it with
    }
    // A step from the SRM queue makes its changes itself or fails (SRM_REQUIRED, retried there).
    if (context.info.taskQueue === srmTaskQueue(repoUuid)) return null;
    return send({ repoUuid, call }, context);
  },
};

async function send(input: SrmMetadataInput, context: Context): Promise<unknown> {
  const handle = await getClient().workflow.start(SRM_METADATA_WORKFLOW, {
    taskQueue: WORKFLOW_TASK_QUEUE,
    // One workflow per change: a retried step sends its change again (every change is idempotent).
    workflowId: `srm-metadata-${input.repoUuid}-${randomUUID()}`,
    args: [input],
  });
  try {
    // A cancelled step stops waiting; the change itself still completes on the SRM or not at all.
    return await Promise.race([handle.result(), context.cancelled]);
  } catch (error) {
    throw toDiskflowError(error);
  }
}
