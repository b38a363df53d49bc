import { uuid4, workflowInfo } from '@temporalio/workflow';
import { CreateVirtualDiskInput, NewImageOutput } from '../api/operations';
import { validate } from './failures';
import { mendImage } from './fix-steps';
import { answerOncePersisted } from './persisted';
import { persistStep } from './persist-step';
import { tagOperation } from './tags';
import { invalidArgument } from '../api/errors';

/**
 * createVirtualDisk(targetRepoId, size, baseSnapshotId, userData, options): persist the new
 * disk on the repository and return its id; then, unless autoFix is off, run the fix that
 * makes it usable.
 */
export async function createVirtualDisk(input: CreateVirtualDiskInput): Promise<NewImageOutput> {
  const answer = answerOncePersisted<NewImageOutput>();
  const imageId = uuid4();
  const { request, repo } = await answer.persisting(
    async () => {
      const request = validate(CreateVirtualDiskInput, input);
      tagOperation({ operation: 'createVirtualDisk', repo: request.targetRepoId, image: imageId, host: request.hostId });
      if (request.baseSnapshotId) throw invalidArgument('baseSnapshotId: disks based on snapshots are not available yet');
      const { repo } = await persistStep(request.hostId, request.targetRepoId, {
        kind: 'create-virtual-disk',
        imageId,
        operationId: workflowInfo().workflowId,
        size: request.size,
        userData: request.userData,
        strategy: request.options.strategy,
        autoFix: request.options.autoFix,
      });
      return { request, repo };
    },
    () => ({ imageId }),
  );
  if (request.options.autoFix) await mendImage(repo, imageId);
  return answer.done({ imageId });
}
