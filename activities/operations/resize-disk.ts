/**
 * resizeVirtualDisk: the disk's new size is persisted in its record first (lifecycle/resize.ts),
 * claimed for the fix that then grows its top volume (images/resize.ts): offline with
 * `qemu-img resize`, or live on the host whose daemon serves it.
 */
import { beginResize } from '../images/lifecycle';
import type { Operation } from './operation';

export interface ResizeDiskRequest {
  imageId: string;
  newSize: number;
  operationId: string;
}

export interface PersistResizeInput extends ResizeDiskRequest {
  hostId: string;
}

export interface PersistedResize {
  /** False when the disk has that size already: nothing to grow. */
  grows: boolean;
  /** The disk is served live on this host: its daemon grows it there (null: offline). */
  servedOn: string | null;
}

export const resizeDisk: Operation<ResizeDiskRequest, PersistResizeInput, PersistedResize> = {
  async resolve({ hostId }, _targetRepoId, request) {
    return { ...request, hostId };
  },

  async persist({ operations }, repo, input) {
    return beginResize(repo, input.imageId, input.newSize, { operationId: input.operationId, hostId: input.hostId }, operations);
  },
};
