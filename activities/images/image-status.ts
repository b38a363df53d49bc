/** The user's view of an image record (API.md, ImageStatus). */
import type { ImageStatus } from '../../api/image-status';
import type { ImageRecord } from './records';

export function toImageStatus(image: ImageRecord, repoId: string): ImageStatus {
  return {
    imageId: image.imageId,
    repoId,
    kind: image.kind,
    status: image.status,
    size: image.size,
    userData: image.userData,
    hostId: image.hostId,
    stage: image.stage,
    percentComplete: image.percentComplete,
    lastError: image.lastError,
  };
}
