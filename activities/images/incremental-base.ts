/**
 * The base of an incremental copy (copyImage's baseImageId): a snapshot already in the target
 * repository, usable now. The new image becomes a qcow2 overlay of its volume, which therefore
 * must never be written again: only a snapshot promises that.
 */
import { DiskflowError } from '../../api/errors';
import type { Repository } from '../repository/repository';
import type { OperationRegistry } from './lifecycle';
import { readImage } from './image-store';

export async function incrementalBase(target: Repository, baseImageId: string, operations: OperationRegistry): Promise<{ imageId: string; volumeId: string }> {
  const base = await readImage(target, baseImageId);
  if (!base || base.removed) {
    throw new DiskflowError('IMAGE_NOT_FOUND', `base image ${baseImageId} is not in the target repository (an incremental copy's base must be there already)`);
  }
  if (base.kind !== 'snapshot') {
    throw new DiskflowError('NOT_A_SNAPSHOT', `base image ${baseImageId} is a virtual disk: an incremental copy is based on a snapshot (copy the first backup with --kind snapshot)`);
  }
  if (base.status === 'broken') {
    throw base.operation && (await operations.isRunning(base.operation.id))
      ? new DiskflowError('IMAGE_BUSY', `base image ${baseImageId} is not complete yet: ${base.operation.type} is working on it`)
      : new DiskflowError('STORAGE_ERROR', `base image ${baseImageId} is broken; checkStorageRepository offers the fix that mends it`, false);
  }
  return { imageId: base.imageId, volumeId: base.volumeId };
}
