import type { PreparedImage } from '../api/image-status';
import { ImageRefInput } from '../api/operations';
import { validate, withCodes } from './failures';
import { onHost } from './routing';
import { tagOperation } from './tags';

/** prepareImage(repositoryId, imageId): make the image usable by a VM on this host, and say how to open it. */
export async function prepareImage(input: ImageRefInput): Promise<PreparedImage> {
  const { hostId, repositoryId, imageId } = validate(ImageRefInput, input);
  tagOperation({ operation: 'prepareImage', repo: repositoryId, image: imageId, host: hostId });
  return withCodes(() => onHost(hostId).prepareImage({ repoId: repositoryId, imageId }));
}

/** teardownImage(repositoryId, imageId): the VM on this host no longer uses the image. */
export async function teardownImage(input: ImageRefInput): Promise<null> {
  const { hostId, repositoryId, imageId } = validate(ImageRefInput, input);
  tagOperation({ operation: 'teardownImage', repo: repositoryId, image: imageId, host: hostId });
  await withCodes(() => onHost(hostId).teardownImage({ repoId: repositoryId, imageId }));
  return null;
}
