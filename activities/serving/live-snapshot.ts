/**
 * createSnapshot of a served disk, while its VM writes: a new qcow2 overlay of the volume the VM
 * writes is made, then `blockdev-add` and `blockdev-snapshot` move the VM onto it in one atomic
 * graph change; the volume it leaves is frozen from that instant and becomes the snapshot.
 *
 * Persisted around the QMP command: before it, the disk's `served.live` names the overlay (and
 * the snapshot's record waits, broken, with `pending: live-snapshot`); after it, the disk's
 * record moves onto the overlay and the snapshot becomes usable. A step that comes back asks the
 * daemon which node the VM writes: the overlay already (done, only the records follow), or not
 * (the overlay is made again: nothing has written it).
 */
import type { ActivityDeps } from '../deps';
import { failpoint } from '../failpoints';
import { readVolume, requireImage } from '../images/image-store';
import { Actor, completeFrozenSnapshot, liveTopMoved, markVolumeLegal, newVolume, recordIllegalVolume } from '../images/lifecycle';
import type { ImageRecord } from '../images/records';
import type { Repository } from '../repository/repository';
import { ServingDaemon } from './daemon';
import { namedNodes, nodeName, servedTop, volumeNode } from './graph';

export async function runLiveSnapshot(deps: ActivityDeps, repo: Repository, diskId: string, actor: Actor): Promise<void> {
  const disk = await requireImage(repo, diskId);
  const live = disk.served?.live;
  if (live?.kind !== 'snapshot') return;
  const daemon = new ServingDaemon(deps.connections.host.home, diskId);
  await daemon.withMonitor(async (qmp) => {
    if ((await servedTop(qmp)) === nodeName(live.overlay)) return;
    const path = await makeOverlay(repo, disk, live.overlay, actor);
    if ((await namedNodes(qmp)).has(nodeName(live.overlay))) await qmp.execute('blockdev-del', { 'node-name': nodeName(live.overlay) });
    await qmp.execute('blockdev-add', await volumeNode({ volumeId: live.overlay, format: 'qcow2', path }, null, { directIo: repo.directIo, readOnly: false }));
    failpoint('live.snapshot-overlay-added');
    await qmp.execute('blockdev-snapshot', { node: nodeName(disk.volumeId), overlay: nodeName(live.overlay) });
  });
  failpoint('live.snapshot-switched');
  await finishLiveSnapshot(repo, disk, actor);
}

/**
 * The disk's overlay, made on the volume the VM writes now (replacing a half-made one: nothing
 * has written it before the switch), with room for the whole disk on block storage.
 */
export async function makeOverlay(repo: Repository, disk: ImageRecord, overlay: string, actor: Actor): Promise<string> {
  const top = (await readVolume(repo, disk.volumeId))!;
  await recordIllegalVolume(repo, newVolume({ volumeId: overlay, format: 'qcow2', size: disk.size, createdBy: actor.operationId, parentId: top.volumeId }));
  await repo.createVolume({ volumeId: overlay, format: 'qcow2', size: disk.size, parent: { volumeId: top.volumeId, format: top.format }, preallocate: false });
  // The VM writes it as soon as it is switched: nothing may grow it under the VM.
  await repo.growForVm(overlay, disk.size);
  return repo.activate(overlay, 'qcow2');
}

/** The records follow the graph: the disk is on its overlay, the snapshot usable. */
export async function finishLiveSnapshot(repo: Repository, disk: ImageRecord, actor: Actor): Promise<void> {
  const live = disk.served?.live;
  if (live?.kind !== 'snapshot') return;
  await markVolumeLegal(repo, live.overlay);
  await liveTopMoved(repo, disk.imageId, live.overlay, actor);
  await completeFrozenSnapshot(repo, live.snapshotId, disk.status);
}
