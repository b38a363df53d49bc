/** Removal: the mark, and the clean that forgets. */
import { DiskflowError } from '../../../api/errors';
import type { Repository } from '../../repository/repository';
import { readImage, updateImage } from '../image-store';
import { now, OperationRegistry, refuseWhilePrepared } from './rules';
import { refuseWhileExported } from './backup-export';

/**
 * removeImage's persist step: the image is gone for users at once. Refused while prepared
 * (IMAGE_IN_USE), and while a backup export reads it. Returns the operation that held the claim, to be stopped.
 */
export async function markRemoved(repo: Repository, imageId: string, operationId: string, operations?: OperationRegistry): Promise<{ interrupted: string | null }> {
  let interrupted: string | null = null;
  await updateImage(repo, imageId, async (img) => {
    if (img.removed) {
      if (img.removed.operationId === operationId) return undefined;
      throw new DiskflowError('IMAGE_NOT_FOUND', `image ${imageId} is not in the repository`);
    }
    refuseWhilePrepared(img, 'removing it');
    if (operations) await refuseWhileExported(img, operations, 'removing it', 'IMAGE_IN_USE');
    interrupted = img.operation && img.operation.id !== operationId ? img.operation.id : null;
    return { ...img, removed: { at: now(), operationId }, operation: null };
  });
  return { interrupted };
}

/**
 * Before a removed image's volumes are reclaimed: readers whose operation no longer runs are
 * dropped. IMAGE_BUSY, retryable, while copies still read it: the clean waits for them.
 */
export async function requireUnread(repo: Repository, imageId: string, operations: OperationRegistry): Promise<void> {
  const image = await updateImage(repo, imageId, async (img) => {
    const stale: string[] = [];
    for (const reader of Object.keys(img.readers)) if (!(await operations.isRunning(reader))) stale.push(reader);
    if (!stale.length) return undefined;
    return { ...img, readers: Object.fromEntries(Object.entries(img.readers).filter(([id]) => !stale.includes(id))) };
  });
  const readers = Object.keys(image.readers);
  if (readers.length) {
    throw new DiskflowError('IMAGE_BUSY', `removed image ${imageId} is still being copied by ${readers.join(', ')}; its volumes are reclaimed once they are done`, true);
  }
}

/** clean's last step for a removed image: its record goes (its volumes were reclaimed, or are needed by others). */
export async function forgetRemovedImage(repo: Repository, imageId: string): Promise<void> {
  const image = await readImage(repo, imageId);
  if (!image) return;
  if (!image.removed) throw new DiskflowError('STORAGE_ERROR', `image ${imageId} is not removed; nothing to clean`, false);
  await repo.deleteRecord('image', imageId);
}
