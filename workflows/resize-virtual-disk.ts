import { workflowInfo } from '@temporalio/workflow';
import { ResizeVirtualDiskInput } from '../api/operations';
import { operationControl } from './control';
import { validate } from './failures';
import { mendStep } from './mend-step';
import { answerOncePersisted } from './persisted';
import { persistStep } from './persist-step';
import { fixRoute } from './routing';
import { tagOperation } from './tags';

/**
 * resizeVirtualDisk(repoId, imageId, newSize, options): persist the disk's new size, then, unless
 * autoFix is off, run the fix that grows its top volume. A disk served to its VM grows live, by
 * the daemon serving it on the host its record names.
 */
export async function resizeVirtualDisk(input: ResizeVirtualDiskInput): Promise<null> {
  const answer = answerOncePersisted<null>();
  const control = operationControl();
  const { request, repo, persisted } = await answer.persisting(
    async () => {
      const request = validate(ResizeVirtualDiskInput, input);
      tagOperation({ operation: 'resizeVirtualDisk', repo: request.repositoryId, image: request.imageId, host: request.hostId });
      const { repo, persisted } = await persistStep(request.hostId, request.repositoryId, {
        op: 'resize-disk',
        imageId: request.imageId,
        newSize: request.newSize,
        operationId: workflowInfo().workflowId,
      });
      return { request, repo, persisted };
    },
    () => null,
  );
  if (request.options.autoFix && persisted.grows) {
    await control.fix(fixRoute(repo, { callerHostId: request.hostId, servedOn: persisted.servedOn }), request.imageId, mendStep(request.imageId));
  }
  control.done();
  return answer.done(null);
}
