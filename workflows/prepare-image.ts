import type { PreparedImage } from '../api/image-status';
import { PrepareImageInput, TeardownImageInput } from '../api/operations';
import { validate, withCodes } from './failures';
import { onHost, onObjectManager } from './routing';
import { tagOperation } from './tags';

/**
 * prepareImage(repositoryId, imageId, options): make the image usable by a VM on this host, and
 * say how to open it: its top volume, or, with `serve`, the export of diskflow's own block layer.
 */
export async function prepareImage(input: PrepareImageInput): Promise<PreparedImage> {
  const { hostId, repositoryId, imageId, options } = validate(PrepareImageInput, input);
  tagOperation({ operation: 'prepareImage', repo: repositoryId, image: imageId, host: hostId });
  const serve = options.serve ? { serve: options.serve } : {};
  return withCodes(async () => {
    const prepared = await onHost(hostId).prepareImage({ repoId: repositoryId, imageId, ...serve });
    if (!('markOnSrm' in prepared)) return prepared;
    // Only the SRM writes this repository's records: it marks the image prepared on this host.
    const mark = { repoUuid: prepared.markOnSrm.repoUuid, imageId, onHost: hostId, prepared: true, ...(prepared.serve ? { serve: prepared.serve } : {}) };
    await onObjectManager(prepared.markOnSrm).markPrepared(mark);
    return onHost(hostId).activateImage({ repoId: repositoryId, imageId, ...serve });
  });
}

/**
 * teardownImage(repositoryId, imageId, options): the VM on this host no longer uses the image;
 * with `fencedHostId`, the engine releases the mark of a host it knows is fenced.
 */
export async function teardownImage(input: TeardownImageInput): Promise<null> {
  const { hostId, repositoryId, imageId, options } = validate(TeardownImageInput, input);
  tagOperation({ operation: 'teardownImage', repo: repositoryId, image: imageId, host: options.fencedHostId ?? hostId });
  await withCodes(async () => {
    const done = await onHost(hostId).teardownImage({ repoId: repositoryId, imageId, ...(options.fencedHostId ? { fencedHostId: options.fencedHostId } : {}) });
    if (done && 'markOnSrm' in done) {
      // Older workers answer without onHost: then it is the caller's host.
      await onObjectManager(done.markOnSrm).markPrepared({ repoUuid: done.markOnSrm.repoUuid, imageId, onHost: done.onHost ?? hostId, prepared: false });
    }
  });
  return null;
}
