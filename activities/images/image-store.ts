/** Typed access to image and volume records through the Repository interface. */
import { z } from 'zod';
import { canonicalJson } from '../../api/canonical-json';
import { DiskflowError } from '../../api/errors';
import { formatIssues } from '../../api/validation';
import { RecordConflict } from '../repository/repository';
import type { RecordKind, Repository } from '../repository/repository';
import { ImageRecord, VolumeRecord } from './records';

function parseRecord<S extends z.ZodType>(schema: S, raw: unknown, what: string, repo: Repository): z.output<S> {
  const result = schema.safeParse(raw);
  if (!result.success) {
    throw new DiskflowError('STORAGE_ERROR', `${what} in ${repo.location} is corrupt: ${formatIssues(result.error, '')}`);
  }
  return result.data;
}

async function readTyped<S extends z.ZodType>(repo: Repository, kind: RecordKind, schema: S, id: string): Promise<z.output<S> | null> {
  const raw = await repo.readRecord(kind, id);
  return raw === null ? null : parseRecord(schema, raw, `${kind} ${id}`, repo);
}

export const readImage = (repo: Repository, imageId: string): Promise<ImageRecord | null> =>
  readTyped(repo, 'image', ImageRecord, imageId);

export const readVolume = (repo: Repository, volumeId: string): Promise<VolumeRecord | null> =>
  readTyped(repo, 'volume', VolumeRecord, volumeId);

/** The image as users see it: missing and removed images are both IMAGE_NOT_FOUND. */
export async function requireImage(repo: Repository, imageId: string): Promise<ImageRecord> {
  const image = await readImage(repo, imageId);
  if (!image || image.removed) throw new DiskflowError('IMAGE_NOT_FOUND', `image ${imageId} is not in the repository`);
  return image;
}

/** Every image record, removed ones included. Corrupt records are reported, not skipped. */
export async function listImageRecords(repo: Repository): Promise<ImageRecord[]> {
  return repo.listRecords('image', (r) => parseRecord(ImageRecord, r, 'an image record', repo));
}

export async function listVolumeRecords(repo: Repository): Promise<VolumeRecord[]> {
  return repo.listRecords('volume', (r) => parseRecord(VolumeRecord, r, 'a volume record', repo));
}

export async function createImage(repo: Repository, image: ImageRecord): Promise<boolean> {
  return repo.createRecord('image', image.imageId, image);
}

/**
 * Read-modify-write of one image under its lock. `change` returns the new record, or undefined
 * to leave it as it is; every write bumps the generation. The lock is this process's: where a
 * write is sent to another host (a clvm SRM, activities/srm/forwarding-repository.ts) it is a
 * compare-and-swap on the generation, and one that lost (RecordConflict) is made again over the
 * record as it is now.
 */
export async function updateImage(
  repo: Repository,
  imageId: string,
  change: (image: ImageRecord) => ImageRecord | undefined | Promise<ImageRecord | undefined>,
): Promise<ImageRecord> {
  return repo.withRecordLock('image', imageId, async () => {
    for (let attempt = 1; ; attempt++) {
      const current = await readImage(repo, imageId);
      if (!current) throw new DiskflowError('IMAGE_NOT_FOUND', `image ${imageId} is not in the repository`);
      const next = await change(structuredClone(current));
      // A change that changes nothing is not written: two fsyncs saved, and the generation a
      // fix was checked at stays (nothing the fix saw moved).
      if (!next || sameRecord(next, current)) return current;
      const written = { ...next, generation: current.generation + 1, updatedAt: new Date().toISOString() };
      try {
        await repo.writeRecord('image', imageId, written);
        return written;
      } catch (error) {
        if (!(error instanceof RecordConflict) || attempt >= MAX_SWAPS) throw error;
      }
    }
  });
}

const sameRecord = (a: ImageRecord, b: ImageRecord): boolean =>
  canonicalJson({ ...a, generation: 0, updatedAt: '' }) === canonicalJson({ ...b, generation: 0, updatedAt: '' });

/** Writers of one image are few (its operation, progress, the SRM's marks): more losses mean a bug. */
const MAX_SWAPS = 20;

export async function writeVolume(repo: Repository, volume: VolumeRecord): Promise<void> {
  await repo.writeRecord('volume', volume.volumeId, volume);
}

/** The chain of volume records from `volumeId` down to its base; missing links end it. */
export async function readChain(repo: Repository, volumeId: string): Promise<VolumeRecord[]> {
  const chain: VolumeRecord[] = [];
  const seen = new Set<string>();
  for (let id: string | null = volumeId; id && !seen.has(id); ) {
    seen.add(id);
    const volume = await readVolume(repo, id);
    if (!volume) break;
    chain.push(volume);
    id = volume.parentId;
  }
  return chain;
}
