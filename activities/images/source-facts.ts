/**
 * What a persist step needs to know about an image it reads from (a copy's source, a new disk's
 * base snapshot), gathered by the host that resolved the caller's references, so the step can
 * run on a host that does not have the source's repository connected (an SRM).
 */
import { DiskflowError } from '../../api/errors';
import type { ImageKind, Strategy, UserData } from '../../api/values';
import type { OperationRegistry } from './claims';
import type { ImageRecord } from './records';

export interface SourceFacts {
  repoUuid: string;
  imageId: string;
  kind: ImageKind;
  size: number;
  userData: UserData;
  strategy: Strategy;
  volumeId: string;
  contentEpoch: number;
}

/** Refuses sources that cannot be read faithfully now; returns what the step needs. */
export async function sourceFacts(repoUuid: string, image: ImageRecord, operations: OperationRegistry): Promise<SourceFacts> {
  const usedBy = Object.keys(image.prepared);
  if (image.kind === 'virtual-disk' && usedBy.length) {
    throw new DiskflowError('IMAGE_IN_USE', `virtual disk ${image.imageId} is prepared for a VM on ${usedBy.join(', ')}: its content is changing; tear it down first`);
  }
  if (image.status === 'broken') {
    throw image.operation && (await operations.isRunning(image.operation.id))
      ? new DiskflowError('IMAGE_BUSY', `image ${image.imageId} is not complete yet: ${image.operation.type} is working on it`)
      : new DiskflowError('STORAGE_ERROR', `image ${image.imageId} is broken; checkStorageRepository offers the fix that mends it`, false);
  }
  return {
    repoUuid,
    imageId: image.imageId,
    kind: image.kind,
    size: image.size,
    userData: image.userData,
    strategy: image.strategy,
    volumeId: image.volumeId,
    contentEpoch: image.contentEpoch,
  };
}
