import { CancellationScope, condition, defineSignal, isCancellation, setHandler, workflowInfo } from '@temporalio/workflow';
import type { RepositoryRef } from '../activities/host/repositories';
import { ServeBackupInput, ServeBackupOutput } from '../api/operations';
import { EXPORT_READY_SIGNAL, ExportReady, OperationProgress, STOP_EXPORT_SIGNAL } from '../api/progress';
import { progressQuery, progressSignal } from './control';
import { codedFailure, validate } from './failures';
import { answerOncePersisted } from './persisted';
import { persistStep } from './persist-step';
import { forBackupExport, onObjectManager } from './routing';
import { tagOperation } from './tags';

export const stopExportSignal = defineSignal(STOP_EXPORT_SIGNAL);
export const exportReadySignal = defineSignal<[ExportReady]>(EXPORT_READY_SIGNAL);

/**
 * serveBackup(repoId, imageId, since, options): record the export on the image (it becomes one
 * of its readers), then serve it read-only over NBD on the caller's host, with the dirty bitmap
 * of the changes since an earlier copy when asked; answer where it is once clients may connect,
 * and keep it until it is stopped (signal `stopExport`, or cancel) or unused for the idle
 * timeout; then the image is released.
 */
export async function serveBackup(input: ServeBackupInput): Promise<ServeBackupOutput> {
  const answer = answerOncePersisted<ServeBackupOutput>();
  const operationId = workflowInfo().workflowId;
  let ready: ExportReady | undefined;
  let progress: OperationProgress = { state: 'persisting', step: null, waitingFor: null, runsOn: null };
  const exporting = new CancellationScope();
  setHandler(exportReadySignal, (r) => {
    ready = r;
  });
  setHandler(stopExportSignal, () => exporting.cancel());
  setHandler(progressSignal, (step) => {
    progress = { ...progress, step };
  });
  setHandler(progressQuery, () => progress);

  let ended: Promise<unknown> | undefined;
  let failed: unknown;
  const { request, repo, output } = await answer.persisting(
    async () => {
      const request = validate(ServeBackupInput, input);
      tagOperation({ operation: 'serveBackup', repo: request.repositoryId, image: request.imageId, host: request.hostId });
      const { repo } = await persistStep(request.hostId, request.repositoryId, { op: 'serve-backup', imageId: request.imageId, operationId });
      progress = { ...progress, state: 'fixing', runsOn: `host ${request.hostId}` };
      ended = exporting
        .run(() =>
          forBackupExport(request.hostId).serveBackupExport({
            repoUuid: repo.repoUuid,
            imageId: request.imageId,
            operationId,
            since: request.since,
            idleTimeoutSeconds: request.options.idleTimeoutSeconds,
          }),
        )
        .catch((error: unknown) => {
          failed = error;
        });
      try {
        await condition(() => ready !== undefined || failed !== undefined);
      } catch (error) {
        // Cancelled before the export was up: it stops, and the image is released.
        exporting.cancel();
        await CancellationScope.nonCancellable(() => ended!);
        await release(repo, request.imageId, operationId);
        throw error;
      }
      if (!ready) {
        await release(repo, request.imageId, operationId);
        throw failed;
      }
      const output: ServeBackupOutput = { operationId, ...ready };
      return { request, repo, output };
    },
    ({ output }) => output,
  );
  await CancellationScope.nonCancellable(() => ended!);
  await release(repo, request.imageId, operationId);
  progress = { ...progress, state: 'done' };
  // Stopped by the signal or idle: the export is done. Cancelled, or failed: the operation says so.
  if (failed !== undefined && !(isCancellation(failed) && !CancellationScope.current().consideredCancelled)) throw codedFailure(failed);
  return answer.done(output);
}

/** The export no longer reads the image, whatever ended it. */
function release(repo: RepositoryRef, imageId: string, operationId: string): Promise<void> {
  return CancellationScope.nonCancellable(() => onObjectManager(repo).endBackupExport({ repoUuid: repo.repoUuid, imageId, operationId }));
}
