/**
 * Accepting a fix is its persist step: the plan is checked against the repository as it is now
 * (every image it touches still at the generation the check saw; every leftover still needed by
 * nobody), and the images it works on are claimed for the fix's operation, an optimize's copy
 * job recorded. A fix made stale by later changes is refused with FIX_INVALID, changing nothing.
 */
import { DiskflowError } from '../../api/errors';
import { assertNotBusy, claimFor, OperationRegistry } from '../images/claims';
import { newCopyJob } from '../images/copy';
import { readImage, updateImage } from '../images/image-store';
import { CHAINS_LOCK, liveVolumeIds } from '../images/remove';
import type { Repository } from '../repository/repository';
import type { FixPlan } from './plans';

const stale = (why: string) => new DiskflowError('FIX_INVALID', `fix is stale: ${why}; run checkStorageRepository again for current fixes`);

export async function acceptFix(repo: Repository, plan: FixPlan, operationId: string, operations: OperationRegistry): Promise<void> {
  await repo.withRecordLock('volume', CHAINS_LOCK, async () => {
    for (const [imageId, generation] of Object.entries(plan.images)) {
      const image = await readImage(repo, imageId);
      if (!image) throw stale(`image ${imageId} is gone`);
      const acceptedAlready = image.operation?.id === operationId;
      if (image.generation !== generation && !acceptedAlready) throw stale(`image ${imageId} changed since the check`);
    }
    if (plan.type === 'clean' && plan.action === 'orphans') {
      const live = await liveVolumeIds(repo);
      const needed = plan.volumes.filter((id) => live.has(id));
      if (needed.length) throw stale(`volume ${needed[0]} is in use again`);
      return;
    }
    if (plan.type === 'clean') return;
    const image = (await readImage(repo, plan.imageId))!;
    if (image.operation?.id === operationId) return;
    if (image.removed) throw stale(`image ${plan.imageId} was removed`);
    await assertNotBusy(image, operationId, operations);
    if (plan.type === 'merge' && Object.keys(image.prepared).length) {
      throw new DiskflowError('IMAGE_IN_USE', `image ${plan.imageId} is prepared for a VM; merging rewrites its volumes, tear it down first`);
    }
    await updateImage(repo, plan.imageId, (img) => {
      const claimed = { ...img, operation: claimFor(operationId, `fix:${plan.type}`) };
      if (plan.type !== 'optimize' || img.optimizing) return claimed;
      const source = { repoUuid: repo.header.uuid, imageId: img.imageId, kind: img.kind, size: img.size, userData: img.userData, strategy: img.strategy, volumeId: img.volumeId, contentEpoch: img.contentEpoch };
      const job = newCopyJob(source, plan.format === 'raw' ? 'performance' : 'space');
      return { ...claimed, optimizing: job };
    });
  });
}
