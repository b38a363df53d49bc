/**
 * Settling a served disk's live step: when a live operation's graph change was recorded
 * (`served.live`) but not its outcome, the daemon (or, when it is gone, the volumes) says how far
 * it got, and the record is brought in line: rolled forward where the change is known to have
 * happened, back where it is known not to have. Whoever comes next runs it: a teardown, the mend
 * a check offers (the operation itself, retried, settles its own step as it goes on).
 *
 * Without the daemon, what is on the volumes decides:
 * - snapshot: rolled forward, always: the overlay holds the VM's writes since the switch, or
 *   nothing if the switch never happened, and is made again if it is not a sound overlay;
 * - merge below the top: forward if the volume above `upper` names `lower` in its header (qemu
 *   writes it once `lower` holds everything), else back;
 * - merge of the top: back unless the pivot was asked (`upper` holds every write); once asked,
 *   forward only if both chains read the same (otherwise which holds the last writes cannot be
 *   told, and the image is left for an operator, saying so);
 * - optimize: forward once the pivot was asked (the write-blocking mirror had every write on the
 *   new volume), else back (the old chain has everything).
 */
import { DiskflowError } from '../../api/errors';
import type { ActivityDeps } from '../deps';
import { readChain, readVolume } from '../images/image-store';
import { Actor, clearLiveStep, liveTopMoved, markVolumeLegal, relinkVolume } from '../images/lifecycle';
import type { ImageRecord } from '../images/records';
import { run } from '../process';
import * as qemuImg from '../qemu/qemu-img';
import type { Repository } from '../repository/repository';
import { jobState } from './block-jobs';
import { ServingDaemon } from './daemon';
import { nodeName, servedChain } from './graph';
import { finishLiveSnapshot, makeOverlay, runLiveSnapshot } from './live-snapshot';

/** Before a served disk is torn down (on the host serving it): no live step may be left half-way. */
export async function settleBeforeTeardown(deps: ActivityDeps, repo: Repository, image: ImageRecord): Promise<void> {
  const live = image.served?.live;
  if (!live) return;
  const claim = image.operation;
  if (claim && (await deps.operations.isRunning(claim.id))) {
    throw new DiskflowError('IMAGE_BUSY', `image ${image.imageId} has a live ${live.kind} under way (${claim.type}, operation ${claim.id}); it ends first, or cancel it`);
  }
  await settleLive(deps, repo, image, { operationId: claim?.id ?? 'settle', hostId: deps.hostId });
}

/** A live step left half-way by an operation that is gone, settled from the daemon serving the disk (on its host). */
export async function settleLive(deps: ActivityDeps, repo: Repository, image: ImageRecord, actor: Actor): Promise<void> {
  const live = image.served?.live;
  if (!live) return;
  if (live.kind === 'snapshot') return runLiveSnapshot(deps, repo, image.imageId, actor);
  const daemon = new ServingDaemon(deps.connections.host.home, image.imageId);
  const done = await daemon.withMonitor(async (qmp) => {
    const chain = await servedChain(qmp);
    if (live.kind === 'merge' ? !chain.includes(nodeName(live.upper)) : chain[0] === nodeName(live.target)) return true;
    // Not done, and nobody to finish it: the graph stays as it is, the job (if any) stops.
    const jobId = live.kind === 'merge' ? `merge-${live.upper.slice(0, 8)}` : `optimize-${live.target.slice(0, 8)}`;
    if (await jobState(qmp, jobId)) {
      await qmp.execute('job-cancel', { id: jobId }).catch(() => undefined);
      for (let state = await jobState(qmp, jobId); state && state.status !== 'concluded'; state = await jobState(qmp, jobId)) await new Promise((r) => setTimeout(r, 200));
      await qmp.execute('job-dismiss', { id: jobId }).catch(() => undefined);
    }
    return false;
  });
  if (done) await rollForward(repo, image, actor);
  else await clearLiveStep(repo, image.imageId);
}

/** The step happened: the records follow the graph. */
async function rollForward(repo: Repository, image: ImageRecord, actor: Actor): Promise<void> {
  const live = image.served!.live!;
  if (live.kind === 'snapshot') return finishLiveSnapshot(repo, image, actor);
  if (live.kind === 'optimize') {
    await markVolumeLegal(repo, live.target);
    return liveTopMoved(repo, image.imageId, live.target, actor, true);
  }
  if (image.volumeId === live.upper) return liveTopMoved(repo, image.imageId, live.lower, actor);
  const chain = await readChain(repo, image.volumeId);
  const child = chain[chain.findIndex((v) => v.volumeId === live.upper) - 1];
  if (child) await relinkVolume(repo, child.volumeId, live.lower);
  await clearLiveStep(repo, image.imageId);
}

/** The daemon is gone (killed, or its host fenced): the step is settled from the volumes alone. */
export async function settleLiveWithoutDaemon(repo: Repository, image: ImageRecord, actor: Actor): Promise<void> {
  const live = image.served?.live;
  if (!live) return;
  if (live.kind === 'snapshot') {
    const top = await readVolume(repo, image.volumeId);
    if (!(await isOverlayOf(repo, live.overlay, top!.volumeId, top!.format))) await makeOverlay(repo, image, live.overlay, actor);
    await finishLiveSnapshot(repo, image, actor);
    return;
  }
  if (live.kind === 'optimize') {
    if (live.pivoting) return rollForward(repo, image, actor);
    return clearLiveStep(repo, image.imageId);
  }
  if (image.volumeId !== live.upper) {
    const chain = await readChain(repo, image.volumeId);
    const child = chain[chain.findIndex((v) => v.volumeId === live.upper) - 1];
    const lower = await readVolume(repo, live.lower);
    if (child && lower && (await isOverlayOf(repo, child.volumeId, lower.volumeId, lower.format))) return rollForward(repo, image, actor);
    return clearLiveStep(repo, image.imageId);
  }
  if (!live.pivoting) return clearLiveStep(repo, image.imageId);
  if (await sameContent(repo, live.upper, live.lower)) return rollForward(repo, image, actor);
  throw new DiskflowError(
    'STORAGE_ERROR',
    `the daemon serving image ${image.imageId} died while its VM was being moved from volume ${live.upper} onto ${live.lower}, and the two differ: which holds the VM's last writes cannot be told from the volumes; both are kept, and an operator must choose`,
    false,
  );
}

/** Whether `volumeId` is a sound qcow2 whose backing is `parentId`. */
async function isOverlayOf(repo: Repository, volumeId: string, parentId: string, parentFormat: 'raw' | 'qcow2'): Promise<boolean> {
  if (!(await readVolume(repo, volumeId))) return false;
  try {
    const path = await repo.activate(volumeId, 'qcow2');
    const info = await qemuImg.info(path, 'qcow2');
    return info['backing-filename'] === repo.backingReference(parentId, parentFormat);
  } catch {
    return false;
  }
}

/** Whether the chains from `a` and from `b` read the same. */
async function sameContent(repo: Repository, a: string, b: string): Promise<boolean> {
  const [va, vb] = [await readVolume(repo, a), await readVolume(repo, b)];
  if (!va || !vb) return false;
  for (const v of [...(await readChain(repo, b))].reverse()) await repo.activate(v.volumeId, v.format);
  for (const v of [...(await readChain(repo, a))].reverse()) await repo.activate(v.volumeId, v.format);
  const result = await run('qemu-img', ['compare', '-q', '-U', '-f', va.format, '-F', vb.format, await repo.activate(a, va.format), await repo.activate(b, vb.format)], { okExitCodes: [1] });
  return result.exitCode === 0;
}
