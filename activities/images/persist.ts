/**
 * "Persist first": every operation's first step makes its intent durable on the repository,
 * and nothing else. The steps are data, so one activity runs any of them, on whichever host
 * the repository's constraints allow: the host that owns the caller's repoId when any host
 * may create objects (one task dispatch fewer before the caller has its answer), else the SRM.
 */
import type { ActivityDeps } from '../deps';
import { createRemoveActivities, RemovalMarked } from './remove';
import { createVirtualDiskActivities, PersistVirtualDiskInput } from './virtual-disk';

type Without<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

export type PersistStep = Without<
  ({ kind: 'create-virtual-disk' } & PersistVirtualDiskInput) | ({ kind: 'mark-removed'; imageId: string; operationId: string; repoUuid: string }),
  'repoUuid'
>;

export type Persisted = { kind: 'create-virtual-disk' } | ({ kind: 'mark-removed' } & RemovalMarked);

export function createPersistActivities(deps: ActivityDeps) {
  const disks = createVirtualDiskActivities(deps);
  const removal = createRemoveActivities(deps);

  return {
    async persist({ repoUuid, step }: { repoUuid: string; step: PersistStep }): Promise<Persisted> {
      switch (step.kind) {
        case 'create-virtual-disk':
          await disks.persistVirtualDisk({ ...step, repoUuid });
          return { kind: step.kind };
        case 'mark-removed':
          return { kind: step.kind, ...(await removal.markImageRemoved({ ...step, repoUuid })) };
      }
    },
  };
}
