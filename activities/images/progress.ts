/**
 * Progress of a fix step. Every report is heartbeated to Temporal (the SDK throttles them);
 * at a bounded rate it is also written to the image's record, where getImageStatus reads it,
 * and sent to the operation's workflow, which answers the `progress` query with it.
 */
import { activityInfo, getClient, heartbeat } from '@temporalio/activity';
import type { Stage } from '../../api/image-status';
import { PROGRESS_SIGNAL, StepProgress } from '../../api/progress';
import type { Repository } from '../repository/repository';
import { recordProgress } from './lifecycle';

export class ProgressReporter {
  private lastWrite = 0;
  private lastPercent = -2;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly repo: Repository,
    private readonly imageId: string,
    private readonly hostId: string,
    private readonly intervalMs: number,
    private stage: Stage,
  ) {}

  /** Moves to another stage of the step, persisting it at once. */
  async enter(stage: Stage, percent = 0): Promise<void> {
    this.stage = stage;
    this.lastWrite = 0;
    this.report(percent);
    await this.settled();
  }

  /**
   * Moves to another stage the caller has just persisted in a write of its own: nothing more is
   * written, and the workflow hears of it with the next report (a step shorter than the
   * interval costs its workflow no extra task).
   */
  entered(stage: Stage, percent: number): void {
    this.stage = stage;
    const progress = this.progressAt(percent);
    heartbeat(progress);
    this.lastWrite = Date.now();
    this.lastPercent = progress.percentComplete;
  }

  report(percent: number, bytes: { doneBytes: number; totalBytes: number | null } | null = null): void {
    const progress = this.progressAt(percent, bytes);
    heartbeat(progress);
    const now = Date.now();
    if (progress.percentComplete === this.lastPercent || now - this.lastWrite < this.intervalMs) return;
    this.lastWrite = now;
    this.lastPercent = progress.percentComplete;
    this.writing = this.writing.then(() => this.write(progress)).catch(() => undefined);
  }

  private progressAt(percent: number, bytes: { doneBytes: number; totalBytes: number | null } | null = null): StepProgress {
    return {
      imageId: this.imageId,
      stage: this.stage,
      percentComplete: Math.max(-1, Math.min(100, Math.floor(percent))),
      doneBytes: bytes?.doneBytes ?? null,
      totalBytes: bytes?.totalBytes ?? null,
      hostId: this.hostId,
      at: new Date().toISOString(),
    };
  }

  /** Waits for writes already started. */
  settled(): Promise<void> {
    return this.writing;
  }

  private async write(progress: StepProgress): Promise<void> {
    await recordProgress(this.repo, this.imageId, progress.stage, progress.percentComplete, this.hostId);
    // Live progress for the workflow's query; a workflow that is gone has nobody to tell.
    const { workflowExecution } = activityInfo();
    if (!workflowExecution) return;
    await getClient()
      .workflow.getHandle(workflowExecution.workflowId, workflowExecution.runId)
      .signal(PROGRESS_SIGNAL, progress)
      .catch(() => undefined);
  }
}

