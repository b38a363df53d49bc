/** The steps of live operations that are workflow steps of their own (the others run inside fix steps). */
import type { ActivityDeps, ImageStep } from '../deps';
import { runLiveSnapshot } from './live-snapshot';

export function createServingActivities(deps: ActivityDeps) {
  return {
    /** createSnapshot of a served disk: the VM moves onto a new overlay, its volume becomes the snapshot (on the host serving it). */
    async liveSnapshot(input: ImageStep): Promise<void> {
      await runLiveSnapshot(deps, deps.connections.byUuid(input.repoUuid), input.imageId, { operationId: input.operationId, hostId: deps.hostId });
    },
  };
}
