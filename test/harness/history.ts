/**
 * What the Temporal server remembers of operations: which workflows worked on an image, and
 * where each of their steps ran (the identity of the worker that started its activity task).
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { StorageClient } from '../../client/storage-client';
import { eventually } from './wait';

export interface StepRun {
  activity: string;
  taskQueue: string;
  /** `<hostId>@<machine>/<pid>` of the worker that ran the step. */
  identity: string;
  host: string;
  attempt: number;
}

/** The ids of the workflows of `type` on an image (with `extra` query terms), once `enough` holds. */
export function operationsOn(
  client: StorageClient,
  type: string,
  imageId: string,
  { extra = '', enough = (ids: string[]) => ids.length > 0 }: { extra?: string; enough?: (ids: string[]) => boolean } = {},
): Promise<string[]> {
  return eventually(async () => {
    const found: string[] = [];
    for await (const wf of client.temporal.workflow.list({ query: `DiskflowImage = '${imageId}' AND WorkflowType = '${type}'${extra}` })) found.push(wf.workflowId);
    return found;
  }, enough);
}

/** The one workflow of `type` on an image. */
export async function operationOn(client: StorageClient, type: string, imageId: string): Promise<WorkflowHandle> {
  const [id] = await operationsOn(client, type, imageId, { enough: (ids) => ids.length === 1 });
  return client.temporal.workflow.getHandle(id);
}

/** Where each activity of one workflow ran, from its history. */
export async function stepsOf(client: StorageClient, workflowId: string): Promise<StepRun[]> {
  const history = await client.temporal.workflow.getHandle(workflowId).fetchHistory();
  const scheduled = new Map<string, { activity: string; taskQueue: string }>();
  const runs: StepRun[] = [];
  for (const e of history.events ?? []) {
    if (e.activityTaskScheduledEventAttributes) {
      const a = e.activityTaskScheduledEventAttributes;
      scheduled.set(String(e.eventId), { activity: a.activityType!.name!, taskQueue: a.taskQueue!.name! });
    }
    if (e.activityTaskStartedEventAttributes) {
      const a = e.activityTaskStartedEventAttributes;
      runs.push({ ...scheduled.get(String(a.scheduledEventId))!, identity: a.identity!, host: a.identity!.split('@')[0], attempt: a.attempt! });
    }
  }
  return runs;
}
