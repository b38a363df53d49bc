import { uuid4, workflowInfo } from '@temporalio/workflow';
import { CreateVirtualDiskInput, NewImageOutput } from '../api/operations';
import { operationControl } from './control';
import { validate } from './failures';
import { mendStep } from './mend-step';
import { answerOncePersisted } from './persisted';
import { persistStep } from './persist-step';
import { fixRoute } from './routing';
import { tagOperation } from './tags';

/**
 * createVirtualDisk(targetRepoId, size, baseSnapshotId, userData, options): persist the new
 * disk on the repository (and, when its base snapshot is only in another repository, a copy of
 * that snapshot with the same id) and return its id; then, unless autoFix is off, run the fix
 * that makes it usable by the quicker path: a thin overlay on the snapshot, or a blank volume.
 */
export async function createVirtualDisk(input: CreateVirtualDiskInput): Promise<NewImageOutput> {
  const answer = answerOncePersisted<NewImageOutput>();
  const control = operationControl();
  const imageId = uuid4();
  const { request, repo, persisted } = await answer.persisting(
    async () => {
      const request = validate(CreateVirtualDiskInput, input);
      tagOperation({ operation: 'createVirtualDisk', repo: request.targetRepoId, image: imageId, host: request.hostId });
      const { repo, persisted } = await persistStep(request.hostId, request.targetRepoId, {
        op: 'create-virtual-disk',
        imageId,
        operationId: workflowInfo().workflowId,
        size: request.size,
        userData: request.userData,
        strategy: request.options.strategy,
        autoFix: request.options.autoFix,
        baseSnapshotId: request.baseSnapshotId,
        lookup: request.options,
      });
      return { request, repo, persisted };
    },
    () => ({ imageId }),
  );
  if (request.options.autoFix) {
    if (persisted.baseCopied && request.baseSnapshotId) {
      // The base's pending work is its copy in from another repository.
      await control.fix(fixRoute(repo, { callerHostId: request.hostId, copiesFromAnotherRepository: true }), request.baseSnapshotId, mendStep(request.baseSnapshotId));
    }
    await control.fix(fixRoute(repo, { callerHostId: request.hostId }), imageId, mendStep(imageId));
  }
  control.done();
  return answer.done({ imageId });
}
