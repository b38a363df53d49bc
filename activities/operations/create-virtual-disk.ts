/**
 * createVirtualDisk: a new disk, blank or a thin overlay on a snapshot. A base found only in
 * another connected repository is first copied into the target with its own id (persisted in
 * the same step), then the overlay is made on it. The new disk references the base's volume
 * from the moment it is persisted: made under the chains lock, so a clean of the snapshot at
 * the same time either keeps the volume or finds the disk refused (IMAGE_NOT_FOUND).
 */
import { randomUUID } from 'node:crypto';
import { DiskflowError, invalidArgument } from '../../api/errors';
import type { Strategy, UserData } from '../../api/values';
import { failpoint } from '../failpoints';
import type { LookupOptions } from '../host/lookup';
import { locateImage } from '../host/lookup';
import { readImage } from '../images/image-store';
import { persistNewImage } from '../images/lifecycle';
import type { ImageRecord, PendingWork } from '../images/records';
import { sourceFacts, SourceFacts } from '../images/source-facts';
import type { Repository } from '../repository/repository';
import { persistCopy } from './copy-image';
import type { Operation } from './operation';

export interface CreateVirtualDiskRequest {
  imageId: string;
  operationId: string;
  size: number;
  userData: UserData;
  strategy: Strategy;
  autoFix: boolean;
  baseSnapshotId: string | null;
  lookup: LookupOptions;
}

export interface PersistVirtualDiskInput {
  imageId: string;
  operationId: string;
  hostId: string;
  size: number;
  userData: UserData;
  strategy: Strategy;
  autoFix: boolean;
  /** The snapshot to base the disk on: already in this repository, or to be copied in first. */
  base: { snapshotId: string; copyFrom: SourceFacts | null } | null;
}

export interface PersistedVirtualDisk {
  /**
   * The base snapshot in this repository still has work pending (its copy, made now by this
   * operation or earlier by another one): the workflow completes it, or waits for it, first.
   */
  baseCopied: boolean;
}

export const createVirtualDisk: Operation<CreateVirtualDiskRequest, PersistVirtualDiskInput, PersistedVirtualDisk> = {
  async resolve(deps, targetRepoId, request) {
    const { connections, operations, hostId } = deps;
    const { baseSnapshotId, lookup, ...rest } = request;
    if (!baseSnapshotId) return { ...rest, hostId, base: null };
    const target = connections.byRepoId(targetRepoId);
    const located = await locateImage(connections, baseSnapshotId, lookup, targetRepoId);
    if (located.image.kind !== 'snapshot') throw new DiskflowError('NOT_A_SNAPSHOT', `image ${baseSnapshotId} is a virtual disk, not a snapshot`);
    const local = located.repo.header.uuid === target.header.uuid;
    // A base copied in from another repository is read by this operation's mend at once: from
    // now on that snapshot's volumes stay there for it, even if it is removed meanwhile.
    const copyFrom = local ? null : await sourceFacts(located.repo, located.image, { operationId: request.operationId, hostId }, operations, { claim: request.autoFix });
    return { ...rest, hostId, base: { snapshotId: baseSnapshotId, copyFrom } };
  },

  async persist(_deps, repo, input) {
    const existing = await readImage(repo, input.imageId);
    if (existing) {
      if (existing.createdBy !== input.operationId) throw new DiskflowError('STORAGE_ERROR', `image id ${input.imageId} is already taken in ${repo.location}`);
      return { baseCopied: input.base ? await basePending(repo, input.base.snapshotId) : false };
    }
    if (!input.base) {
      const performance = input.strategy === 'performance';
      if (performance && input.size > (await repo.freeBytes())) {
        throw new DiskflowError('NO_SPACE', `a preallocated ${input.size}-byte disk does not fit in ${repo.location}`);
      }
      await create(repo, input, { step: 'create-volume', format: performance ? 'raw' : 'qcow2', preallocate: performance, parentId: null, then: 'optimized' });
      return { baseCopied: false };
    }
    const base = input.base;
    return repo.withChainsLock(async () => {
      if (base.copyFrom) {
        const facts = base.copyFrom;
        // Checked before the copy is persisted, so a refused disk leaves no copy behind.
        checkBase(facts, input.size);
        await persistCopy(repo, {
          imageId: facts.imageId,
          operationId: input.operationId,
          operationType: 'createVirtualDisk',
          hostId: input.hostId,
          source: facts,
          kind: 'snapshot',
          userData: {},
          strategy: facts.strategy,
          autoFix: input.autoFix,
        });
      }
      const snapshot = await readImage(repo, base.snapshotId);
      if (!snapshot || snapshot.removed) throw new DiskflowError('IMAGE_NOT_FOUND', `snapshot ${base.snapshotId} is not in the repository`);
      checkBase(snapshot, input.size);
      await create(repo, input, {
        step: 'create-volume',
        format: 'qcow2',
        preallocate: false,
        // The base's volume, even while a copy is still filling it: the mend waits for it to be legal.
        parentId: snapshot.volumeId,
        // A thin overlay is the quickest usable disk; for performance it is degraded until optimized.
        then: input.strategy === 'performance' ? 'degraded' : 'optimized',
      });
      return { baseCopied: snapshot.pending !== null };
    });
  },
};

async function create(repo: Repository, input: PersistVirtualDiskInput, pending: PendingWork): Promise<void> {
  const made = await persistNewImage(repo, {
    imageId: input.imageId,
    kind: 'virtual-disk',
    size: input.size,
    userData: input.userData,
    strategy: input.strategy,
    volumeId: randomUUID(),
    operationId: input.operationId,
    operationType: 'createVirtualDisk',
    hostId: input.hostId,
    claim: input.autoFix,
    pending,
  });
  if (!made && (await readImage(repo, input.imageId))?.createdBy !== input.operationId) {
    throw new DiskflowError('STORAGE_ERROR', `image id ${input.imageId} is already taken in ${repo.location}`);
  }
  failpoint('persist.image-created');
}

async function basePending(repo: Repository, snapshotId: string): Promise<boolean> {
  return ((await readImage(repo, snapshotId))?.pending ?? null) !== null;
}

function checkBase(base: Pick<ImageRecord, 'imageId' | 'kind' | 'size'>, size: number): void {
  if (base.kind !== 'snapshot') throw new DiskflowError('NOT_A_SNAPSHOT', `image ${base.imageId} is a virtual disk, not a snapshot`);
  if (size < base.size) throw invalidArgument(`size: ${size} is smaller than snapshot ${base.imageId} (${base.size} bytes); a disk can only grow`);
}
