/**
 * The checks of a metadata change another host sent (forwarding-repository.ts decides to send,
 * metadata-forwarder.ts sends), before the SRM's decorator makes it (applyMetadata), and the check
 * srmMetadataStep makes before it schedules anything. The SRM makes a change only if it is
 * signed under the cluster's key for this repository, its operation still runs, and a record
 * it writes is a valid record of the id it is written under.
 */
import { DiskflowError } from '../../api/errors';
import type { SrmMetadataInput } from '../../api/srm-metadata';
import { formatIssues } from '../../api/validation';
import type { ActivityDeps } from '../deps';
import { ImageRecord, VolumeRecord } from '../images/records';
import type { MetadataCall } from '../repository/repository';
import { verifyMetadataCall } from './metadata-signature';

/** A record sent to be written must be one, and be the record of the id it is written under. */
function checkRecordValue(call: MetadataCall): void {
  if (call.method !== 'createRecord' && call.method !== 'writeRecord') return;
  const schema = call.kind === 'image' ? ImageRecord : VolumeRecord;
  const parsed = schema.safeParse(call.value);
  if (!parsed.success) throw new DiskflowError('INVALID_ARGUMENT', `srmMetadataStep: not a valid ${call.kind} record: ${formatIssues(parsed.error, 'call.value')}`);
  const id = call.kind === 'image' ? (parsed.data as ImageRecord).imageId : (parsed.data as VolumeRecord).volumeId;
  if (id !== call.id) throw new DiskflowError('INVALID_ARGUMENT', `srmMetadataStep: the ${call.kind} record of ${id} cannot be written as ${call.id}`);
}

async function checkFromDiskflow({ settings, operations }: ActivityDeps, input: SrmMetadataInput): Promise<void> {
  verifyMetadataCall(settings.fixKey, input);
  if (!(await operations.isRunning(input.operationId))) {
    throw new DiskflowError('INVALID_ARGUMENT', `srmMetadataStep: operation ${input.operationId}, which sent this change, is not running (a change is made only while its operation runs)`);
  }
  checkRecordValue(input.call);
}

export function createSrmMetadataActivities(deps: ActivityDeps) {
  const { connections } = deps;
  return {
    /** Runs on the SRM queue; the format checks the lease before the change (SRM_REQUIRED, retried). */
    async applyMetadataOnSrm(input: SrmMetadataInput): Promise<unknown> {
      await checkFromDiskflow(deps, input);
      const repo = connections.byUuid(input.repoUuid);
      if (!repo.applyMetadata) throw new DiskflowError('INVALID_ARGUMENT', `repository ${repo.location} (${repo.header.format}) needs no SRM`);
      return repo.applyMetadata(input.call);
    },
  };
}

/**
 * Run by srmMetadataStep as a local activity, on whichever host runs the workflow task (every
 * host of a cluster has the key), before the change is scheduled on the SRM queue: a change
 * that did not come from diskflow fails at once instead of waiting there for an SRM.
 */
export function createMetadataCheckActivities(deps: ActivityDeps) {
  return {
    async checkMetadataCall(input: SrmMetadataInput): Promise<void> {
      await checkFromDiskflow(deps, input);
    },
  };
}
