/**
 * What the Temporal server remembers of operations: which workflows worked on an image, and
 * where each of their steps ran (the identity of the worker that started its activity task).
 */
import type { WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import type { StorageClient } from '../../client/storage-client';
import { eventually } from './wait';

export interface StepRun {
  activity: string;
  /** The activity's queue; for a local activity, the workflow's. */
  taskQueue: string;
  /** `<hostId>@<machine>/<pid>` of the worker that ran the step. */
  identity: string;
  host: string;
  attempt: number;
  /** A local activity: run by the workflow worker inside its workflow task. */
  local: boolean;
  /** What a local activity answered (activities' answers are not recorded for the others here). */
  result?: unknown;
}

/** The host of a worker identity `<hostId>@<machine>/<pid>`. */
const hostOf = (identity: string): string => identity.split('@')[0];

/** The value of a payload the default data converter wrote (absent: undefined). */
const valueOf = (payload: Payload | undefined): unknown => (payload ? defaultPayloadConverter.fromPayload(payload) : undefined);

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

/**
 * Where each activity of one workflow ran, from its history. A local activity has no task of its
 * own: the SDK records it as a `core_local_activity` marker in the workflow task that ran it, so
 * where it ran is the identity of the worker that completed that workflow task.
 */
export async function stepsOf(client: StorageClient, workflowId: string): Promise<StepRun[]> {
  const history = await client.temporal.workflow.getHandle(workflowId).fetchHistory();
  const scheduled = new Map<string, { activity: string; taskQueue: string }>();
  const workflowTaskBy = new Map<string, string>();
  let workflowQueue = '';
  const runs: StepRun[] = [];
  for (const e of history.events ?? []) {
    if (e.workflowExecutionStartedEventAttributes) workflowQueue = e.workflowExecutionStartedEventAttributes.taskQueue!.name!;
    if (e.workflowTaskCompletedEventAttributes) workflowTaskBy.set(String(e.eventId), e.workflowTaskCompletedEventAttributes.identity!);
    const marker = e.markerRecordedEventAttributes;
    if (marker?.markerName === 'core_local_activity') {
      const data = valueOf(marker.details?.data?.payloads?.[0]) as { activity_type: string; attempt: number };
      const identity = workflowTaskBy.get(String(marker.workflowTaskCompletedEventId))!;
      const result = valueOf(marker.details?.result?.payloads?.[0]);
      runs.push({ activity: data.activity_type, taskQueue: workflowQueue, identity, host: hostOf(identity), attempt: data.attempt, local: true, result });
    }
    if (e.activityTaskScheduledEventAttributes) {
      const a = e.activityTaskScheduledEventAttributes;
      scheduled.set(String(e.eventId), { activity: a.activityType!.name!, taskQueue: a.taskQueue!.name! });
    }
    if (e.activityTaskStartedEventAttributes) {
      const a = e.activityTaskStartedEventAttributes;
      runs.push({ ...scheduled.get(String(a.scheduledEventId))!, identity: a.identity!, host: hostOf(a.identity!), attempt: a.attempt!, local: false });
    }
  }
  return runs;
}
