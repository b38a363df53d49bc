/**
 * An optimize fix on a served disk, while its VM writes: `blockdev-mirror` of the chain into the
 * new volume (raw for performance, a standalone qcow2 for space) in write-blocking mode (once in
 * sync, every write the VM is answered is on both), then its completion moves the VM onto the
 * new volume (the pivot), and the old chain is left for the clean step.
 *
 * Persisted around the QMP commands: `served.live` before the mirror starts, `pivoting` once it
 * is in sync and the pivot is asked for, the record's chain after. A step that comes back asks
 * the daemon: the mirror still runs (it waits for it), or the VM writes the new volume already
 * (only the records follow); otherwise the mirror starts over into a fresh volume.
 */
import { DiskflowError } from '../../api/errors';
import type { ActivityDeps, ImageStep } from '../deps';
import { failpoint } from '../failpoints';
import type { LeftBehind } from '../fixes/run-fixes';
import { readChain, requireImage } from '../images/image-store';
import { assertClaimedBy, liveTopMoved, markVolumeLegal, newVolume, recordIllegalVolume, recordLiveStep, releaseClaim } from '../images/lifecycle';
import type { ProgressReporter } from '../images/progress';
import type { Repository } from '../repository/repository';
import { jobState, runJob } from './block-jobs';
import { ServingDaemon } from './daemon';
import { dropUnserved, namedNodes, nodeName, servedTop, volumeNode } from './graph';

export async function runLiveOptimize(deps: ActivityDeps, repo: Repository, input: ImageStep & { bandwidth?: number }, progress: ProgressReporter): Promise<LeftBehind> {
  const actor = { operationId: input.operationId, hostId: deps.hostId };
  const image = await requireImage(repo, input.imageId);
  assertClaimedBy(image, input.operationId);
  const job = image.optimizing;
  if (!job) {
    await releaseClaim(repo, input.imageId, actor);
    return { unneeded: [] };
  }
  const old = (await readChain(repo, image.volumeId)).map((v) => v.volumeId);
  await recordLiveStep(repo, input.imageId, { kind: 'optimize', target: job.volumeId, pivoting: false }, actor);
  const daemon = new ServingDaemon(deps.connections.host.home, input.imageId);
  const jobId = `optimize-${job.volumeId.slice(0, 8)}`;
  const speed = input.bandwidth ?? deps.settings.copyRateLimit ?? undefined;
  await progress.enter({ current: 1, total: 2 });
  await daemon.withMonitor(async (qmp) => {
    if ((await servedTop(qmp)) === nodeName(job.volumeId)) return;
    if (!(await jobState(qmp, jobId))) {
      // No mirror runs into it: the new volume is made fresh (a half-filled one is no use).
      if ((await namedNodes(qmp)).has(nodeName(job.volumeId))) await qmp.execute('blockdev-del', { 'node-name': nodeName(job.volumeId) });
      await recordIllegalVolume(repo, newVolume({ volumeId: job.volumeId, format: job.format, size: image.size, createdBy: input.operationId }));
      await repo.createVolume({ volumeId: job.volumeId, format: job.format, size: image.size, parent: null, preallocate: job.preallocate });
      await repo.growForVm(job.volumeId, image.size);
      const path = await repo.activate(job.volumeId, job.format);
      await qmp.execute('blockdev-add', await volumeNode({ volumeId: job.volumeId, format: job.format, path }, null, { directIo: repo.directIo, readOnly: false }));
    }
    const top = await servedTop(qmp);
    const mirror: Record<string, unknown> = { 'job-id': jobId, device: top, target: nodeName(job.volumeId), sync: 'full', 'copy-mode': 'write-blocking', 'auto-dismiss': false };
    if (speed) mirror.speed = speed;
    await runJob(qmp, jobId, () => qmp.execute('blockdev-mirror', mirror), {
      onProgress: (done, total) => progress.report(total ? (100 * done) / total : 0),
      onReady: async () => {
        await recordLiveStep(repo, input.imageId, { kind: 'optimize', target: job.volumeId, pivoting: true }, actor);
        failpoint('live.optimize-pivoting');
      },
    });
    if ((await servedTop(qmp)) !== nodeName(job.volumeId)) throw new DiskflowError('STORAGE_ERROR', `the mirror into volume ${job.volumeId} ended without moving the VM onto it; it starts over`);
    failpoint('live.optimize-pivoted');
    await dropUnserved(qmp, old);
  });
  await progress.enter({ current: 2, total: 2 });
  await markVolumeLegal(repo, job.volumeId);
  await liveTopMoved(repo, input.imageId, job.volumeId, actor, true);
  return { unneeded: old };
}
