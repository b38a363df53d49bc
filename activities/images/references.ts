/**
 * Which volumes images reference, and the one rule that keeps a referenced volume alive: a
 * volume is deleted only when no image record that is not removed needs it, and making a new
 * reference to an existing volume (a disk made on a snapshot, an incremental copy based on one)
 * and deciding what is garbage both run under the repository's chains lock
 * (Repository.withChainsLock), which holds across hosts and processes (removing what was
 * decided garbage does not need it). So an id the API returned never loses its base to a clean
 * that ran at the same time.
 */
import type { Repository } from '../repository/repository';
import { failpoint, holdpoint } from '../failpoints';
import { listImageRecords, readChain } from './image-store';
import { forgetVolume } from './lifecycle';
import type { ImageRecord } from './records';

/**
 * The volumes an image reaches from its record alone: the chains below `chains` (its top, the
 * parent its pending overlay will sit on, an incremental copy's base) and the `volumes` it is
 * filling (an optimize's new volume). The check's scan walks the same roots in memory.
 */
export function referencedRoots(image: ImageRecord): { chains: string[]; volumes: string[] } {
  const chains = [image.volumeId];
  if (image.pending?.step === 'create-volume' && image.pending.parentId) chains.push(image.pending.parentId);
  // An incremental copy's base is needed from the moment the copy is persisted.
  if (image.pending?.step === 'copy' && image.pending.job.base) chains.push(image.pending.job.base.volumeId);
  return { chains, volumes: image.optimizing ? [image.optimizing.volumeId] : [] };
}

/**
 * Whether an image's record holds its volumes: it is not removed, or copies still read it (a
 * removed snapshot keeps its volumes, unchanged, until they are done).
 */
export const holdsVolumes = (image: ImageRecord): boolean => !image.removed || Object.keys(image.readers).length > 0;

/** Every volume an image needs. */
export async function volumesNeededBy(repo: Repository, image: ImageRecord): Promise<Set<string>> {
  const { chains, volumes } = referencedRoots(image);
  const needed = new Set<string>(volumes);
  for (const root of chains) {
    needed.add(root);
    for (const volume of await readChain(repo, root)) needed.add(volume.volumeId);
  }
  return needed;
}

/** Volumes some image still holds (holdsVolumes). Read under the chains lock to act on it. */
export async function liveVolumeIds(repo: Repository): Promise<Set<string>> {
  const live = new Set<string>();
  for (const image of await listImageRecords(repo)) {
    if (!holdsVolumes(image)) continue;
    for (const volumeId of await volumesNeededBy(repo, image)) live.add(volumeId);
  }
  return live;
}

/**
 * Removes the volumes among `volumeIds` that no image needs (storage first, two-phase, then the
 * record); returns the bytes freed. Only the decision is made under the chains lock: a volume no
 * image holds can never be referenced again (a new reference is made to a volume a live image
 * holds, under the same lock), so its purge, which for a file of GiBs just written can take a
 * second, does not keep a copy based on a snapshot waiting.
 */
export async function removeUnneededVolumes(repo: Repository, volumeIds: Iterable<string>): Promise<number> {
  const doomed = await repo.withChainsLock(async () => {
    const live = await liveVolumeIds(repo);
    const stored = new Map((await repo.listVolumes()).map((v) => [v.volumeId, v.allocatedBytes]));
    return [...new Set(volumeIds)].filter((volumeId) => !live.has(volumeId)).map((volumeId) => ({ volumeId, bytes: stored.get(volumeId) ?? 0 }));
  });
  await holdpoint('clean.purging');
  let freed = 0;
  for (const { volumeId, bytes } of doomed) {
    await repo.removeVolume(volumeId);
    failpoint('clean.volume-removed');
    await forgetVolume(repo, volumeId);
    freed += bytes;
  }
  return freed;
}
