/**
 * One read of everything a repository holds: image and volume records and the volumes that
 * physically exist. Checks work on this in memory, so a repository of ten thousand images is
 * read once, not once per image.
 */
import { listImageRecords, listVolumeRecords } from '../images/image-store';
import type { ImageRecord, VolumeRecord } from '../images/records';
import { holdsVolumes, referencedRoots } from '../images/references';
import type { Repository, StoredVolume } from '../repository/repository';
import { allowedBackingIn, readingReason } from '../repository/volume-check';

export interface RepositoryScan {
  repoUuid: string;
  images: ImageRecord[];
  volumes: Map<string, VolumeRecord>;
  stored: Map<string, StoredVolume>;
  /** Temporary files of atomic writes, with their age, left by writers that died. */
  strayFiles: { name: string; ageMs: number; bytes: number }[];
  /**
   * Complete volumes that are not what their records say (a qcow2 header naming a backing file
   * outside their recorded chain, an external data file, a link), with why: never opened.
   */
  foreign: Map<string, string>;
}

export async function scanRepository(repo: Repository): Promise<RepositoryScan> {
  // One after the other: the reads are synchronous batches anyway, and the raw JSON of one
  // kind is garbage before the next is read, which keeps a host worker's peak memory down.
  const images = await listImageRecords(repo);
  const volumes = new Map((await listVolumeRecords(repo)).map((v) => [v.volumeId, v]));
  const stored = new Map((await repo.listVolumes()).map((v) => [v.volumeId, v]));
  const foreign = await foreignVolumes(repo, volumes, stored);
  return { repoUuid: repo.header.uuid, images, volumes, stored, strayFiles: await repo.listStrayFiles(), foreign };
}

/** The complete qcow2 volumes whose headers name more than their records say (where headers can be read without activation). */
async function foreignVolumes(repo: Repository, volumes: Map<string, VolumeRecord>, stored: Map<string, StoredVolume>): Promise<Map<string, string>> {
  const foreign = new Map<string, string>();
  // Half-made volumes are remade by their mend without being opened: only complete ones matter.
  const candidates = [...volumes.values()].filter((v) => v.format === 'qcow2' && v.legal && stored.has(v.volumeId));
  if (!repo.readVolumeHeaders || candidates.length === 0) return foreign;
  const headers = await repo.readVolumeHeaders(candidates.map((v) => v.volumeId));
  for (const volume of candidates) {
    const reading = headers.get(volume.volumeId);
    if (reading === undefined) continue; // removed meanwhile
    const allowed = allowedBackingIn(volume, (id) => volumes.get(id) ?? null, (id, format) => repo.backingReference(id, format));
    const reason = typeof reading === 'string' ? reading : readingReason(reading, allowed);
    if (reason) foreign.set(volume.volumeId, reason);
  }
  return foreign;
}

/** The chain from `volumeId` down to its base, from the scan's records; missing links end it. */
export function chainIn(scan: RepositoryScan, volumeId: string): string[] {
  const chain: string[] = [];
  for (let id: string | null = volumeId; id && !chain.includes(id); id = scan.volumes.get(id)?.parentId ?? null) chain.push(id);
  return chain;
}

/** The volumes an image needs (images/references.ts volumesNeededBy, on the scan). */
export function neededBy(scan: RepositoryScan, image: ImageRecord): Set<string> {
  const { chains, volumes } = referencedRoots(image);
  const needed = new Set<string>(volumes);
  for (const root of chains) for (const id of chainIn(scan, root)) needed.add(id);
  return needed;
}

/** For each volume, the images that hold it (not removed, or still read by copies). */
export function usersOfVolumes(scan: RepositoryScan): Map<string, string[]> {
  const users = new Map<string, string[]>();
  for (const image of scan.images) {
    if (!holdsVolumes(image)) continue;
    for (const id of neededBy(scan, image)) users.set(id, [...(users.get(id) ?? []), image.imageId]);
  }
  return users;
}
