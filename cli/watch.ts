/**
 * `diskflow image status --watch`: a progress bar with rate and time left while work runs on an
 * image. The status is read from the repository; when a workflow is working on the image, its
 * `progress` query adds the bytes moved, from which the rate comes.
 */
import { MultiBar, Presets } from 'cli-progress';
import type { ImageStatus } from '../api/image-status';
import type { OperationProgress } from '../api/progress';
import type { StorageClient } from '../client/storage-client';
import { formatBytes, formatStage } from './output';

async function liveProgress(client: StorageClient, imageId: string): Promise<OperationProgress | null> {
  for await (const wf of client.temporal.workflow.list({ query: `DiskflowImage = '${imageId}' AND ExecutionStatus = 'Running'` })) {
    try {
      const progress = await client.operationProgress(wf.workflowId);
      if (progress?.step?.imageId === imageId || progress?.waitingFor) return progress;
    } catch {
      // A workflow type without the query, or one that just ended: nothing live to show.
    }
  }
  return null;
}

const working = (s: ImageStatus) => s.status === 'broken' && s.lastError === null;

/** Watches until the image is no longer being worked on; resolves with its last status. */
export async function watchImage(client: StorageClient, repoId: string, imageId: string, intervalMs = 1000): Promise<ImageStatus> {
  const tty = process.stderr.isTTY;
  const bars = new MultiBar(
    { format: ' {stage} [{bar}] {percentage}% | {rate} | ETA {eta_formatted}', hideCursor: true, stream: process.stderr, noTTYOutput: false },
    Presets.shades_classic,
  );
  const bar = tty ? bars.create(100, 0, { stage: '-', rate: '-' }) : undefined;
  let samples: { at: number; bytes: number }[] = [];
  let lastLine = '';
  let waitingSince: number | null = null;
  try {
    for (;;) {
      const status = await client.getImageStatus(repoId, imageId);
      const live = await liveProgress(client, imageId);
      const step = live?.step;
      if (step?.doneBytes != null) {
        samples = [...samples.filter((s) => Date.now() - s.at < 10_000), { at: Date.now(), bytes: step.doneBytes }];
      }
      const first = samples[0];
      const latest = samples[samples.length - 1];
      const perSecond = first && latest && latest.at > first.at ? ((latest.bytes - first.bytes) * 1000) / (latest.at - first.at) : 0;
      const rate = perSecond > 0 ? `${formatBytes(perSecond)}/s` : '-';
      const percent = Math.max(0, step?.percentComplete ?? status.percentComplete);
      // Only a wait that lasts is shown: every step waits a moment before a host reports from it.
      waitingSince = live?.waitingFor ? (waitingSince ?? Date.now()) : null;
      const waiting = live?.waitingFor && Date.now() - waitingSince! >= 3000 ? ` waiting for ${live.waitingFor}` : '';
      const stage = `stage ${formatStage(status).split(' ')[0]}${live?.state === 'paused' ? ' (paused)' : ''}${waiting}`;
      if (bar) bar.update(percent, { stage, rate });
      else {
        const line = `${stage} ${percent}% ${rate}`;
        if (line !== lastLine) process.stderr.write(`${line}\n`);
        lastLine = line;
      }
      if (!working(status) && !live) return status;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  } finally {
    bars.stop();
  }
}

/** Draws an operation's progress (its `progress` query) until it ends; fails with its code. */
export async function watchOperation(client: StorageClient, operationId: string, intervalMs = 500): Promise<void> {
  const tty = process.stderr.isTTY;
  const bars = new MultiBar({ format: ' export [{bar}] {percentage}%', hideCursor: true, stream: process.stderr, noTTYOutput: false }, Presets.shades_classic);
  const bar = tty ? bars.create(100, 0) : undefined;
  let ended = false;
  const result = client.waitForOperation(operationId).finally(() => (ended = true));
  try {
    while (!ended) {
      const progress = await client.operationProgress(operationId).catch(() => null);
      if (progress?.step) bar?.update(progress.step.percentComplete);
      await Promise.race([result.catch(() => undefined), new Promise((r) => setTimeout(r, intervalMs))]);
    }
    await result;
    bar?.update(100);
  } finally {
    bars.stop();
  }
}
