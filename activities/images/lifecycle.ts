/**
 * The image lifecycle: the one module that changes an image's state. Every other module reads
 * records; only the transitions below write the state fields of an image record (`status`,
 * `pending`, `optimizing`, `operation`, `readers`, `prepared`, `removed`, `contentEpoch`,
 * `chainEpoch`, and `generation` with every write) and the `legal` mark of a volume record.
 *
 * Each transition is one atomic read-modify-write of one record (updateImage: under the
 * record's lock, a compare-and-swap on the generation where the write is sent to an SRM), and
 * checks every rule that applies to it inside that same step, on the record as it is then: a
 * rule checked on an earlier read could be overtaken by a racing transition, a rule checked in
 * the step that changes the state cannot. docs/ARCHITECTURE.md, "The image lifecycle", has
 * the table of states and transitions.
 *
 * The rules, for images prepared for a VM ("a VM's write is sacred"):
 * - while an image is prepared on any host, nothing deletes, rewrites, swaps or copies what its
 *   VM writes (snapshot, optimize, merge, copy of it, removal: IMAGE_IN_USE, naming the hosts);
 * - prepare of an image that another running operation is changing or copying is refused
 *   (IMAGE_BUSY, naming the operation);
 * - prepare lets a writer at a virtual disk, so it bumps the disk's contentEpoch in the same
 *   step: a copy that overlapped a writer can never be taken for a copy of one instant.
 */
import { DiskflowError } from '../../api/errors';
import type { Stage } from '../../api/image-status';
import type { ImageKind, Strategy, UserData } from '../../api/values';
import type { Repository } from '../repository/repository';
import { createImage, readImage, readVolume, updateImage, writeVolume } from './image-store';
import type { ChangeTracking, CopyJob, ImageRecord, IncrementalMethod, OperationClaim, PendingWork, VolumeRecord } from './records';

/** Tells whether an operation (a workflow id) still runs: a claim of one that does not is stale. */
export interface OperationRegistry {
  isRunning(operationId: string): Promise<boolean>;
}

/** The operation asking for a transition, and the host it runs on. */
export interface Actor {
  operationId: string;
  hostId: string;
}

const now = () => new Date().toISOString();

// ---------------------------------------------------------------------------------------------
// Rules

function describeClaim(claim: OperationClaim): string {
  return `${claim.type} is working on it (operation ${claim.id}, since ${claim.startedAt})`;
}

/** The claim of another operation that still runs; null when there is none, it is ours, or it is stale. */
async function liveClaimOfOther(image: ImageRecord, operationId: string | null, operations: OperationRegistry): Promise<OperationClaim | null> {
  const claim = image.operation;
  if (!claim || claim.id === operationId) return null;
  return (await operations.isRunning(claim.id)) ? claim : null;
}

/** Copies reading the image whose operations still run, other than `operationId`. */
async function liveReaders(image: ImageRecord, operationId: string | null, operations: OperationRegistry): Promise<string[]> {
  const live: string[] = [];
  for (const reader of Object.keys(image.readers)) if (reader !== operationId && (await operations.isRunning(reader))) live.push(reader);
  return live;
}

/**
 * IMAGE_BUSY while another running operation works on the image; with `readers`, also while
 * copies read it (the work would change what they read, or let a VM at it).
 */
async function refuseWhileBusy(image: ImageRecord, operationId: string | null, operations: OperationRegistry, what: string, readers = false): Promise<void> {
  const claim = await liveClaimOfOther(image, operationId, operations);
  if (claim) throw new DiskflowError('IMAGE_BUSY', `image ${image.imageId} is busy: ${describeClaim(claim)}; ${what} waits for it to end, or cancel it`);
  const reading = readers ? await liveReaders(image, operationId, operations) : [];
  if (reading.length) {
    throw new DiskflowError('IMAGE_BUSY', `image ${image.imageId} is busy: a copy is reading it (operation ${reading.join(', operation ')}); ${what} waits for it to end, or cancel it`);
  }
}

/** IMAGE_IN_USE while a VM may use the image: `what` would change, swap, delete or copy what it writes or reads. */
function refuseWhilePrepared(image: ImageRecord, what: string): void {
  const hosts = Object.keys(image.prepared);
  if (hosts.length) {
    throw new DiskflowError('IMAGE_IN_USE', `image ${image.imageId} is prepared for a VM on ${hosts.join(', ')}: ${what} is refused while it is in use; tear it down first`);
  }
}

function refuseRemoved(image: ImageRecord): void {
  if (image.removed) throw new DiskflowError('IMAGE_NOT_FOUND', `image ${image.imageId} is not in the repository`);
}

/** A broken image has work pending: IMAGE_BUSY while an operation completes it, else it needs a mend. */
async function refuseBroken(image: ImageRecord, operations: OperationRegistry, what: string): Promise<void> {
  if (image.status !== 'broken') return;
  const claim = await liveClaimOfOther(image, null, operations);
  if (claim) throw new DiskflowError('IMAGE_BUSY', `image ${image.imageId} is not complete yet: ${describeClaim(claim)}`);
  throw new DiskflowError(
    'STORAGE_ERROR',
    `image ${image.imageId} is broken${image.lastError ? ` (${image.lastError})` : ''}, so ${what} is not possible; checkStorageRepository offers the fix that mends it`,
    false,
  );
}

const claimFor = (operationId: string, type: string): OperationClaim => ({ id: operationId, type, startedAt: now() });

// ---------------------------------------------------------------------------------------------
// Persist: a new image record

export interface NewImage {
  imageId: string;
  kind: ImageKind;
  size: number;
  userData: UserData;
  strategy: Strategy;
  volumeId: string;
  operationId: string;
  operationType: string;
  hostId: string;
  /** Whether the operation goes on to fix the image itself; only then does it claim it. */
  claim: boolean;
  /** Work left before the image is usable; null for an image that is usable at once. */
  pending: PendingWork | null;
  /** The status of an image that needs no work. */
  status?: ImageRecord['status'];
  stages?: number;
}

/** The record of a new image: broken until its pending work is done. */
export function newImageRecord(n: NewImage): ImageRecord {
  const at = now();
  return {
    schema: 'diskflow.image/1',
    imageId: n.imageId,
    kind: n.kind,
    size: n.size,
    userData: n.userData,
    strategy: n.strategy,
    volumeId: n.volumeId,
    generation: 1,
    contentEpoch: 0,
    chainEpoch: 0,
    status: n.pending ? 'broken' : (n.status ?? 'optimized'),
    pending: n.pending,
    optimizing: null,
    changeTracking: null,
    incremental: null,
    removed: null,
    operation: n.claim && n.pending ? claimFor(n.operationId, n.operationType) : null,
    readers: {},
    prepared: {},
    hostId: n.hostId,
    stage: n.pending ? { current: 0, total: n.stages ?? 1 } : null,
    percentComplete: n.pending ? 0 : 100,
    lastError: null,
    createdAt: at,
    createdBy: n.operationId,
    updatedAt: at,
  };
}

/**
 * Persists a new image. False when its id is taken: by this same operation in an earlier
 * attempt (the caller reads the record to tell), or by another image.
 */
export function persistNewImage(repo: Repository, image: NewImage): Promise<boolean> {
  return createImage(repo, newImageRecord(image));
}

// ---------------------------------------------------------------------------------------------
// Claims: one operation at a time per image

/**
 * A copy reads an image: it joins the image's readers (many copies read one image at once), so
 * that while it reads no VM is let at a virtual disk and nothing changes its chain, and the
 * image's volumes stay even if it is removed meanwhile. Returns the image as claimed. Refused:
 * a disk prepared for a VM (IMAGE_IN_USE), one another running operation works on
 * (IMAGE_BUSY), a broken image.
 */
export async function claimForCopy(repo: Repository, imageId: string, actor: Actor, operations: OperationRegistry): Promise<ImageRecord> {
  return updateImage(repo, imageId, async (img) => {
    // A copy that began reading goes on even if the image is removed meanwhile: its volumes stay for it.
    if (actor.operationId in img.readers) return undefined;
    // An optimize copies its own image, which its fix claims already.
    if (img.operation?.id === actor.operationId && !img.removed) return undefined;
    await assertCopyable(img, actor.operationId, operations);
    return { ...img, readers: { ...img.readers, [actor.operationId]: now() } };
  });
}

/**
 * The rules of claimForCopy, checked without claiming: for a copy persisted now and run later
 * (autoFix off), whose run claims the source then.
 */
export async function assertCopyable(image: ImageRecord, operationId: string, operations: OperationRegistry): Promise<void> {
  refuseRemoved(image);
  if (image.kind === 'virtual-disk') refuseWhilePrepared(image, 'a copy of it');
  await refuseBroken(image, operations, 'a copy of it');
  if (image.kind === 'virtual-disk') await refuseWhileBusy(image, operationId, operations, 'a copy of it');
}

/**
 * A copy's source as it is once read (null: gone): still the copy's to use, unless it was
 * removed meanwhile; a removed snapshot stays for the copies that were reading it.
 */
export function copySourceAfter(image: ImageRecord | null, imageId: string, operationId: string): ImageRecord {
  if (!image || (image.removed && !(operationId in image.readers))) {
    throw new DiskflowError('IMAGE_NOT_FOUND', `the copy's source ${imageId} was removed`);
  }
  return image;
}

/** The copy has read the image: it leaves its readers (any claim of the operation stays). */
export async function releaseCopySource(repo: Repository, imageId: string, operationId: string): Promise<void> {
  await updateImage(repo, imageId, (img) => {
    if (!(operationId in img.readers)) return undefined;
    const readers = { ...img.readers };
    delete readers[operationId];
    return { ...img, readers };
  }).catch((error: unknown) => {
    if (!(error instanceof DiskflowError && error.code === 'IMAGE_NOT_FOUND')) throw error;
  });
}

/** A claim held by another operation that still runs: the caller may wait for it (mend does). */
export class ClaimHeld extends DiskflowError {
  constructor(
    readonly imageId: string,
    readonly claim: OperationClaim,
  ) {
    super('IMAGE_BUSY', `image ${imageId} is busy: ${describeClaim(claim)}`);
  }
}

/**
 * An operation takes up a broken image's pending work (mend). ClaimHeld while another running
 * operation holds the image; 'removed' for an image that is gone; the image as claimed else
 * (its `pending` null when there is nothing left to do).
 */
export async function claimPendingWork(repo: Repository, imageId: string, actor: Actor, operations: OperationRegistry): Promise<ImageRecord | 'removed'> {
  let held: OperationClaim | null = null;
  const image = await updateImage(repo, imageId, async (img) => {
    if (img.removed || !img.pending) return undefined;
    held = await liveClaimOfOther(img, actor.operationId, operations);
    if (held) return undefined;
    const claim = img.operation?.id === actor.operationId ? img.operation : claimFor(actor.operationId, 'mend');
    return { ...img, operation: claim, hostId: actor.hostId, lastError: null };
  }).catch((error: unknown) => {
    if (error instanceof DiskflowError && error.code === 'IMAGE_NOT_FOUND') return 'removed' as const;
    throw error;
  });
  if (held) throw new ClaimHeld(imageId, held);
  return image === 'removed' || image.removed ? 'removed' : image;
}

/** The pending work is done: the image is usable, with the status the work promised. */
export async function completePendingWork(repo: Repository, imageId: string, actor: Actor, work: PendingWork | null): Promise<ImageRecord> {
  return updateImage(repo, imageId, (img) => {
    if (img.removed) return undefined;
    // Done already (by another operation that held the claim meanwhile): nothing to change.
    if (!img.pending && !work && img.operation?.id !== actor.operationId) return undefined;
    const total = img.stage?.total ?? 1;
    return {
      ...img,
      pending: null,
      status: work?.step === 'create-volume' ? work.then : img.status === 'broken' ? 'optimized' : img.status,
      operation: img.operation?.id === actor.operationId ? null : img.operation,
      hostId: actor.hostId,
      stage: { current: total, total },
      percentComplete: 100,
      lastError: null,
    };
  });
}

/**
 * A fix is accepted: its image is claimed for it, at the generation the check saw (FIX_INVALID
 * if it moved), unless another running operation holds it (IMAGE_BUSY). Optimize and merge
 * rewrite or swap the image's volumes: refused while it is prepared (IMAGE_IN_USE). An
 * optimize records its copy job (`optimizing`) in the same step.
 */
export async function claimForFix(
  repo: Repository,
  imageId: string,
  fix: { type: 'mend' | 'optimize' | 'merge'; generation: number; optimizeInto?: (image: ImageRecord) => CopyJob },
  actor: Actor,
  operations: OperationRegistry,
): Promise<void> {
  const stale = (why: string) => new DiskflowError('FIX_INVALID', `fix is stale: ${why}; run checkStorageRepository again for current fixes`);
  await updateImage(repo, imageId, async (img) => {
    if (img.operation?.id === actor.operationId) return undefined;
    if (img.removed) throw stale(`image ${imageId} was removed`);
    if (img.generation !== fix.generation) throw stale(`image ${imageId} changed since the check`);
    await refuseWhileBusy(img, actor.operationId, operations, `the ${fix.type} fix`, fix.type !== 'mend');
    if (fix.type !== 'mend') refuseWhilePrepared(img, fix.type === 'merge' ? 'merging its volumes' : 'optimizing it (which replaces its volumes)');
    const claimed = { ...img, operation: claimFor(actor.operationId, `fix:${fix.type}`) };
    if (fix.type === 'optimize' && !img.optimizing && fix.optimizeInto) claimed.optimizing = fix.optimizeInto(img);
    return claimed;
  });
}

/** The claim must still be this operation's (a fix that lost it stops). */
function requireOwnClaim(image: ImageRecord, operationId: string): void {
  if (image.operation?.id !== operationId) {
    throw new DiskflowError('IMAGE_BUSY', `image ${image.imageId} is no longer claimed by this operation (${operationId}); check again`);
  }
}

/** Whether the image is still claimed by the operation (read; for a step that must stop otherwise). */
export function assertClaimedBy(image: ImageRecord, operationId: string): void {
  requireOwnClaim(image, operationId);
}

/**
 * Work stopped for a reason other than a crash (cancelled, paused, failed): why is recorded and
 * the operation's claim released (kept while paused), leaving the image in its last persisted
 * state for a later fix.
 */
export async function recordStoppedWork(repo: Repository, imageId: string, operationId: string, reason: string, keepClaim: boolean): Promise<void> {
  try {
    await updateImage(repo, imageId, (img) => {
      if (img.removed || (img.operation && img.operation.id !== operationId)) return undefined;
      return { ...img, operation: keepClaim ? img.operation : null, lastError: reason };
    });
  } catch (error) {
    if (!(error instanceof DiskflowError && error.code === 'IMAGE_NOT_FOUND')) throw error;
  }
}

/** The operation is done with the image: its claim goes, with the stage it ended at. */
export async function releaseClaim(repo: Repository, imageId: string, actor: Actor, stage?: Stage): Promise<void> {
  await updateImage(repo, imageId, (img) =>
    img.operation?.id !== actor.operationId
      ? undefined
      : { ...img, operation: null, hostId: actor.hostId, lastError: null, ...(stage ? { stage, percentComplete: 100 } : {}) },
  );
}

// ---------------------------------------------------------------------------------------------
// A VM on a host

/**
 * prepareImage's record half: the image is marked prepared on `hostId`. Refused for an image an
 * operation is changing or copying (IMAGE_BUSY) or that is broken. A virtual disk's
 * contentEpoch moves in the same step, as a writer is let at it. `makeRoom` runs first, inside
 * the step (block storage grows a thin volume to hold the whole disk), so a refusal leaves
 * nothing marked.
 */
export async function prepareOnHost(
  repo: Repository,
  imageId: string,
  hostId: string,
  operations: OperationRegistry,
  makeRoom: (image: ImageRecord) => Promise<void>,
): Promise<ImageRecord> {
  return updateImage(repo, imageId, async (img) => {
    refuseRemoved(img);
    await refuseBroken(img, operations, 'preparing it for a VM');
    await refuseWhileBusy(img, null, operations, 'preparing it for a VM', img.kind === 'virtual-disk');
    await makeRoom(img);
    const writable = img.kind === 'virtual-disk';
    return { ...img, prepared: { ...img.prepared, [hostId]: now() }, contentEpoch: writable ? img.contentEpoch + 1 : img.contentEpoch };
  });
}

/**
 * teardownImage's record half: the VM on `hostId` no longer uses the image. Also how an engine
 * releases the mark of a host it knows is fenced (dead, powered off), from another host.
 */
export async function teardownOnHost(repo: Repository, imageId: string, hostId: string): Promise<ImageRecord> {
  return updateImage(repo, imageId, (img) => {
    refuseRemoved(img);
    if (!(hostId in img.prepared)) return undefined;
    const prepared = { ...img.prepared };
    delete prepared[hostId];
    return { ...img, prepared };
  });
}

/**
 * Runs `fn` under the image's record lock while no host has it prepared and nothing works on
 * it (after the last teardown: giving back the room prepare made). Nothing is written.
 */
export async function whileUnused(repo: Repository, imageId: string, fn: (image: ImageRecord) => Promise<void>): Promise<void> {
  await updateImage(repo, imageId, async (img) => {
    const unused = !img.removed && Object.keys(img.prepared).length === 0 && !img.operation && !img.pending && !img.optimizing;
    if (unused) await fn(img);
    return undefined;
  });
}

// ---------------------------------------------------------------------------------------------
// Chains: snapshot, optimize, merge

/** The volume a snapshot is made of, and what the snapshot takes from its disk. */
export interface Frozen {
  volumeId: string;
  status: ImageRecord['status'];
  size: number;
  strategy: Strategy;
}

/**
 * createSnapshot's first record change: the disk's top volume is frozen (it becomes the
 * snapshot's) and the disk moves onto a new overlay of it, broken until its mend makes the
 * overlay, claimed by the operation. Refused while prepared (IMAGE_IN_USE), busy, broken or
 * being optimized (IMAGE_BUSY). An earlier attempt of the same step that moved the disk
 * already is recognised: the frozen volume is the overlay's parent.
 */
export async function freezeForSnapshot(
  repo: Repository,
  diskId: string,
  overlayVolumeId: string,
  actor: Actor,
  operations: OperationRegistry,
): Promise<Frozen> {
  let frozen: Frozen | undefined;
  await updateImage(repo, diskId, async (d) => {
    refuseRemoved(d);
    if (d.kind !== 'virtual-disk') throw new DiskflowError('NOT_A_VIRTUAL_DISK', `image ${diskId} is a snapshot, not a virtual disk`);
    const earlier = d.operation?.id === actor.operationId ? d.pending : null;
    if (earlier?.step === 'create-volume' && earlier.parentId) {
      frozen = { volumeId: earlier.parentId, status: earlier.then, size: d.size, strategy: d.strategy };
      return undefined;
    }
    refuseWhilePrepared(d, 'a snapshot of it');
    await refuseWhileBusy(d, actor.operationId, operations, 'a snapshot of it', true);
    if (d.status === 'broken' || d.optimizing) {
      throw new DiskflowError('IMAGE_BUSY', `virtual disk ${diskId} has work in progress (${d.pending?.step ?? 'optimize'}); fix it first`);
    }
    frozen = { volumeId: d.volumeId, status: d.status, size: d.size, strategy: d.strategy };
    return {
      ...d,
      volumeId: overlayVolumeId,
      status: 'broken',
      pending: { step: 'create-volume', format: 'qcow2', preallocate: false, parentId: d.volumeId, then: d.status },
      // The claim stays even with autoFix off: the pending overlay already keeps VMs away.
      operation: claimFor(actor.operationId, 'createSnapshot'),
      contentEpoch: d.contentEpoch + 1,
      chainEpoch: d.chainEpoch + 1,
      stage: { current: 0, total: 1 },
      percentComplete: 0,
      lastError: null,
      hostId: actor.hostId,
    };
  });
  return frozen!;
}

/**
 * optimize's switch: the image moves onto the volume its copy job made, which holds the same
 * content in a better representation. Only for the claiming fix, never while prepared, and
 * only if the image did not move since the job read it. Returns the top of the chain it left.
 */
export async function switchToOptimized(repo: Repository, imageId: string, actor: Actor): Promise<string> {
  let left = '';
  await updateImage(repo, imageId, (img) => {
    refuseRemoved(img);
    requireOwnClaim(img, actor.operationId);
    refuseWhilePrepared(img, 'switching it onto its optimized volume');
    const job = img.optimizing;
    if (!job) throw new DiskflowError('STORAGE_ERROR', `image ${imageId} has no optimize in progress`, false);
    if (job.source.contentEpoch !== img.contentEpoch) {
      throw new DiskflowError('STORAGE_ERROR', `image ${imageId} changed while it was optimized; the optimize starts over`);
    }
    left = img.volumeId;
    return {
      ...img,
      volumeId: job.volumeId,
      optimizing: null,
      status: 'optimized',
      contentEpoch: img.contentEpoch + 1,
      chainEpoch: img.chainEpoch + 1,
      operation: null,
      hostId: actor.hostId,
      lastError: null,
    };
  });
  return left;
}

/**
 * merge, once `lower` holds everything `upper` did: an image whose top was `upper` moves onto
 * `lower` (same content). Only for the claiming fix, never while prepared.
 */
export async function foldTopInto(repo: Repository, imageId: string, upper: string, lower: string, actor: Actor): Promise<void> {
  await updateImage(repo, imageId, (img) => {
    refuseRemoved(img);
    requireOwnClaim(img, actor.operationId);
    if (img.volumeId !== upper) return undefined;
    refuseWhilePrepared(img, 'merging its volumes');
    return { ...img, volumeId: lower, contentEpoch: img.contentEpoch + 1, chainEpoch: img.chainEpoch + 1 };
  });
}

// ---------------------------------------------------------------------------------------------
// Removal

/**
 * removeImage's persist step: the image is gone for users at once. Refused while prepared
 * (IMAGE_IN_USE). Returns the operation that held the claim, to be stopped.
 */
export async function markRemoved(repo: Repository, imageId: string, operationId: string): Promise<{ interrupted: string | null }> {
  let interrupted: string | null = null;
  await updateImage(repo, imageId, (img) => {
    if (img.removed) {
      if (img.removed.operationId === operationId) return undefined;
      throw new DiskflowError('IMAGE_NOT_FOUND', `image ${imageId} is not in the repository`);
    }
    refuseWhilePrepared(img, 'removing it');
    interrupted = img.operation && img.operation.id !== operationId ? img.operation.id : null;
    return { ...img, removed: { at: now(), operationId }, operation: null };
  });
  return { interrupted };
}

/**
 * Before a removed image's volumes are reclaimed: readers whose operation no longer runs are
 * dropped. IMAGE_BUSY, retryable, while copies still read it: the clean waits for them.
 */
export async function requireUnread(repo: Repository, imageId: string, operations: OperationRegistry): Promise<void> {
  const image = await updateImage(repo, imageId, async (img) => {
    const stale: string[] = [];
    for (const reader of Object.keys(img.readers)) if (!(await operations.isRunning(reader))) stale.push(reader);
    if (!stale.length) return undefined;
    return { ...img, readers: Object.fromEntries(Object.entries(img.readers).filter(([id]) => !stale.includes(id))) };
  });
  const readers = Object.keys(image.readers);
  if (readers.length) {
    throw new DiskflowError('IMAGE_BUSY', `removed image ${imageId} is still being copied by ${readers.join(', ')}; its volumes are reclaimed once they are done`, true);
  }
}

/** clean's last step for a removed image: its record goes (its volumes were reclaimed, or are needed by others). */
export async function forgetRemovedImage(repo: Repository, imageId: string): Promise<void> {
  const image = await readImage(repo, imageId);
  if (!image) return;
  if (!image.removed) throw new DiskflowError('STORAGE_ERROR', `image ${imageId} is not removed; nothing to clean`, false);
  await repo.deleteRecord('image', imageId);
}

// ---------------------------------------------------------------------------------------------
// Copy jobs (inside `pending` or `optimizing`)

export type JobField = 'pending' | 'optimizing';

export function jobOf(image: ImageRecord, field: JobField): CopyJob | null {
  if (field === 'optimizing') return image.optimizing;
  return image.pending?.step === 'copy' ? image.pending.job : null;
}

function withJob(image: ImageRecord, field: JobField, job: CopyJob): ImageRecord {
  if (field === 'optimizing') return { ...image, optimizing: job };
  return { ...image, pending: { step: 'copy', job } };
}

/** A copy attempt takes the job over (an older attempt that finds another one here stops). */
export async function takeOverCopyJob(repo: Repository, imageId: string, field: JobField, attempt: string, hostId: string): Promise<CopyJob | 'removed'> {
  let job: CopyJob | 'removed' = 'removed';
  await updateImage(repo, imageId, (img) => {
    const current = jobOf(img, field);
    if (img.removed || !current) return undefined;
    job = { ...current, attempt };
    return withJob({ ...img, hostId, lastError: null }, field, job);
  });
  return job;
}

/** Applies `change` to the job if it is still this attempt's; stops the attempt otherwise. */
export async function updateCopyJob(
  repo: Repository,
  imageId: string,
  field: JobField,
  attempt: string,
  change: (job: CopyJob) => CopyJob,
): Promise<CopyJob | 'removed'> {
  let result: CopyJob | 'removed' = 'removed';
  await updateImage(repo, imageId, (img) => {
    const job = jobOf(img, field);
    if (img.removed || !job) return undefined;
    if (job.attempt !== attempt) throw new DiskflowError('STORAGE_ERROR', `copy into ${imageId} was taken over by another attempt`, false);
    result = change(job);
    return withJob(img, field, result);
  });
  return result;
}

/** What a finished copy learned: where its source's later changes are counted, and how it was made. */
export async function recordCopyOutcome(
  repo: Repository,
  imageId: string,
  outcome: { changeTracking: ChangeTracking | null; incremental?: { baseImageId: string; method: IncrementalMethod } },
): Promise<'recorded' | 'removed'> {
  const image = await updateImage(repo, imageId, (img) => (img.removed ? undefined : { ...img, ...outcome }));
  return image.removed ? 'removed' : 'recorded';
}

/** The last persisted stage and percent of an image's work (what getImageStatus shows). */
export async function recordProgress(repo: Repository, imageId: string, stage: Stage, percentComplete: number, hostId: string): Promise<void> {
  await updateImage(repo, imageId, (img) => (img.removed ? undefined : { ...img, stage, percentComplete, hostId }));
}

// ---------------------------------------------------------------------------------------------
// Volumes: the legal mark (VDSM's ILLEGAL), set before the first write and cleared after the last

/** A volume's record as its maker knows it before the first write. */
export type NewVolume = Pick<VolumeRecord, 'schema' | 'volumeId' | 'format' | 'parentId' | 'size' | 'createdAt' | 'createdBy'>;

/** A volume about to be written: recorded not legal before its first byte. */
export async function recordIllegalVolume(repo: Repository, volume: NewVolume): Promise<void> {
  await writeVolume(repo, { ...volume, legal: false });
}

/** The volume's last byte is written and checked: it may be used as is. */
export async function markVolumeLegal(repo: Repository, volumeId: string): Promise<void> {
  const volume = await readVolume(repo, volumeId);
  if (!volume) throw new DiskflowError('STORAGE_ERROR', `volume ${volumeId} has no record`);
  if (!volume.legal) await writeVolume(repo, { ...volume, legal: true });
}

/** A merge moved a volume's backing onto `parentId` (its qcow2 header already says so). */
export async function relinkVolume(repo: Repository, volumeId: string, parentId: string): Promise<void> {
  const volume = await readVolume(repo, volumeId);
  if (!volume) throw new DiskflowError('STORAGE_ERROR', `volume ${volumeId} has no record`);
  await writeVolume(repo, { ...volume, parentId });
}

/** A volume's storage was reclaimed: its record goes last. */
export async function forgetVolume(repo: Repository, volumeId: string): Promise<void> {
  await repo.deleteRecord('volume', volumeId);
}
