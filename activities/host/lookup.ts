/**
 * Finding an existing image among the repositories this host has connected (the RFC: "VDSM
 * will always look in all connected repositories"), narrowed by `participatingRepositories`
 * and forced by `imageHints`.
 */
import { DiskflowError } from '../../api/errors';
import type { HostConnections } from './connections';
import { readImage } from '../images/image-store';
import type { ImageRecord } from '../images/records';
import type { Repository } from '../repository/repository';

export interface LookupOptions {
  participatingRepositories?: string[];
  imageHints?: Record<string, string>;
}

export interface LocatedImage {
  repoId: string;
  repo: Repository;
  image: ImageRecord;
}

/** Looks for `imageId`, in `preferRepoId` first when given. */
export async function locateImage(connections: HostConnections, imageId: string, options: LookupOptions, preferRepoId?: string): Promise<LocatedImage> {
  const hinted = options.imageHints?.[imageId];
  if (hinted) {
    const repo = connections.byRepoId(hinted);
    const image = await readImage(repo, imageId);
    if (!image || image.removed) throw new DiskflowError('IMAGE_NOT_FOUND', `image ${imageId} is not in repository ${hinted}, where imageHints says to look`);
    return { repoId: hinted, repo, image };
  }
  const repoIds = options.participatingRepositories ?? connections.list().map((c) => c.repoId);
  const ordered = preferRepoId && repoIds.includes(preferRepoId) ? [preferRepoId, ...repoIds.filter((r) => r !== preferRepoId)] : repoIds;
  for (const repoId of ordered) {
    const repo = connections.byRepoId(repoId);
    const image = await readImage(repo, imageId);
    if (image && !image.removed) return { repoId, repo, image };
  }
  throw new DiskflowError('IMAGE_NOT_FOUND', `image ${imageId} is not in ${options.participatingRepositories ? 'the participating repositories' : 'any repository connected'} (${ordered.join(', ') || 'none'}) on host ${connections.host.hostId}`);
}
