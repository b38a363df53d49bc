/** Persisting a new virtual disk: blank, or a thin overlay on a snapshot (copied in first if needed). */
import { randomUUID } from 'node:crypto';
import { DiskflowError, invalidArgument } from '../../api/errors';
import type { Strategy, UserData } from '../../api/values';
import type { Repository } from '../repository/repository';
import { failpoint } from '../failpoints';
import { persistCopy } from './copy';
import { createImage, readImage } from './image-store';
import { newImageRecord } from './new-image';
import type { ImageRecord, PendingWork } from './records';
import type { SourceFacts } from './source-facts';

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
  /** A copy of the base snapshot was persisted into this repository and must be done first. */
  baseCopied: boolean;
}

export async function persistVirtualDisk(repo: Repository, input: PersistVirtualDiskInput): Promise<PersistedVirtualDisk> {
  const existing = await readImage(repo, input.imageId);
  if (existing) {
    if (existing.createdBy === input.operationId) return { baseCopied: !!input.base?.copyFrom };
    throw new DiskflowError('STORAGE_ERROR', `image id ${input.imageId} is already taken in ${repo.location}`);
  }
  let pending: PendingWork;
  let baseCopied = false;
  if (input.base) {
    if (input.base.copyFrom) {
      const facts = input.base.copyFrom;
      if (facts.kind !== 'snapshot') throw new DiskflowError('NOT_A_SNAPSHOT', `image ${facts.imageId} is a virtual disk, not a snapshot`);
      baseCopied = await persistCopy(repo, {
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
    const base = await readImage(repo, input.base.snapshotId);
    if (!base || base.removed) throw new DiskflowError('IMAGE_NOT_FOUND', `snapshot ${input.base.snapshotId} is not in the repository`);
    checkBase(base, input.size);
    pending = {
      step: 'create-volume',
      format: 'qcow2',
      preallocate: false,
      // The base's volume, even while a copy is still filling it: the mend waits for it to be legal.
      parentId: base.volumeId,
      // A thin overlay is the quickest usable disk; for performance it is degraded until optimized.
      then: input.strategy === 'performance' ? 'degraded' : 'optimized',
    };
  } else {
    const performance = input.strategy === 'performance';
    if (performance && input.size > (await repo.freeBytes())) {
      throw new DiskflowError('NO_SPACE', `a preallocated ${input.size}-byte disk does not fit in ${repo.location}`);
    }
    pending = { step: 'create-volume', format: performance ? 'raw' : 'qcow2', preallocate: performance, parentId: null, then: 'optimized' };
  }
  const record = newImageRecord({
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
  if (!(await createImage(repo, record)) && (await readImage(repo, input.imageId))?.createdBy !== input.operationId) {
    throw new DiskflowError('STORAGE_ERROR', `image id ${input.imageId} is already taken in ${repo.location}`);
  }
  failpoint('persist.image-created');
  return { baseCopied };
}

function checkBase(base: ImageRecord, size: number): void {
  if (base.kind !== 'snapshot') throw new DiskflowError('NOT_A_SNAPSHOT', `image ${base.imageId} is a virtual disk, not a snapshot`);
  if (size < base.size) throw invalidArgument(`size: ${size} is smaller than snapshot ${base.imageId} (${base.size} bytes); a disk can only grow`);
}
