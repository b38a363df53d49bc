import { uuid4, workflowInfo } from '@temporalio/workflow';
import { CreateSnapshotInput, NewImageOutput } from '../api/operations';
import { operationControl } from './control';
import { validate } from './failures';
import { mendImage } from './fix-steps';
import { answerOncePersisted } from './persisted';
import { persistStep } from './persist-step';
import { tagOperation } from './tags';

/**
 * createSnapshot(targetRepoId, baseVirtualDiskId, userData, options): freeze the disk's current
 * content as a new snapshot, usable at once, and move the disk onto a new overlay of it; then,
 * unless autoFix is off, make that overlay so the disk is writable again.
 */
export async function createSnapshot(input: CreateSnapshotInput): Promise<NewImageOutput> {
  const answer = answerOncePersisted<NewImageOutput>();
  const control = operationControl();
  const snapshotId = uuid4();
  const { request, repo } = await answer.persisting(
    async () => {
      const request = validate(CreateSnapshotInput, input);
      tagOperation({ operation: 'createSnapshot', repo: request.targetRepoId, image: snapshotId, host: request.hostId });
      const { repo } = await persistStep(request.hostId, request.targetRepoId, {
        op: 'create-snapshot',
        diskId: request.baseVirtualDiskId,
        snapshotId,
        operationId: workflowInfo().workflowId,
        userData: request.userData,
        autoFix: request.options.autoFix,
      });
      return { request, repo };
    },
    () => ({ imageId: snapshotId }),
  );
  const diskId = request.baseVirtualDiskId;
  if (request.options.autoFix) await control.fix(repo, diskId, () => mendImage(repo, diskId));
  control.done();
  return answer.done({ imageId: snapshotId });
}
