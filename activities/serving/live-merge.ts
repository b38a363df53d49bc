/**
 * A merge fix on a served disk, while its VM writes: `block-commit` of `upper` into `lower` in the
 * daemon. Below the top, the commit rewrites the backing link of the volume above `upper` once
 * `lower` holds everything (qemu writes it into that volume's header); at the top (the volume
 * the VM writes), the commit mirrors the VM's writes into `lower` until both are in sync, and
 * its completion moves the VM onto `lower` (the pivot).
 *
 * Persisted around the QMP commands: `served.live` before the commit starts, `pivoting` once it
 * is in sync and the pivot is asked for, the record's chain after. A step that comes back asks
 * the daemon: the job still runs (it waits for it), or the graph already shows the merge (only
 * the records follow).
 */
import type { ActivityDeps, ImageStep } from '../deps';
import { failpoint } from '../failpoints';
import { readChain, requireImage } from '../images/image-store';
import { assertClaimedBy, clearLiveStep, liveTopMoved, recordLiveStep, relinkVolume, releaseClaim } from '../images/lifecycle';
import type { ProgressReporter } from '../images/progress';
import { DiskflowError } from '../../api/errors';
import type { LeftBehind } from '../fixes/run-fixes';
import type { Repository } from '../repository/repository';
import { runJob } from './block-jobs';
import { ServingDaemon } from './daemon';
import { dropUnserved, nodeName, servedChain } from './graph';

export async function runLiveMerge(
  deps: ActivityDeps,
  repo: Repository,
  input: ImageStep & { upper: string; lower: string; bandwidth?: number },
  progress: ProgressReporter,
): Promise<LeftBehind> {
  const actor = { operationId: input.operationId, hostId: deps.hostId };
  const image = await requireImage(repo, input.imageId);
  assertClaimedBy(image, input.operationId);
  const chain = await readChain(repo, image.volumeId);
  const at = chain.findIndex((v) => v.volumeId === input.upper);
  if (at < 0) {
    await releaseClaim(repo, input.imageId, actor, { current: 2, total: 2 });
    return { unneeded: [input.upper] };
  }
  if (chain[at + 1]?.volumeId !== input.lower) throw new DiskflowError('FIX_INVALID', `volume ${input.lower} is no longer below ${input.upper}; check again`);
  const active = at === 0;
  await recordLiveStep(repo, input.imageId, { kind: 'merge', upper: input.upper, lower: input.lower, pivoting: false }, actor);
  const daemon = new ServingDaemon(deps.connections.host.home, input.imageId);
  const jobId = `merge-${input.upper.slice(0, 8)}`;
  const speed = input.bandwidth ?? deps.settings.copyRateLimit ?? undefined;
  await progress.enter({ current: 1, total: 2 });
  await daemon.withMonitor(async (qmp) => {
    const served = await servedChain(qmp);
    if (served.includes(nodeName(input.upper))) {
      const commit: Record<string, unknown> = {
        'job-id': jobId,
        device: served[0],
        'top-node': nodeName(input.upper),
        'base-node': nodeName(input.lower),
        'auto-dismiss': false,
      };
      // Below the top, the volume above `upper` is relinked in its header by its relative name.
      if (!active) commit['backing-file'] = repo.backingReference(input.lower, chain[at + 1].format);
      if (speed) commit.speed = speed;
      await runJob(qmp, jobId, () => qmp.execute('block-commit', commit), {
        onProgress: (done, total) => progress.report(total ? (100 * done) / total : 0),
        // In sync: from here on the VM may be moved onto `lower` at any instant.
        onReady: async () => {
          await recordLiveStep(repo, input.imageId, { kind: 'merge', upper: input.upper, lower: input.lower, pivoting: true }, actor);
          failpoint('live.merge-pivoting');
        },
      });
    }
    failpoint('live.merge-committed');
    await dropUnserved(qmp, [input.upper]);
  });
  await progress.enter({ current: 2, total: 2 });
  if (active) {
    await liveTopMoved(repo, input.imageId, input.lower, actor);
  } else {
    await relinkVolume(repo, chain[at - 1].volumeId, input.lower);
    await clearLiveStep(repo, input.imageId);
    await releaseClaim(repo, input.imageId, actor, { current: 2, total: 2 });
  }
  return { unneeded: [input.upper] };
}
