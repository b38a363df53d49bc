/**
 * copyImage: the new image is persisted in the target repository, broken, holding the copy job
 * its mend runs (chains come out flattened). A snapshot keeps its id, and a repository that
 * already holds it gets nothing copied. With a base (a snapshot in the target repository) the
 * new image is an overlay of it holding only what differs (an incremental copy).
 *
 * The copy joins its source's readers from the moment the call is accepted when the copy runs at
 * once (lifecycle.claimForCopy), so that no VM is let at a disk meanwhile and the source's
 * volumes stay; a disk prepared for a VM is refused (IMAGE_IN_USE).
 */
import { randomUUID } from 'node:crypto';
import { DiskflowError } from '../../api/errors';
import type { ImageKind, Strategy, UserData } from '../../api/values';
import { failpoint } from '../failpoints';
import type { LookupOptions } from '../host/lookup';
import { locateImage } from '../host/lookup';
import { COPY_STAGES, newCopyJob } from '../images/copy-job';
import { readImage } from '../images/image-store';
import { incrementalBase } from '../images/incremental-base';
import { persistNewImage, servedOn } from '../images/lifecycle';
import { measureChain, requireRoom } from '../imports/measure';
import type { ImageRecord } from '../images/records';
import { sourceFacts, SourceFacts } from '../images/source-facts';
import type { Repository } from '../repository/repository';
import type { Operation } from './operation';

export interface CopyImageRequest {
  /** The id a copy gets unless it keeps its source's (a snapshot copied as a snapshot). */
  newImageId: string;
  sourceId: string;
  /** An incremental copy's base, a snapshot in the target repository (copyImage's baseImageId). */
  baseImageId?: string | null;
  operationId: string;
  userData: UserData;
  strategy: Strategy;
  kind: ImageKind | undefined;
  autoFix: boolean;
  lookup: LookupOptions;
  /** Bytes per second the copy may move. */
  bandwidth?: number;
}

export interface PersistCopyInput {
  imageId: string;
  operationId: string;
  operationType: string;
  hostId: string;
  source: SourceFacts;
  kind: ImageKind;
  userData: UserData;
  strategy: Strategy;
  autoFix: boolean;
  /** An incremental copy's base: a snapshot in the target repository, and its volume. */
  base?: { imageId: string; volumeId: string } | null;
  bandwidth?: number | null;
  /** What the new volume needs, as resolve measured it (null: not measured, an incremental or live copy). */
  requiredBytes?: number | null;
}

export interface PersistedCopy {
  /** Whether its data is still to be copied (false: a snapshot already there). */
  made: boolean;
  /** The source is served to its VM on this host: the copy runs live there. */
  liveOn: string | null;
}

export const copyImage: Operation<CopyImageRequest, PersistCopyInput, PersistedCopy> = {
  async resolve(deps, targetRepoId, request) {
    const { connections, operations, hostId } = deps;
    const target = connections.byRepoId(targetRepoId);
    const located = await locateImage(connections, request.sourceId, request.lookup, targetRepoId);
    const actor = { operationId: request.operationId, hostId };
    // Measured before anything is written or claimed: a copy that cannot fit is NO_SPACE at once.
    const copied = located.image.kind === 'snapshot' && (request.kind ?? 'snapshot') === 'snapshot' && (await readImage(target, located.image.imageId));
    let requiredBytes: number | null = null;
    if (!request.baseImageId && !copied && !(located.image.kind === 'virtual-disk' && servedOn(located.image))) {
      const performance = request.strategy === 'performance';
      requiredBytes = (await measureChain(located.repo, located.image.volumeId, performance ? 'raw' : 'qcow2', located.image.size, performance)).requiredBytes;
      await requireRoom(target, requiredBytes, `the copy of image ${located.image.imageId}`);
    }
    const source = await sourceFacts(located.repo, located.image, actor, operations, { claim: request.autoFix });
    const kind = request.kind ?? source.kind;
    // "In case of copying an immutable image the ID will be identical to the original image."
    const imageId = source.kind === 'snapshot' && kind === 'snapshot' ? source.imageId : request.newImageId;
    const base = request.baseImageId ? await incrementalBase(target, request.baseImageId, operations) : null;
    return {
      imageId,
      operationId: request.operationId,
      operationType: 'copyImage',
      hostId,
      source,
      kind,
      userData: request.userData,
      strategy: request.strategy,
      autoFix: request.autoFix,
      base,
      bandwidth: request.bandwidth ?? null,
      requiredBytes,
    };
  },

  async persist(_deps, repo, input) {
    return { made: await persistCopy(repo, input), liveOn: input.source.servedOn ?? null };
  },
};

/**
 * Writes the copy's record in `repo`. Returns false when the image is there and complete (a
 * snapshot already copied into this repository: nothing to move), true when its copy is still
 * to be done: made by this operation (now or in an earlier attempt of the same step), or by
 * another one whose copy has not finished (the caller's mend completes it, or waits for it).
 */
export async function persistCopy(repo: Repository, input: PersistCopyInput): Promise<boolean> {
  const existing = await readImage(repo, input.imageId);
  if (existing) return whatIsThere(existing, input);
  const make = async () => {
    if (input.base) {
      // A new reference to the base's volume: made under the chains lock, so a clean cannot take it away meanwhile.
      const base = await readImage(repo, input.base.imageId);
      if (!base || base.removed) throw new DiskflowError('IMAGE_NOT_FOUND', `base image ${input.base.imageId} is not in the target repository`);
    }
    const job = newCopyJob(input.source, input.strategy, randomUUID(), input.base ?? null, input.bandwidth ?? null, input.requiredBytes ?? null);
    return persistNewImage(repo, {
      imageId: input.imageId,
      kind: input.kind,
      size: input.source.size,
      userData: Object.keys(input.userData).length ? input.userData : input.source.userData,
      strategy: input.strategy,
      volumeId: job.volumeId,
      operationId: input.operationId,
      operationType: input.operationType,
      hostId: input.hostId,
      claim: input.autoFix,
      pending: { step: 'copy', job },
      stages: COPY_STAGES,
    });
  };
  if (await (input.base ? repo.withChainsLock(make) : make())) {
    failpoint('persist.image-created');
    return true;
  }
  return whatIsThere((await readImage(repo, input.imageId))!, input);
}

function whatIsThere(existing: ImageRecord, input: PersistCopyInput): boolean {
  if (existing.createdBy === input.operationId) return true;
  if (existing.removed) {
    throw new DiskflowError('IMAGE_BUSY', `a removed copy of image ${input.imageId} is still in the target repository; its clean fix must run first`);
  }
  if (existing.imageId === input.source.imageId && existing.kind === 'snapshot') return existing.pending !== null;
  throw new DiskflowError('STORAGE_ERROR', `image id ${input.imageId} is already taken in the target repository`);
}
