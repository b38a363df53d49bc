import { uuid4, workflowInfo } from '@temporalio/workflow';
import { CreateSnapshotInput, NewImageOutput } from '../api/operations';
import { operationControl } from './control';
import { validate } from './failures';
import { mendStep } from './mend-step';
import { answerOncePersisted } from './persisted';
import { persistStep } from './persist-step';
import { fixRoute } from './routing';
import { tagOperation } from './tags';

/**
 * createSnapshot(targetRepoId, baseVirtualDiskId, userData, options): freeze the disk's current
 * content as a new snapshot, usable at once, and move the disk onto a new overlay of it; then,
 * unless autoFix is off, make that overlay so the disk is writable again. A disk served to its VM
 * is snapshotted live: the VM is moved onto the overlay by the daemon serving it, and the
 * snapshot is usable from that instant.
 */
export async function createSnapshot(input: CreateSnapshotInput): Promise<NewImageOutput> {
  const answer = answerOncePersisted<NewImageOutput>();
  const control = operationControl();
  const snapshotId = uuid4();
  const { request, repo, persisted } = await answer.persisting(
    async () => {
      const request = validate(CreateSnapshotInput, input);
      tagOperation({ operation: 'createSnapshot', repo: request.targetRepoId, image: snapshotId, host: request.hostId });
      const { repo, persisted } = await persistStep(request.hostId, request.targetRepoId, {
        op: 'create-snapshot',
        diskId: request.baseVirtualDiskId,
        snapshotId,
        operationId: workflowInfo().workflowId,
        userData: request.userData,
        autoFix: request.options.autoFix,
      });
      return { request, repo, persisted };
    },
    () => ({ imageId: snapshotId }),
  );
  const diskId = request.baseVirtualDiskId;
  // A disk served to its VM is snapshotted live, by the daemon serving it (older workers answer without servedOn).
  const servedOn = persisted.servedOn ?? null;
  const route = fixRoute(repo, { callerHostId: request.hostId, servedOn });
  if (request.options.autoFix && servedOn) {
    await control.fix(route, diskId, ({ steps }) => steps.liveSnapshot({ repoUuid: repo.repoUuid, imageId: diskId, operationId: workflowInfo().workflowId }));
  } else if (request.options.autoFix) {
    await control.fix(route, diskId, mendStep(diskId));
  }
  control.done();
  return answer.done({ imageId: snapshotId });
}
