/**
 * Change tracking for incremental copies. When diskflow copies a virtual disk, it adds a qcow2
 * persistent dirty bitmap named after the copy to the disk's top volume, right before reading
 * it, and records it in the copy's image record (ChangeTracking). A later copy based on that
 * copy trusts the bitmap only if everything still says it covers every change since:
 *
 * - the record names this source (repository and image);
 * - the source's top volume is the one holding the bitmap (a snapshot moves the disk onto a new
 *   overlay, an optimize or merge replaces the chain: writes since then are not in the bitmap);
 * - the source's chainEpoch is the one the copy read (bumped whenever the chain is replaced; a
 *   VM's writes do not move it, the bitmap counts them);
 * - the bitmap is there, enabled (`auto`) and consistent (no `in-use`: a writer that died with
 *   the image open leaves it so, and its contents are then unknown);
 * - base and source have the same size.
 *
 * Anything else falls back to comparing content, which is slower to read but writes the same.
 */
import { Context } from '@temporalio/activity';
import { addBitmap, Bitmap, listBitmaps, removeBitmap } from '../qemu/bitmaps';
import type { Repository } from '../repository/repository';
import { readImage } from './image-store';
import type { ChangeTracking, ImageRecord, VolumeRecord } from './records';

/**
 * The bitmap a copy's changes are counted in: named after the copy and the repository it is in,
 * so that bitmaps of copies since removed from that repository are recognised and dropped.
 */
export const bitmapName = (targetRepoUuid: string, copyImageId: string) => `diskflow-${targetRepoUuid}-${copyImageId}`;

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const NAME = new RegExp(`^diskflow-(${UUID})-(${UUID})$`);

/** The repository and copy a diskflow bitmap belongs to, or null for any other bitmap. */
export function bitmapOwner(name: string): { repoUuid: string; imageId: string } | null {
  const match = NAME.exec(name);
  return match ? { repoUuid: match[1], imageId: match[2] } : null;
}

export type TrackingVerdict = { trusted: true; bitmap: string } | { trusted: false; reason: string };

export interface SourceNow {
  repoUuid: string;
  imageId: string;
  volumeId: string;
  contentEpoch: number;
  chainEpoch: number;
  size: number;
}

/** Whether a base's change tracking record covers every change of the source since the base was copied. */
export function judgeTracking(tracking: ChangeTracking | null | undefined, baseSize: number, source: SourceNow, bitmaps: Bitmap[]): TrackingVerdict {
  if (!tracking) return { trusted: false, reason: 'the base has no change tracking record' };
  if (tracking.repoUuid !== source.repoUuid || tracking.imageId !== source.imageId) return { trusted: false, reason: `the base is a copy of image ${tracking.imageId}, not of ${source.imageId}` };
  if (tracking.volumeId !== source.volumeId) return { trusted: false, reason: 'the source moved onto another volume since (snapshot, optimize or merge)' };
  // Records from before chainEpoch existed are judged by contentEpoch, which a VM's prepare moves too.
  if (tracking.chainEpoch === undefined ? tracking.contentEpoch !== source.contentEpoch : tracking.chainEpoch !== source.chainEpoch) {
    return { trusted: false, reason: 'the source chain was replaced since (chainEpoch moved)' };
  }
  if (baseSize !== source.size) return { trusted: false, reason: 'the source was resized since' };
  const bitmap = bitmaps.find((b) => b.name === tracking.bitmap);
  if (!bitmap) return { trusted: false, reason: `bitmap ${tracking.bitmap} is missing on the source` };
  if (bitmap.flags.includes('in-use')) return { trusted: false, reason: `bitmap ${tracking.bitmap} is inconsistent (its writer did not close the image)` };
  if (!bitmap.flags.includes('auto')) return { trusted: false, reason: `bitmap ${tracking.bitmap} is disabled` };
  return { trusted: true, bitmap: tracking.bitmap };
}

/**
 * Starts counting changes of `source` for the copy `copyImageId`, before it is read: adds the
 * copy's bitmap on the top volume (an existing consistent one is kept: it has counted since
 * before an earlier attempt read anything, a superset of what is needed). Returns the record to
 * keep with the copy, or null when changes cannot be tracked (a snapshot never changes; raw
 * volumes hold no bitmaps; a volume some writer holds open cannot take one now).
 */
export async function startTracking(
  topPath: string,
  top: VolumeRecord,
  source: ImageRecord,
  repoUuid: string,
  target: Repository,
  copyImageId: string,
  options: {
    signal?: AbortSignal;
    /** The top volume's bitmaps, when the caller has just listed them. */
    listed?: Bitmap[];
    /** Bitmaps this copy still reads (an incremental copy's base's). */
    keep?: string[];
  } = {},
): Promise<ChangeTracking | null> {
  const { signal } = options;
  if (source.kind !== 'virtual-disk' || top.format !== 'qcow2') return null;
  const bitmap = bitmapName(target.header.uuid, copyImageId);
  try {
    const listed = options.listed ?? (await listBitmaps(topPath, { signal }));
    // Bitmaps of earlier copies into the same repository that are gone from it count for nobody.
    for (const other of listed) {
      const owner = bitmapOwner(other.name);
      if (!owner || owner.repoUuid !== target.header.uuid || owner.imageId === copyImageId || options.keep?.includes(other.name)) continue;
      const copy = await readImage(target, owner.imageId);
      if (!copy || copy.removed) await removeBitmap(topPath, other.name, { signal });
    }
    const existing = listed.find((b) => b.name === bitmap);
    if (existing && (existing.flags.includes('in-use') || !existing.flags.includes('auto'))) await removeBitmap(topPath, bitmap, { signal });
    if (!existing || existing.flags.includes('in-use') || !existing.flags.includes('auto')) await addBitmap(topPath, bitmap, { signal });
  } catch (error) {
    if (signal?.aborted) throw error;
    Context.current().log.warn('change tracking not started; the next incremental copy will compare content', { error: String(error) });
    return null;
  }
  return { repoUuid, imageId: source.imageId, volumeId: top.volumeId, bitmap, contentEpoch: source.contentEpoch, chainEpoch: source.chainEpoch };
}

/** Removes a bitmap no copy needs any more (best effort: a leftover one only costs a little). */
export async function dropBitmap(topPath: string, bitmap: string): Promise<void> {
  try {
    await removeBitmap(topPath, bitmap);
  } catch (error) {
    Context.current().log.warn(`bitmap ${bitmap} not removed`, { error: String(error) });
  }
}
