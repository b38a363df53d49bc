/** The SRM's half of a metadata change another host sent (metadata-forwarder.ts). */
import { DiskflowError } from '../../api/errors';
import type { ActivityDeps } from '../deps';
import type { SrmMetadataInput } from './metadata-forwarder';

export function createSrmMetadataActivities({ connections }: ActivityDeps) {
  return {
    /** Runs on the SRM queue; the format checks the lease before the change (SRM_REQUIRED, retried). */
    async applyMetadataOnSrm({ repoUuid, call }: SrmMetadataInput): Promise<unknown> {
      const repo = connections.byUuid(repoUuid);
      if (!repo.applyMetadata) throw new DiskflowError('INVALID_ARGUMENT', `repository ${repo.location} (${repo.header.format}) needs no SRM`);
      return repo.applyMetadata(call);
    },
  };
}
