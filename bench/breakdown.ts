/**
 * Where an operation's time goes, from the workflow histories Temporal keeps of it: the round
 * trips (workflow tasks, activities, local activities, updates, child workflows), the time a
 * step waited in its queue before a worker took it (schedule-to-start), the time each step ran,
 * and the record fsyncs diskflow made meanwhile (activities/repository/atomic-file.ts counts
 * them; qemu-img's own flushes are not counted). The benchmarks print it next to their figures
 * (docs/ARCHITECTURE.md, "Where an operation's time goes").
 */
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { processRuns } from '../activities/process';
import { recordFsyncs } from '../activities/repository/atomic-file';
import { percentile } from './machine';

const E = temporal.api.enums.v1.EventType;
type Event = temporal.api.history.v1.IHistoryEvent;

const ms = (t: Event['eventTime']): number => (t ? Number(t.seconds ?? 0) * 1000 + (t.nanos ?? 0) / 1e6 : NaN);

/** What one operation's workflow (and its children) did. */
export interface OperationTrace {
  workflowTasks: number;
  /** Workflow tasks completed until the caller's update was answered, the answering one included (the call's latency). */
  workflowTasksToAnswer: number;
  activities: string[];
  /** Activities completed before the update was answered. */
  activitiesToAnswer: number;
  localActivities: number;
  updates: number;
  children: number;
  timers: number;
  /** ms each activity waited between scheduled and started, and each workflow task. */
  activityQueueMs: number[];
  workflowTaskQueueMs: number[];
  /** ms each activity ran, by type. */
  activityRunMs: Record<string, number[]>;
  /** ms from the first event to the update's answer, and to the workflow's end. */
  toAnswerMs: number;
  totalMs: number;
  /** Activity type -> worker identities that ran it. */
  ranBy: string[];
}

export async function traceOperation(client: Client, workflowId: string, runId?: string): Promise<OperationTrace> {
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  const events = history.events ?? [];
  const byId = new Map<number, Event>(events.map((e) => [Number(e.eventId), e]));
  const trace: OperationTrace = {
    workflowTasks: 0,
    workflowTasksToAnswer: 0,
    activities: [],
    activitiesToAnswer: 0,
    localActivities: 0,
    updates: 0,
    children: 0,
    timers: 0,
    activityQueueMs: [],
    workflowTaskQueueMs: [],
    activityRunMs: {},
    toAnswerMs: NaN,
    totalMs: NaN,
    ranBy: [],
  };
  const first = ms(events[0]?.eventTime);
  let answered = false;
  const childRuns: { workflowId: string; runId: string }[] = [];
  for (const e of events) {
    switch (e.eventType) {
      case E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
        trace.workflowTasks++;
        break;
      case E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
        // The task that answers the update counts: its completion carries the answer.
        if (!answered) trace.workflowTasksToAnswer++;
        break;
      case E.EVENT_TYPE_WORKFLOW_TASK_STARTED: {
        const scheduled = byId.get(Number(e.workflowTaskStartedEventAttributes?.scheduledEventId));
        if (scheduled) trace.workflowTaskQueueMs.push(ms(e.eventTime) - ms(scheduled.eventTime));
        break;
      }
      case E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        trace.activities.push(e.activityTaskScheduledEventAttributes?.activityType?.name ?? '?');
        break;
      case E.EVENT_TYPE_ACTIVITY_TASK_STARTED: {
        const scheduled = byId.get(Number(e.activityTaskStartedEventAttributes?.scheduledEventId));
        if (scheduled) trace.activityQueueMs.push(ms(e.eventTime) - ms(scheduled.eventTime));
        trace.ranBy.push(e.activityTaskStartedEventAttributes?.identity ?? '?');
        break;
      }
      case E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: {
        const started = byId.get(Number(e.activityTaskCompletedEventAttributes?.startedEventId));
        const scheduled = byId.get(Number(e.activityTaskCompletedEventAttributes?.scheduledEventId));
        const type = scheduled?.activityTaskScheduledEventAttributes?.activityType?.name ?? '?';
        if (started) (trace.activityRunMs[type] ??= []).push(ms(e.eventTime) - ms(started.eventTime));
        if (!answered) trace.activitiesToAnswer++;
        break;
      }
      case E.EVENT_TYPE_MARKER_RECORDED:
        if (e.markerRecordedEventAttributes?.markerName === 'core_local_activity') trace.localActivities++;
        break;
      case E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
        trace.updates++;
        break;
      case E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
        if (!answered) trace.toAnswerMs = ms(e.eventTime) - first;
        answered = true;
        break;
      case E.EVENT_TYPE_TIMER_STARTED:
        trace.timers++;
        break;
      case E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED: {
        const run = e.childWorkflowExecutionStartedEventAttributes?.workflowExecution;
        if (run?.workflowId) childRuns.push({ workflowId: run.workflowId, runId: run.runId ?? '' });
        break;
      }
    }
  }
  trace.totalMs = ms(events[events.length - 1]?.eventTime) - first;
  for (const child of childRuns) {
    const c = await traceOperation(client, child.workflowId, child.runId || undefined);
    trace.children += 1 + c.children;
    trace.workflowTasks += c.workflowTasks;
    trace.activities.push(...c.activities);
    trace.localActivities += c.localActivities;
    trace.timers += c.timers;
    trace.activityQueueMs.push(...c.activityQueueMs);
    trace.workflowTaskQueueMs.push(...c.workflowTaskQueueMs);
    trace.ranBy.push(...c.ranBy);
    for (const [type, list] of Object.entries(c.activityRunMs)) (trace.activityRunMs[type] ??= []).push(...list);
  }
  return trace;
}

/** What this process has done so far: record fsyncs (files + directories) and child processes run. */
export interface WorkDone {
  fsyncs: number;
  processes: Map<string, { count: number; ms: number }>;
}

export const workNow = (): WorkDone => ({ fsyncs: fsyncsNow(), processes: new Map([...processRuns].map(([k, v]) => [k, { ...v }])) });

/** The work of several operations of one kind, each added from the WorkDone taken as it began. */
export class WorkTally {
  fsyncs = 0;
  operations = 0;
  readonly processes = new Map<string, { count: number; ms: number }>();

  /** Adds one operation: the work done since `before`. */
  add(before: WorkDone): void {
    const now = workNow();
    this.operations++;
    this.fsyncs += now.fsyncs - before.fsyncs;
    for (const [key, v] of now.processes) {
      const was = before.processes.get(key) ?? { count: 0, ms: 0 };
      if (v.count === was.count) continue;
      const entry = this.processes.get(key) ?? { count: 0, ms: 0 };
      this.processes.set(key, { count: entry.count + v.count - was.count, ms: entry.ms + v.ms - was.ms });
    }
  }

  describe(): string {
    const n = Math.max(1, this.operations);
    const commands = [...this.processes]
      .sort((a, b) => b[1].ms - a[1].ms)
      .map(([key, v]) => `${key} x${(v.count / n).toFixed(1)} (${(v.ms / v.count).toFixed(0)} ms each)`);
    return `  per operation: ${(this.fsyncs / n).toFixed(1)} record fsyncs; processes run: ${commands.join(', ') || 'none'}`;
  }
}

/** The record fsyncs this process has made so far (files + directories). */
export const fsyncsNow = (): number => recordFsyncs.files + recordFsyncs.directories;

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const p = (xs: number[], q: number) => percentile([...xs].sort((a, b) => a - b), q);

/**
 * The breakdown of `traces` (operations of one kind) as lines to print: per operation, the
 * round trips, the record fsyncs and child processes of `work`, and the queue waits and step
 * times.
 */
export function describeBreakdown(label: string, traces: OperationTrace[], work: WorkTally | null): string {
  if (traces.length === 0) return `${label}: no operations traced`;
  const n = traces.length;
  const per = (f: (t: OperationTrace) => number) => (traces.reduce((sum, t) => sum + f(t), 0) / n).toFixed(1);
  const types = new Map<string, number>();
  for (const t of traces) for (const a of t.activities) types.set(a, (types.get(a) ?? 0) + 1);
  const runMs = new Map<string, number[]>();
  for (const t of traces) for (const [type, list] of Object.entries(t.activityRunMs)) runMs.set(type, [...(runMs.get(type) ?? []), ...list]);
  const steps = [...types.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([type, count]) => `${type} x${(count / n).toFixed(1)} (${mean(runMs.get(type) ?? []).toFixed(0)} ms)`)
    .join(', ');
  const aq = traces.flatMap((t) => t.activityQueueMs);
  const wq = traces.flatMap((t) => t.workflowTaskQueueMs);
  return [
    `${label} (${n} traced): per operation ${per((t) => t.workflowTasks)} workflow tasks (${per((t) => t.workflowTasksToAnswer)} before the answer), ${per((t) => t.activities.length)} activities (${per((t) => t.activitiesToAnswer)} before the answer), ${per((t) => t.localActivities)} local activities, ${per((t) => t.updates)} updates, ${per((t) => t.children)} child workflows, ${per((t) => t.timers)} timers`,
    ...(work ? [work.describe()] : []),
    `  steps (mean run time): ${steps || 'none'}`,
    `  schedule-to-start: activities p50 ${p(aq, 50).toFixed(1)} ms, p99 ${p(aq, 99).toFixed(1)} ms; workflow tasks p50 ${p(wq, 50).toFixed(1)} ms, p99 ${p(wq, 99).toFixed(1)} ms`,
    `  history time: to the answer p50 ${p(traces.map((t) => t.toAnswerMs).filter(Number.isFinite), 50).toFixed(1)} ms; to the end p50 ${p(traces.map((t) => t.totalMs), 50).toFixed(1)} ms`,
  ].join('\n');
}

/** Each worker identity's share of the steps of `traces` (host id before the '@'). */
export function stepShare(traces: OperationTrace[]): Record<string, number> {
  const share: Record<string, number> = {};
  for (const t of traces) for (const who of t.ranBy) share[who.split('@')[0]] = (share[who.split('@')[0]] ?? 0) + 1;
  return share;
}
