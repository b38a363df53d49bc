/** Live progress of an operation, as its workflow answers the `progress` query. */
import { z } from 'zod';
import { Stage } from './image-status';

export const PROGRESS_SIGNAL = 'progress';
export const PROGRESS_QUERY = 'progress';
export const PAUSE_SIGNAL = 'pause';
export const RESUME_SIGNAL = 'resume';

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
