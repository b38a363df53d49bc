import { patched, uuid4, workflowInfo } from '@temporalio/workflow';
import { invalidArgument } from '../api/errors';
import { CopyImageInput, NewImageOutput } from '../api/operations';
import { operationControl } from './control';
import { validate } from './failures';
import { mendStep } from './mend-step';
import { answerOncePersisted } from './persisted';
import { persistStep } from './persist-step';
import { fixRoute } from './routing';
import { tagOperation } from './tags';

/**
 * copyImage(targetRepoId, imageId, baseImageId, userData, options): persist the new image in
 * the target repository, broken until its data is in place, and return its id (a snapshot
 * keeps its own: copying it where it already is moves nothing); then, unless autoFix is off,
 * copy the data, resumably, with live progress. With a base (a snapshot in the target
 * repository), the new image is an overlay of it holding only what differs (incremental copy).
 */
export async function copyImage(input: CopyImageInput): Promise<NewImageOutput> {
  const answer = answerOncePersisted<NewImageOutput>();
  const control = operationControl();
  const newImageId = uuid4();
  const { request, repo, step, persisted } = await answer.persisting(
    async () => {
      const request = validate(CopyImageInput, input);
      tagOperation({ operation: 'copyImage', repo: request.targetRepoId, image: request.imageId, host: request.hostId });
      // Workflows started before incremental copies existed refused a base here (replay).
      if (request.baseImageId && !patched('incremental-copies')) {
        throw invalidArgument('baseImageId: copies on top of a base (incremental copies) are not available yet');
      }
      const { repo, step, persisted } = await persistStep(request.hostId, request.targetRepoId, {
        op: 'copy-image',
        newImageId,
        sourceId: request.imageId,
        baseImageId: request.baseImageId,
        operationId: workflowInfo().workflowId,
        userData: request.userData,
        strategy: request.options.strategy,
        kind: request.options.kind,
        autoFix: request.options.autoFix,
        lookup: request.options,
        ...(request.options.bandwidth ? { bandwidth: request.options.bandwidth } : {}),
      });
      return { request, repo, step, persisted };
    },
    ({ step }) => ({ imageId: step.input.imageId }),
  );
  const imageId = step.input.imageId;
  tagOperation({ operation: 'copyImage', image: imageId });
  if (request.options.autoFix && persisted.made) {
    const route = fixRoute(repo, {
      callerHostId: request.hostId,
      copiesFromAnotherRepository: step.input.source.repoUuid !== repo.repoUuid,
      // A disk served to its VM is copied live by the daemon serving it (older workers answer without liveOn).
      servedOn: persisted.liveOn ?? null,
    });
    await control.fix(route, imageId, mendStep(imageId));
  }
  control.done();
  return answer.done({ imageId });
}
