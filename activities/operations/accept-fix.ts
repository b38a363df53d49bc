/**
 * fixStorageRepository: accepting a fix is its persist step. The fix data's signature is
 * checked by the host the engine asked (a forged fix goes no further); then the plan is checked
 * against the repository as it is now, under the chains lock: every image it touches still at
 * the generation the check saw, every leftover still needed by nobody, a merge's two volumes
 * still needed by its image alone. The image it works on is claimed for the fix's operation
 * (lifecycle.claimForFix, with the rules of images in use), an optimize's copy job recorded. A
 * fix made stale by later changes is refused with FIX_INVALID, changing nothing.
 */
import { DiskflowError } from '../../api/errors';
import type { ActivityDeps } from '../deps';
import { openFix } from '../fixes/fix-data';
import type { FixPlan } from '../fixes/plans';
import { newCopyJob } from '../images/copy-job';
import { listImageRecords, readImage } from '../images/image-store';
import { claimForFix } from '../images/lifecycle';
import { measureChain, requireRoom } from '../imports/measure';
import { holdsVolumes, liveVolumeIds, volumesNeededBy } from '../images/references';
import type { Repository } from '../repository/repository';
import type { Operation } from './operation';

export interface AcceptFixRequest {
  data: string;
  operationId: string;
  /** Bytes per second an optimize's copy may move. */
  bandwidth?: number;
}

export interface AcceptFixInput {
  plan: FixPlan;
  operationId: string;
  bandwidth?: number;
}

const stale = (why: string) => new DiskflowError('FIX_INVALID', `fix is stale: ${why}; run checkStorageRepository again for current fixes`);

export const acceptFix: Operation<AcceptFixRequest, AcceptFixInput, { plan: FixPlan }> = {
  async resolve({ connections, settings }, targetRepoId, request) {
    const target = connections.byRepoId(targetRepoId);
    const plan = openFix(request.data, target.header.uuid, settings.fixKey);
    // An optimize writes a whole new volume: one that cannot fit is NO_SPACE before it is accepted.
    if (plan.type === 'optimize' && plan.reason !== 'resume') {
      const image = await readImage(target, plan.imageId);
      if (image && !image.removed) {
        const room = await measureChain(target, image.volumeId, plan.format, image.size, plan.format === 'raw');
        await requireRoom(target, room.requiredBytes, `optimizing image ${plan.imageId}`);
      }
    }
    return { plan, operationId: request.operationId, ...(request.bandwidth ? { bandwidth: request.bandwidth } : {}) };
  },

  async persist(deps, repo, { plan, operationId, bandwidth }) {
    await repo.withChainsLock(() => accept(deps, repo, plan, operationId, bandwidth ?? null));
    return { plan };
  },
};

async function accept({ operations, hostId }: ActivityDeps, repo: Repository, plan: FixPlan, operationId: string, bandwidth: number | null): Promise<void> {
  for (const [imageId, generation] of Object.entries(plan.images)) {
    const image = await readImage(repo, imageId);
    if (!image) throw stale(`image ${imageId} is gone`);
    if (image.generation !== generation && image.operation?.id !== operationId) throw stale(`image ${imageId} changed since the check`);
  }
  if (plan.type === 'clean') {
    if (plan.action !== 'orphans') return;
    const live = await liveVolumeIds(repo);
    const needed = plan.volumes.filter((id) => live.has(id));
    if (needed.length) throw stale(`volume ${needed[0]} is in use again`);
    return;
  }
  if (plan.type === 'merge') await requireMergeable(repo, plan.imageId, [plan.upper, plan.lower]);
  await claimForFix(
    repo,
    plan.imageId,
    {
      type: plan.type,
      generation: plan.images[plan.imageId],
      optimizeInto: (img) => newCopyJob({ repoUuid: repo.header.uuid, ...img }, plan.type === 'optimize' && plan.format === 'raw' ? 'performance' : 'space', undefined, null, bandwidth),
    },
    { operationId, hostId },
    operations,
  );
}

/** A merge rewrites `volumes`: no image but the one it merges may need either of them. */
async function requireMergeable(repo: Repository, imageId: string, volumes: string[]): Promise<void> {
  for (const other of await listImageRecords(repo)) {
    if (!holdsVolumes(other) || other.imageId === imageId) continue;
    const needed = await volumesNeededBy(repo, other);
    const shared = volumes.find((id) => needed.has(id));
    if (shared) throw stale(`volume ${shared} is needed by image ${other.imageId} too`);
  }
}
