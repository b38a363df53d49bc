/**
 * The data half of a resize (lifecycle/resize.ts has the record half): the disk's top volume
 * grows to the size its record holds. Offline, `qemu-img resize` of the top volume (a qcow2
 * overlay grows alone: what lies past its backing's end reads as zeros); live, QMP
 * `block_resize` of the node the daemon serves, so the VM sees the new size. Block storage
 * makes the room first (the SRM extends the LV). Idempotent: a volume at its size already is
 * left alone, and `block_resize` to the size it has is a no-op.
 */
import { stat } from 'node:fs/promises';
import { DiskflowError } from '../../api/errors';
import type { ActivityDeps } from '../deps';
import { failpoint } from '../failpoints';
import * as qemuImg from '../qemu/qemu-img';
import type { Repository } from '../repository/repository';
import { ServingDaemon } from '../serving/daemon';
import { servedTop } from '../serving/graph';
import { readChain } from './image-store';
import { Actor, claimResize, completeResize, OperationRegistry, refuseWhilePrepared, servedOn } from './lifecycle';

/** Grows the image's top volume to its recorded size, if a resize is pending; on the host serving it when served. */
export async function mendResize(deps: ActivityDeps, repo: Repository, imageId: string, actor: Actor, operations: OperationRegistry): Promise<void> {
  const image = await claimResize(repo, imageId, actor, operations);
  if (!image) return;
  const served = servedOn(image);
  if (served && served !== deps.hostId) throw new DiskflowError('IMAGE_IN_USE', `image ${imageId} is served on ${served}: its resize runs there`);
  if (!served) refuseWhilePrepared(image, 'resizing it');
  const [top] = await readChain(repo, image.volumeId);
  if (!top) throw new DiskflowError('STORAGE_ERROR', `volume ${image.volumeId} of image ${imageId} has no record`, false);
  // Room first: a raw LV is its disk; a qcow2 LV a VM writes must hold all of it.
  if (top.format === 'raw') await repo.ensureCapacity(top.volumeId, image.size);
  else if (served) await repo.growForVm(top.volumeId, image.size);
  if (served) {
    const daemon = new ServingDaemon(deps.connections.host.home, imageId);
    await daemon.withMonitor(async (qmp) => qmp.execute('block_resize', { 'node-name': await servedTop(qmp), size: image.size }));
  } else {
    const chain = await readChain(repo, image.volumeId);
    for (const volume of [...chain].reverse()) await repo.activate(volume.volumeId, volume.format);
    const path = await repo.activate(top.volumeId, top.format);
    const now = await qemuImg.info(path, top.format);
    if (now['virtual-size'] < image.size) {
      const falloc = top.format === 'raw' && image.strategy === 'performance' && (await stat(path)).isFile();
      await qemuImg.resize(path, top.format, image.size, { falloc });
    }
  }
  failpoint('resize.grown');
  await completeResize(repo, imageId, top.volumeId, image.size, actor);
}
