/**
 * One metadata change of a repository that needs an SRM, sent by a host that is not the SRM
 * from inside a step that moves data (activities/srm/metadata-forwarder.ts). Its one activity
 * runs on the SRM queue: it waits there while no SRM is elected, and moves to a new SRM when
 * the holder loses the role mid-change (SRM_REQUIRED is retried on that queue).
 *
 * An internal type, yet startable by anyone who can start workflows: it takes only a change
 * diskflow signed (api/srm-metadata.ts). A malformed input fails at once with INVALID_ARGUMENT;
 * a well-formed one is checked (signature, operation still running) by a local activity on the
 * host running this workflow task before anything waits on the SRM queue, and again by the SRM.
 */
import { patched, proxyLocalActivities } from '@temporalio/workflow';
import type { WorkflowLocalActivities } from '../activities/workflow-local';
import { SrmMetadataInput } from '../api/srm-metadata';
import { validate, withCodes } from './failures';
import { onObjectManager } from './routing';

const local = proxyLocalActivities<WorkflowLocalActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 3, initialInterval: '200 milliseconds' },
});

export async function srmMetadataStep(input: SrmMetadataInput): Promise<unknown> {
  // Changes sent before they were signed replay as they ran.
  if (!patched('srm-metadata-signed')) {
    return withCodes(() => onObjectManager({ repoUuid: input.repoUuid, needsSrm: true }).applyMetadataOnSrm(input));
  }
  const request = validate(SrmMetadataInput, input);
  await withCodes(() => local.checkMetadataCall(request));
  return withCodes(() => onObjectManager({ repoUuid: request.repoUuid, needsSrm: true }).applyMetadataOnSrm(request));
}
