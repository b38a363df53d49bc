/** The rules transitions check, and what they share. */
import { DiskflowError } from '../../../api/errors';
import type { ImageRecord, OperationClaim } from '../records';

/** Tells whether an operation (a workflow id) still runs: a claim of one that does not is stale. */
export interface OperationRegistry {
  isRunning(operationId: string): Promise<boolean>;
}

/** The operation asking for a transition, and the host it runs on. */
export interface Actor {
  operationId: string;
  hostId: string;
}

export const now = () => new Date().toISOString();


export function describeClaim(claim: OperationClaim): string {
  return `${claim.type} is working on it (operation ${claim.id}, since ${claim.startedAt})`;
}

/** The claim of another operation that still runs; null when there is none, it is ours, or it is stale. */
export async function liveClaimOfOther(image: ImageRecord, operationId: string | null, operations: OperationRegistry): Promise<OperationClaim | null> {
  const claim = image.operation;
  if (!claim || claim.id === operationId) return null;
  return (await operations.isRunning(claim.id)) ? claim : null;
}

/** Copies reading the image whose operations still run, other than `operationId`. */
export async function liveReaders(image: ImageRecord, operationId: string | null, operations: OperationRegistry): Promise<string[]> {
  const live: string[] = [];
  for (const reader of Object.keys(image.readers)) if (reader !== operationId && (await operations.isRunning(reader))) live.push(reader);
  return live;
}

/**
 * IMAGE_BUSY while another running operation works on the image; with `readers`, also while
 * copies read it (the work would change what they read, or let a VM at it).
 */
export async function refuseWhileBusy(image: ImageRecord, operationId: string | null, operations: OperationRegistry, what: string, readers = false): Promise<void> {
  const claim = await liveClaimOfOther(image, operationId, operations);
  if (claim) throw new DiskflowError('IMAGE_BUSY', `image ${image.imageId} is busy: ${describeClaim(claim)}; ${what} waits for it to end, or cancel it`);
  const reading = readers ? await liveReaders(image, operationId, operations) : [];
  if (reading.length) {
    throw new DiskflowError('IMAGE_BUSY', `image ${image.imageId} is busy: a copy is reading it (operation ${reading.join(', operation ')}); ${what} waits for it to end, or cancel it`);
  }
}

/** IMAGE_IN_USE while a VM may use the image: `what` would change, swap, delete or copy what it writes or reads. */
export function refuseWhilePrepared(image: ImageRecord, what: string): void {
  const hosts = Object.keys(image.prepared);
  if (hosts.length) {
    throw new DiskflowError('IMAGE_IN_USE', `image ${image.imageId} is prepared for a VM on ${hosts.join(', ')}: ${what} is refused while it is in use; tear it down first`);
  }
}

export function refuseRemoved(image: ImageRecord): void {
  if (image.removed) throw new DiskflowError('IMAGE_NOT_FOUND', `image ${image.imageId} is not in the repository`);
}

/** A broken image has work pending: IMAGE_BUSY while an operation completes it, else it needs a mend. */
export async function refuseBroken(image: ImageRecord, operations: OperationRegistry, what: string): Promise<void> {
  if (image.status !== 'broken') return;
  const claim = await liveClaimOfOther(image, null, operations);
  if (claim) throw new DiskflowError('IMAGE_BUSY', `image ${image.imageId} is not complete yet: ${describeClaim(claim)}`);
  throw new DiskflowError(
    'STORAGE_ERROR',
    `image ${image.imageId} is broken${image.lastError ? ` (${image.lastError})` : ''}, so ${what} is not possible; checkStorageRepository offers the fix that mends it`,
    false,
  );
}

export const claimFor = (operationId: string, type: string): OperationClaim => ({ id: operationId, type, startedAt: now() });

/** The claim must still be this operation's (a fix that lost it stops). */
export function requireOwnClaim(image: ImageRecord, operationId: string): void {
  if (image.operation?.id !== operationId) {
    throw new DiskflowError('IMAGE_BUSY', `image ${image.imageId} is no longer claimed by this operation (${operationId}); check again`);
  }
}
