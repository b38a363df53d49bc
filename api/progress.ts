/** Live progress of an operation, as its workflow answers the `progress` query. */
import { z } from 'zod';
import { Stage } from './image-status';

export const PROGRESS_SIGNAL = 'progress';
export const PROGRESS_QUERY = 'progress';
export const PAUSE_SIGNAL = 'pause';
export const RESUME_SIGNAL = 'resume';
/** serveBackup: end the export now (as cancelling the operation does, but the operation completes). */
export const STOP_EXPORT_SIGNAL = 'stopExport';
/** serveBackup's export step tells its workflow that clients may connect. */
export const EXPORT_READY_SIGNAL = 'exportReady';

/** Where a backup export is reached, once clients may connect. */
export const ExportReady = z.object({
  /** nbd+unix URI: export name and socket. */
  address: z.string(),
  exportName: z.string(),
  socket: z.string(),
  /** The dirty bitmap exported (`nbdinfo --map=qemu:dirty-bitmap:NAME`), or null for a full backup. */
  bitmap: z.string().nullable(),
  hostId: z.string(),
});
export type ExportReady = z.infer<typeof ExportReady>;

export const StepProgress = z.object({
  imageId: z.string(),
  stage: Stage,
  percentComplete: z.number().int().min(-1).max(100),
  /** Bytes of data moved so far and in all, when the step moves data. */
  doneBytes: z.number().int().nonnegative().nullable(),
  totalBytes: z.number().int().nonnegative().nullable(),
  hostId: z.string(),
  at: z.string(),
});
export type StepProgress = z.infer<typeof StepProgress>;

export const OperationProgress = z.object({
  state: z.enum(['persisting', 'fixing', 'paused', 'done']),
  step: StepProgress.nullable(),
  /**
   * While a step is scheduled but no host has started it: what it waits for, e.g. "a host with
   * repository R connected (task queue diskflow.repo.<uuid>)". Null while a host runs it.
   */
  waitingFor: z.string().nullable().optional(),
  /** Where the running step may run (the same words), also while a host runs it. */
  runsOn: z.string().nullable().optional(),
});
export type OperationProgress = z.infer<typeof OperationProgress>;
