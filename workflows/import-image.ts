import { uuid4, workflowInfo } from '@temporalio/workflow';
import { ImportImageInput, NewImageOutput } from '../api/operations';
import { operationControl } from './control';
import { validate } from './failures';
import { mendStep } from './mend-step';
import { fixRoute } from './routing';
import { answerOncePersisted } from './persisted';
import { persistStep } from './persist-step';
import { tagOperation } from './tags';

/**
 * importImage(targetRepoId, source, userData, options): probe the source on the caller's host
 * (refusing one that names a backing or data file) and measure it against the target (NO_SPACE
 * before anything is written), persist the new image, broken, and return its id; then, unless
 * autoFix is off, move the data on that host (where a local file is), resumably, with live
 * progress, pause and cancel like any fix.
 */
export async function importImage(input: ImportImageInput): Promise<NewImageOutput> {
  const answer = answerOncePersisted<NewImageOutput>();
  const control = operationControl();
  const newImageId = uuid4();
  const { request, repo, step } = await answer.persisting(
    async () => {
      const request = validate(ImportImageInput, input);
      tagOperation({ operation: 'importImage', repo: request.targetRepoId, host: request.hostId });
      const o = request.options;
      const { repo, step } = await persistStep(request.hostId, request.targetRepoId, {
        op: 'import-image',
        newImageId,
        source: request.source,
        format: o.format,
        ...(o.sha256 ? { sha256: o.sha256 } : {}),
        operationId: workflowInfo().workflowId,
        userData: request.userData,
        strategy: o.strategy,
        kind: o.kind,
        autoFix: o.autoFix,
        ...(o.bandwidth ? { bandwidth: o.bandwidth } : {}),
      });
      return { request, repo, step };
    },
    ({ step }) => ({ imageId: step.input.imageId }),
  );
  const imageId = step.input.imageId;
  tagOperation({ operation: 'importImage', image: imageId });
  if (request.options.autoFix) {
    // The source (a local file) is on the caller's host: the import runs there.
    await control.fix(fixRoute(repo, { callerHostId: request.hostId, chosenHost: request.hostId }), imageId, mendStep(imageId));
  }
  control.done();
  return answer.done({ imageId });
}
