/**
 * How a change forwarding-repository.ts decided to send reaches the repository's SRM (docs/SRM.md,
 * "clvm-1.0 on disk", "Who writes what"): from inside the step that needs it, it runs the
 * `srmMetadataStep` workflow, whose one activity (`applyMetadataOnSrm`) runs on the SRM queue
 * and makes the change on the SRM's own connection. The step keeps heartbeating meanwhile
 * (activity-defaults.ts), so it stays alive while no SRM is elected and the change waits.
 * Every change is signed with the cluster's key and bound to the operation whose step sends it
 * (metadata-signature.ts): the SRM makes no change that did not come from diskflow.
 */
import { randomUUID } from 'node:crypto';
import { Context, getClient } from '@temporalio/activity';
import { toDiskflowError } from '../../api/failures';
import { SRM_METADATA_WORKFLOW, SrmMetadataInput } from '../../api/srm-metadata';
import { srmTaskQueue, WORKFLOW_TASK_QUEUE } from '../../api/task-queues';
import type { MetadataForwarder } from '../repository/repository';
import { signMetadataCall } from './metadata-signature';

export { SRM_METADATA_WORKFLOW };

export function createMetadataForwarder(key: Buffer): MetadataForwarder {
  return {
    forward(repoUuid, call) {
      let context: Context;
      try {
        context = Context.current();
      } catch {
        return null; // not inside a step: no client to send it with
      }
      // A step from the SRM queue makes its changes itself or fails (SRM_REQUIRED, retried there).
      if (context.info.taskQueue === srmTaskQueue(repoUuid)) return null;
      // The operation is the workflow that runs the step: the SRM makes the change only while it runs.
      const operationId = context.info.workflowExecution?.workflowId;
      if (!operationId) return null;
      return send(signMetadataCall(key, { repoUuid, operationId, call }), context);
    },
  };
}

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
