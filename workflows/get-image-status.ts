import type { ImageStatus } from '../api/image-status';
import { ImageRefInput, ImagesPage, ListImagesInput, ListImagesPageInput } from '../api/operations';
import { validate, withCodes } from './failures';
import { onHost } from './routing';
import { tagOperation } from './tags';

/** getImageStatus(repositoryId, imageId): the image's last persisted status, read from the repository itself. */
export async function getImageStatus(input: ImageRefInput): Promise<ImageStatus> {
  const { hostId, repositoryId, imageId } = validate(ImageRefInput, input);
  tagOperation({ operation: 'getImageStatus', repo: repositoryId, image: imageId, host: hostId });
  return withCodes(() => onHost(hostId).imageStatus({ repoId: repositoryId, imageId }));
}

/** listImages(repositoryId): every image of the repository that is not removed. */
export async function listImages(input: ListImagesInput): Promise<ImageStatus[]> {
  const { hostId, repositoryId } = validate(ListImagesInput, input);
  tagOperation({ operation: 'listImages', repo: repositoryId, host: hostId });
  return withCodes(() => onHost(hostId).listImageStatuses({ repoId: repositoryId }));
}

/**
 * listImagesPage(repositoryId, after): the images after `after`, as many as fit in one answer
 * (Temporal's payloads are limited), and where the next page starts. listImages of the client
 * pages through a repository of any size with it.
 */
export async function listImagesPage(input: ListImagesPageInput): Promise<ImagesPage> {
  const { hostId, repositoryId, after } = validate(ListImagesPageInput, input);
  tagOperation({ operation: 'listImagesPage', repo: repositoryId, host: hostId });
  return withCodes(() => onHost(hostId).listImageStatusPage({ repoId: repositoryId, after }));
}
