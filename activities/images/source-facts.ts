/**
 * What a persist step needs to know about an image it reads from (a copy's source, a new disk's
 * base snapshot), gathered by the host that resolved the caller's references, so the step can
 * run on a host that does not have the source's repository connected (an SRM).
 */
import type { ImageKind, Strategy, UserData } from '../../api/values';
import type { Repository } from '../repository/repository';
import { Actor, assertCopyable, claimForCopy, OperationRegistry, servedOn } from './lifecycle';
import type { ImageRecord } from './records';

export interface SourceFacts {
  repoUuid: string;
  imageId: string;
  kind: ImageKind;
  size: number;
  userData: UserData;
  strategy: Strategy;
  volumeId: string;
  contentEpoch: number;
  /** The host whose daemon serves the disk to its VM: a copy of it runs live there. */
  servedOn?: string | null;
}

/**
 * Refuses sources that cannot be read faithfully now (a disk prepared for a VM, busy, broken);
 * with `claim`, a virtual disk is claimed for the copy in the same step, so that it holds still
 * until the copy has read it. Returns what the step needs.
 */
export async function sourceFacts(
  repo: Repository,
  image: ImageRecord,
  actor: Actor,
  operations: OperationRegistry,
  options: { claim: boolean },
): Promise<SourceFacts> {
  let checked = image;
  if (options.claim) checked = await claimForCopy(repo, image.imageId, actor, operations);
  else await assertCopyable(image, actor.operationId, operations);
  return {
    repoUuid: repo.header.uuid,
    imageId: checked.imageId,
    kind: checked.kind,
    size: checked.size,
    userData: checked.userData,
    strategy: checked.strategy,
    volumeId: checked.volumeId,
    contentEpoch: checked.contentEpoch,
    servedOn: checked.kind === 'virtual-disk' ? servedOn(checked) : null,
  };
}
