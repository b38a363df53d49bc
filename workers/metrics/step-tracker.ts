/**
 * What this host's steps (activities) are doing, for its metrics: how many run, how each ended,
 * the bytes they moved, and which made no progress for `stallAfterMs` (stalled: the "stuck in
 * creating" an operator wants an alert for).
 *
 * It is an activity interceptor, so no activity reports to it by hand: a step's progress is
 * what it heartbeats (activities/images/progress.ts heartbeats every StepProgress it reports),
 * seen by wrapping the heartbeat of the step's Context. A change of stage, percent or bytes is
 * progress; the bare keep-alive heartbeats of activity-defaults.ts are not. Bytes moved are the
 * increases of `doneBytes` between two reports of one step, so a resumed copy does not count
 * again what an earlier attempt moved (nor the bytes before its first report).
 */
import { CancelledFailure } from '@temporalio/common';
import type { Context } from '@temporalio/activity';
import type { ActivityExecuteInput, ActivityInboundCallsInterceptor, ActivityInterceptors, Next } from '@temporalio/worker';
import { Counter, Gauge, Registry } from 'prom-client';
import { codeOf, isCancellation } from '../../api/failures';

export type StepLabels = { operation_type: string; step: string; repository: string; host: string };

interface RunningStep {
  labels: StepLabels;
  lastProgressAt: number;
  lastKey: string | null;
  lastDoneBytes: number | null;
}

/** The fields of a StepProgress heartbeat that show progress (api/progress.ts). */
interface ProgressDetails {
  stage?: { current: number; total: number };
  percentComplete?: number;
  doneBytes?: number | null;
}

export class StepTracker {
  private readonly running = new Set<RunningStep>();
  private readonly inProgress: Gauge<keyof StepLabels>;
  private readonly ended: Counter<keyof StepLabels | 'outcome' | 'code'>;
  private readonly bytesMoved: Counter<'operation_type' | 'repository' | 'host'>;

  constructor(
    registry: Registry,
    private readonly hostId: string,
    /** The repoIds this host connected a repository (named by uuid in a step's input) under. */
    private readonly repoIdsOf: (repoUuid: string) => string[],
    private readonly stallAfterMs: number,
    private readonly now: () => number = Date.now,
  ) {
    const stepLabels = ['operation_type', 'step', 'repository', 'host'] as const;
    this.inProgress = new Gauge({ name: 'diskflow_steps_in_progress', help: 'Steps (activities) of operations running on this host now', labelNames: stepLabels, registers: [registry] });
    this.ended = new Counter({ name: 'diskflow_steps_total', help: 'Steps this host ran to an end, by outcome (completed, cancelled, failed with code)', labelNames: [...stepLabels, 'outcome', 'code'], registers: [registry] });
    this.bytesMoved = new Counter({
      name: 'diskflow_bytes_moved_total',
      help: 'Bytes of image data moved by this host\'s steps (copies, optimize), as their progress reports count them',
      labelNames: ['operation_type', 'repository', 'host'],
      registers: [registry],
    });
    const stalled: Gauge<keyof StepLabels> = new Gauge({
      name: 'diskflow_operations_stalled',
      help: 'Operations whose step on this host made no progress for diskflow_stall_threshold_seconds (DISKFLOW_STALL_AFTER)',
      labelNames: stepLabels,
      registers: [registry],
      collect: () => {
        stalled.reset();
        for (const step of this.stalled()) stalled.inc(step.labels);
      },
    });
    new Gauge({ name: 'diskflow_stall_threshold_seconds', help: 'How long a step may make no progress before it counts as stalled', labelNames: ['host'], registers: [registry] }).set(
      { host: hostId },
      stallAfterMs / 1000,
    );
  }

  /** The steps running here that made no progress for the stall time. */
  stalled(): { labels: StepLabels; sinceMs: number }[] {
    const now = this.now();
    return [...this.running].filter((s) => now - s.lastProgressAt >= this.stallAfterMs).map((s) => ({ labels: s.labels, sinceMs: now - s.lastProgressAt }));
  }

  /** The activity interceptor factory to register on every worker of this host. */
  readonly interceptors = (context: Context): ActivityInterceptors => ({
    inbound: {
      execute: (input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> => this.track(context, input, () => next(input)),
    },
  });

  private repositoryOf(input: ActivityExecuteInput): string {
    const first = input.args[0] as { repoUuid?: unknown; repoId?: unknown; repositoryId?: unknown } | undefined;
    if (typeof first?.repoUuid === 'string') return this.repoIdsOf(first.repoUuid)[0] ?? first.repoUuid;
    if (typeof first?.repoId === 'string') return first.repoId;
    if (typeof first?.repositoryId === 'string') return first.repositoryId;
    return '';
  }

  private async track(context: Context, input: ActivityExecuteInput, run: () => Promise<unknown>): Promise<unknown> {
    const { info } = context;
    const labels: StepLabels = { operation_type: info.workflowType ?? '', step: info.activityType, repository: this.repositoryOf(input), host: this.hostId };
    const step: RunningStep = { labels, lastProgressAt: this.now(), lastKey: null, lastDoneBytes: null };
    // Context.heartbeat is an own property the SDK's heartbeat() calls: wrapped for this step only.
    const heartbeat = context.heartbeat;
    (context as { heartbeat: Context['heartbeat'] }).heartbeat = (details?: unknown) => {
      this.observe(step, details);
      heartbeat(details);
    };
    this.running.add(step);
    this.inProgress.inc(labels);
    try {
      const result = await run();
      this.ended.inc({ ...labels, outcome: 'completed', code: '' });
      return result;
    } catch (error) {
      const cancelled = error instanceof CancelledFailure || isCancellation(error);
      this.ended.inc({ ...labels, outcome: cancelled ? 'cancelled' : 'failed', code: cancelled ? '' : (codeOf(error) ?? 'UNCODED') });
      throw error;
    } finally {
      this.running.delete(step);
      this.inProgress.dec(labels);
    }
  }

  private observe(step: RunningStep, details: unknown): void {
    if (!details || typeof details !== 'object') return;
    const { stage, percentComplete, doneBytes } = details as ProgressDetails;
    const key = JSON.stringify([stage?.current, stage?.total, percentComplete, doneBytes]);
    if (key !== step.lastKey) {
      step.lastKey = key;
      step.lastProgressAt = this.now();
    }
    if (typeof doneBytes !== 'number') return;
    if (step.lastDoneBytes !== null && doneBytes > step.lastDoneBytes) {
      const { operation_type, repository, host } = step.labels;
      this.bytesMoved.inc({ operation_type, repository, host }, doneBytes - step.lastDoneBytes);
    }
    step.lastDoneBytes = doneBytes;
  }
}
