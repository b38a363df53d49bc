/**
 * Serving a prepared image to its VM, on this host: its chain opened in its own
 * qemu-storage-daemon (daemon.ts) with one named node per volume (graph.ts), exported as NBD,
 * vhost-user-blk or a FUSE file; stopped at teardown. Every function here is idempotent: a
 * daemon already serving the image is kept (a worker restarted mid-prepare finds it), one that
 * serves nothing yet is started over.
 */
import type { ServeMode } from '../../api/values';
import { readChain } from '../images/image-store';
import type { ImageRecord } from '../images/records';
import type { Repository } from '../repository/repository';
import { EXPORT_ID, ServingDaemon } from './daemon';
import { addChain, addExport, GraphVolume, nodeName } from './graph';

/** The chain of `topVolumeId` (top first), activated on this host, as the daemon opens it. */
export async function graphVolumes(repo: Repository, topVolumeId: string): Promise<GraphVolume[]> {
  const chain = await readChain(repo, topVolumeId);
  const volumes: GraphVolume[] = [];
  // Base first: an overlay is opened once its backing volume is reachable.
  for (const volume of [...chain].reverse()) volumes.unshift({ volumeId: volume.volumeId, format: volume.format, path: await repo.activate(volume.volumeId, volume.format) });
  return volumes;
}

/**
 * Serves `image` (its chain from `topVolumeId`, by default its record's top) as `mode`;
 * answers what the VM opens. A snapshot is exported read-only.
 */
export async function serveImage(home: string, repo: Repository, image: ImageRecord, mode: ServeMode, topVolumeId = image.volumeId): Promise<string> {
  const daemon = new ServingDaemon(home, image.imageId);
  const writable = image.kind === 'virtual-disk';
  if (await daemon.pid()) {
    const exported = await daemon.withMonitor(async (qmp) => (await qmp.execute<{ id: string }[]>('query-block-exports')).some((e) => e.id === EXPORT_ID));
    // Serving already (a retried prepare, a restarted worker): kept as it is, VM and all.
    if (exported) return daemon.address(mode);
    // Started, but killed before it served: nobody uses it, start it over.
    await daemon.stop();
  }
  const chain = await graphVolumes(repo, topVolumeId);
  await daemon.start({ repoUuid: repo.header.uuid, imageId: image.imageId, mode });
  try {
    await daemon.withMonitor(async (qmp) => {
      await addChain(qmp, chain, { directIo: repo.directIo, writable });
      await addExport(qmp, nodeName(chain[0].volumeId), mode, daemon.address(mode), image.imageId, writable);
    });
  } catch (error) {
    await daemon.stop();
    throw error;
  }
  return daemon.address(mode);
}

/** Stops serving the image on this host (its daemon flushes and closes the chain). */
export async function stopServing(home: string, imageId: string): Promise<void> {
  await new ServingDaemon(home, imageId).stop();
}
