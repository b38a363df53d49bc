import { getExternalWorkflowHandle, patched, workflowInfo } from '@temporalio/workflow';
import { RemoveImageInput } from '../api/operations';
import { operationControl } from './control';
import { validate, withCodes } from './failures';
import { answerOncePersisted } from './persisted';
import { persistStep } from './persist-step';
import { objectManagerRoute, onObjectManager } from './routing';
import { tagOperation } from './tags';

/**
 * removeImage(repositoryId, imageId, options): mark the image removed, which is immediate and
 * durable; stop any operation still working on it; then, unless autoFix is off, clean the
 * volumes that no other image needs.
 */
export async function removeImage(input: RemoveImageInput): Promise<null> {
  const answer = answerOncePersisted<null>();
  const control = operationControl();
  const operationId = workflowInfo().workflowId;
  const { request, repo, interrupted } = await answer.persisting(
    async () => {
      const request = validate(RemoveImageInput, input);
      tagOperation({ operation: 'removeImage', repo: request.repositoryId, image: request.imageId, host: request.hostId });
      const { repo, persisted } = await persistStep(request.hostId, request.repositoryId, {
        op: 'mark-removed',
        imageId: request.imageId,
        operationId,
      });
      return { request, repo, interrupted: persisted.interrupted };
    },
    () => null,
  );
  if (interrupted) {
    // The interrupted operation may have finished meanwhile; then there is nothing to stop.
    await getExternalWorkflowHandle(interrupted).cancel().catch(() => undefined);
  }
  if (request.options.autoFix) {
    const clean = { repoUuid: repo.repoUuid, imageId: request.imageId, operationId };
    // patched: removals started before the clean ran through the control replay without it.
    if (patched('clean-through-control')) await control.fix(objectManagerRoute(repo), request.imageId, ({ steps }) => steps.cleanRemovedImage(clean));
    else await withCodes(() => onObjectManager(repo).cleanRemovedImage(clean));
  }
  control.done();
  return answer.done(null);
}
