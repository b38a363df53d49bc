import { CancellationScope, workflowInfo } from '@temporalio/workflow';
import { ExportImageInput, OperationStartedOutput } from '../api/operations';
import { operationControl } from './control';
import { validate } from './failures';
import { answerOncePersisted } from './persisted';
import { fixRoute, onHost } from './routing';
import { tagOperation } from './tags';

/**
 * exportImage(repositoryId, imageId, path, options): the image joins its readers (IMAGE_IN_USE
 * for a disk prepared for a VM, IMAGE_BUSY while another operation changes it), and the call
 * answers the operation id; the export then writes one instant of it into a new file at `path`
 * on hostId, with progress (the `progress` query), and releases the image however it ends.
 */
export async function exportImage(input: ExportImageInput): Promise<OperationStartedOutput> {
  const answer = answerOncePersisted<OperationStartedOutput>();
  const control = operationControl();
  const operationId = workflowInfo().workflowId;
  const { request, repo } = await answer.persisting(
    async () => {
      const request = validate(ExportImageInput, input);
      tagOperation({ operation: 'exportImage', repo: request.repositoryId, image: request.imageId, host: request.hostId });
      const repo = await onHost(request.hostId).holdForExport({ repoId: request.repositoryId, imageId: request.imageId, operationId });
      return { request, repo };
    },
    () => ({ operationId }),
  );
  const step = { repoId: request.repositoryId, imageId: request.imageId, operationId };
  try {
    await control.run(() =>
      fixRoute(repo, { callerHostId: request.hostId, chosenHost: request.hostId }).steps.exportImage({ ...step, path: request.path, format: request.options.format, compress: request.options.compress }),
    );
  } finally {
    await CancellationScope.nonCancellable(() => onHost(request.hostId).releaseExport(step));
  }
  control.done();
  return answer.done({ operationId });
}
