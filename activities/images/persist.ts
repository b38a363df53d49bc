/**
 * "Persist first": every operation's first step makes its intent durable on the repository,
 * and nothing else. A workflow asks with a PersistRequest (images named as the caller named
 * them); the caller's host resolves it into a PersistStep (repository identities and facts
 * about sources), and the step runs where the repository's constraints allow: right there on
 * the caller's host when any host may create objects (one task dispatch fewer before the
 * caller has its answer), else on the SRM.
 */
import type { ImageKind, Strategy, UserData } from '../../api/values';
import type { ActivityDeps } from '../deps';
import { acceptFix } from '../fixes/accept';
import type { FixPlan } from '../fixes/plans';
import type { LookupOptions } from '../host/lookup';
import { persistCopy, PersistCopyInput } from './copy';
import { markRemoved, RemovalMarked } from './remove';
import { persistSnapshot, PersistSnapshotInput } from './snapshot';
import { persistVirtualDisk, PersistVirtualDiskInput } from './virtual-disk';

export type PersistRequest =
  | {
      op: 'create-virtual-disk';
      imageId: string;
      operationId: string;
      size: number;
      userData: UserData;
      strategy: Strategy;
      autoFix: boolean;
      baseSnapshotId: string | null;
      lookup: LookupOptions;
    }
  | { op: 'create-snapshot'; diskId: string; snapshotId: string; operationId: string; userData: UserData; autoFix: boolean }
  | {
      op: 'copy-image';
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
    }
  | { op: 'mark-removed'; imageId: string; operationId: string }
  | { op: 'accept-fix'; data: string; operationId: string };

export type PersistStep =
  | { op: 'create-virtual-disk'; input: PersistVirtualDiskInput }
  | { op: 'create-snapshot'; input: PersistSnapshotInput }
  | { op: 'copy-image'; input: PersistCopyInput }
  | { op: 'mark-removed'; imageId: string; operationId: string }
  | { op: 'accept-fix'; plan: FixPlan; operationId: string };

export type Persisted =
  | { op: 'create-virtual-disk'; baseCopied: boolean }
  | { op: 'create-snapshot' }
  | { op: 'copy-image'; made: boolean }
  | ({ op: 'mark-removed' } & RemovalMarked)
  | { op: 'accept-fix'; plan: FixPlan };

export function createPersistActivities(deps: ActivityDeps) {
  return {
    async persist({ repoUuid, step }: { repoUuid: string; step: PersistStep }): Promise<Persisted> {
      const repo = deps.connections.byUuid(repoUuid);
      switch (step.op) {
        case 'create-virtual-disk':
          return { op: step.op, ...(await persistVirtualDisk(repo, step.input)) };
        case 'create-snapshot':
          await persistSnapshot(repo, step.input, deps.operations);
          return { op: step.op };
        case 'copy-image':
          return { op: step.op, made: await persistCopy(repo, step.input) };
        case 'mark-removed':
          return { op: step.op, ...(await markRemoved(repo, step)) };
        case 'accept-fix':
          await acceptFix(repo, step.plan, step.operationId, deps.operations);
          return { op: step.op, plan: step.plan };
      }
    },
  };
}
