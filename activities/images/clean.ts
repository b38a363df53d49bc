/**
 * clean: reclaims what no image needs. Garbage collection instead of rollback: a removed
 * image's volumes that no other image needs, then its record; leftovers of interrupted
 * operations (volumes no record needs, temporary files of atomic writes whose writer died); the
 * old volumes an optimize or a merge left. Runs where objects may be deleted (the SRM, where the
 * format needs one), deciding under the chains lock (references.ts).
 */
import type { ActivityDeps, ImageStep, OnRepository } from '../deps';
import { readImage } from './image-store';
import { forgetRemovedImage, requireUnread } from './lifecycle';
import { removeUnneededVolumes, volumesNeededBy } from './references';

export function createCleanActivities({ connections, operations }: ActivityDeps) {
  return {
    /**
     * A removed image: its volumes that no other image needs are reclaimed, then it is forgotten.
     * While copies still read it, the step fails retryably: it runs again once they are done.
     */
    async cleanRemovedImage(input: ImageStep): Promise<{ freedBytes: number }> {
      const repo = connections.byUuid(input.repoUuid);
      const image = await readImage(repo, input.imageId);
      if (!image) return { freedBytes: 0 };
      if (image.removed) await requireUnread(repo, input.imageId, operations);
      const freedBytes = image.removed ? await removeUnneededVolumes(repo, await volumesNeededBy(repo, image)) : 0;
      await forgetRemovedImage(repo, input.imageId);
      return { freedBytes };
    },

    /** Volumes among `volumes` that nothing needs (any more), and temporary files among `strays`. */
    async cleanOrphans(input: OnRepository & { volumes: string[]; strays: string[] }): Promise<{ freedBytes: number }> {
      const repo = connections.byUuid(input.repoUuid);
      let freedBytes = await removeUnneededVolumes(repo, input.volumes);
      const strays = new Map((await repo.listStrayFiles()).map((f) => [f.name, f.bytes]));
      for (const name of input.strays) {
        if (!strays.has(name)) continue;
        freedBytes += strays.get(name)!;
        await repo.removeStrayFile(name);
      }
      return { freedBytes };
    },
  };
}
