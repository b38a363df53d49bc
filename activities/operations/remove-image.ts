/**
 * removeImage: the removal mark, logical and immediate (the image is gone for users); the
 * operation that was working on the image is to be stopped. Its volumes are reclaimed later by
 * a clean (images/clean.ts), once no other image needs them: garbage collection, not rollback.
 */
import { failpoint } from '../failpoints';
import { readImage } from '../images/image-store';
import { markRemoved } from '../images/lifecycle';
import type { Operation } from './operation';

export interface RemoveImageRequest {
  imageId: string;
  operationId: string;
}

export interface RemovalMarked {
  /** The operation that was working on the image and should now be stopped. */
  interrupted: string | null;
}

export const removeImage: Operation<RemoveImageRequest, RemoveImageRequest, RemovalMarked> = {
  async resolve(_deps, _targetRepoId, request) {
    return request;
  },

  async persist({ operations }, repo, { imageId, operationId }) {
    if ((await readImage(repo, imageId))?.removed?.operationId === operationId) return { interrupted: null };
    const marked = await markRemoved(repo, imageId, operationId, operations);
    failpoint('remove.marked');
    return marked;
  },
};
