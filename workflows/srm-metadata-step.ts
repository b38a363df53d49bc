/**
 * One metadata change of a repository that needs an SRM, sent by a host that is not the SRM
 * from inside a step that moves data (activities/srm/metadata-forwarder.ts). Its one activity
 * runs on the SRM queue: it waits there while no SRM is elected, and moves to a new SRM when
 * the holder loses the role mid-change (SRM_REQUIRED is retried on that queue).
 */
import type { SrmMetadataInput } from '../activities/srm/metadata-forwarder';
import { withCodes } from './failures';
import { onObjectManager } from './routing';

export async function srmMetadataStep(input: SrmMetadataInput): Promise<unknown> {
  return withCodes(() => onObjectManager({ repoUuid: input.repoUuid, needsSrm: true }).applyMetadataOnSrm(input));
}
