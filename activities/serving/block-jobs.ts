/**
 * Running one block job (backup, mirror, commit) in a serving daemon to its end, from a step:
 * started once (a retried step finds the job the daemon still runs, and waits for it), progress
 * reported, cancelled when the step is, completed (the pivot of a mirror or active commit) when
 * asked. Jobs are not dismissed automatically, so a step that comes back after a crash can read
 * how a job it started ended.
 */
import { Context, sleep } from '@temporalio/activity';
import { DiskflowError } from '../../api/errors';
import type { Qmp } from '../qemu/qmp';

interface JobInfo {
  id: string;
  type: string;
  status: string;
  'current-progress': number;
  'total-progress': number;
  error?: string;
}

const POLL_MS = 250;

export interface JobOptions {
  /** Bytes done and to do, as the job reports them. */
  onProgress?: (done: number, total: number) => void;
  /**
   * A mirror or active commit becomes ready instead of ending: called then, with the job in
   * sync, it returns once the caller is ready for the pivot (which `block-job-complete` makes).
   */
  onReady?: () => Promise<void>;
}

export async function jobState(qmp: Qmp, jobId: string): Promise<JobInfo | null> {
  const jobs = await qmp.execute<JobInfo[]>('query-jobs');
  return jobs.find((j) => j.id === jobId) ?? null;
}

/**
 * Starts the job with `start` unless the daemon has it already, then waits for its end. Throws
 * STORAGE_ERROR when it ends in error or cancelled; cancels it when the step is cancelled.
 */
export async function runJob(qmp: Qmp, jobId: string, start: () => Promise<unknown>, options: JobOptions = {}): Promise<void> {
  const signal = Context.current().cancellationSignal;
  let job = await jobState(qmp, jobId);
  if (!job) {
    await start();
    job = await jobState(qmp, jobId);
  }
  let completing = false;
  try {
    for (;;) {
      if (!job) throw new DiskflowError('STORAGE_ERROR', `block job ${jobId} vanished from its daemon`);
      options.onProgress?.(job['current-progress'], job['total-progress']);
      if (job.status === 'concluded') {
        await qmp.execute('job-dismiss', { id: jobId });
        if (job.error) throw new DiskflowError('STORAGE_ERROR', `block job ${jobId} (${job.type}) failed: ${job.error}`);
        return;
      }
      if (job.status === 'ready' && !completing) {
        await options.onReady?.();
        await qmp.execute('job-complete', { id: jobId });
        completing = true;
      }
      Context.current().heartbeat();
      await sleep(POLL_MS);
      job = await jobState(qmp, jobId);
    }
  } catch (error) {
    if (signal.aborted) {
      // The step is cancelled (or paused): the job stops too, and the graph stays as it was.
      await qmp.execute('job-cancel', { id: jobId }).catch(() => undefined);
      for (let state = await jobState(qmp, jobId).catch(() => null); state && state.status !== 'concluded'; state = await jobState(qmp, jobId).catch(() => null)) {
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
      await qmp.execute('job-dismiss', { id: jobId }).catch(() => undefined);
    }
    throw error;
  }
}
