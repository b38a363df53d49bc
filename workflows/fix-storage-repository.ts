import { patched, workflowInfo } from '@temporalio/workflow';
import type { FixPlan } from '../activities/fixes/plans';
import type { RepositoryRef } from '../activities/host/repositories';
import { FixStartedOutput, FixStorageRepositoryInput } from '../api/operations';
import { operationControl } from './control';
import { validate, withCodes } from './failures';
import { mendStep } from './mend-step';
import { answerOncePersisted } from './persisted';
import { persistStep } from './persist-step';
import { FixRoute, fixRoute, objectManagerRoute, onHost, onObjectManager } from './routing';
import { tagOperation } from './tags';

/**
 * fixStorageRepository(repositoryId, fix, options): accept the fix (its data authentic and still
 * current, the images it works on claimed) and return the operation's id; then carry it out,
 * on `options.hostId` when given, with the same progress, pause and cancel as any operation.
 */
export async function fixStorageRepository(input: FixStorageRepositoryInput): Promise<FixStartedOutput> {
  const answer = answerOncePersisted<FixStartedOutput>();
  const control = operationControl();
  const operationId = workflowInfo().workflowId;
  const { request, repo, plan } = await answer.persisting(
    async () => {
      const request = validate(FixStorageRepositoryInput, input);
      tagOperation({ operation: 'fixStorageRepository', repo: request.repositoryId, image: request.fix.imageIds[0], host: request.options.hostId ?? request.hostId });
      const chosenHost = request.options.hostId;
      // patched: fixes on a chosen host started before this check existed replay without it.
      if (chosenHost && chosenHost !== request.hostId && patched('fix-checks-chosen-host')) {
        // The chosen host must be up and have the repository connected, before anything is claimed.
        const { repoUuid } = await withCodes(() => onHost(request.hostId).resolveRepository({ repoId: request.repositoryId }));
        await withCodes(() => onHost(chosenHost).requireConnected({ repoUuid, repoId: request.repositoryId }));
      }
      const bandwidth = request.options.bandwidth ? { bandwidth: request.options.bandwidth } : {};
      const { repo, persisted } = await persistStep(request.hostId, request.repositoryId, { op: 'accept-fix', data: request.fix.data, operationId, ...bandwidth });
      return { request, repo, plan: persisted.plan };
    },
    () => ({ operationId }),
  );
  // A clean runs where objects may be deleted; any other fix where routing.ts says.
  const route =
    plan.type === 'clean'
      ? objectManagerRoute(repo)
      : fixRoute(repo, {
          callerHostId: request.hostId,
          chosenHost: request.options.hostId,
          copiesFromAnotherRepository: plan.type === 'mend' && !!plan.copyFrom,
          servedOn: plan.onHost,
        });
  await carryOut(route, plan, operationId, control, request.options.bandwidth);
  control.done();
  return answer.done({ operationId });
}

async function carryOut(route: FixRoute, plan: FixPlan, operationId: string, control: ReturnType<typeof operationControl>, bandwidth?: number): Promise<void> {
  const { repo } = route;
  const repoUuid = repo.repoUuid;
  const limit = bandwidth ? { bandwidth } : {};
  switch (plan.type) {
    case 'clean':
      // patched: cleans started before they ran through the control replay without it.
      if (!patched('clean-through-control')) {
        if (plan.action === 'orphans') await onObjectManager(repo).cleanOrphans({ repoUuid, volumes: plan.volumes, strays: plan.strays });
        else await onObjectManager(repo).cleanRemovedImage({ repoUuid, imageId: plan.imageId, operationId });
        return;
      }
      if (plan.action === 'orphans') await control.fix(route, null, ({ steps }) => steps.cleanOrphans({ repoUuid, volumes: plan.volumes, strays: plan.strays }));
      else await control.fix(route, plan.imageId, ({ steps }) => steps.cleanRemovedImage({ repoUuid, imageId: plan.imageId, operationId }));
      return;
    case 'mend':
      await control.fix(route, plan.imageId, mendStep(plan.imageId));
      return;
    case 'optimize': {
      const left = await control.fix(route, plan.imageId, ({ steps }) => steps.optimizeImage({ repoUuid, imageId: plan.imageId, operationId, ...limit }));
      await cleanLeftBehind(repo, left, control);
      return;
    }
    case 'merge': {
      const left = await control.fix(route, plan.imageId, ({ steps }) =>
        steps.mergeVolumes({ repoUuid, imageId: plan.imageId, operationId, upper: plan.upper, lower: plan.lower, ...limit }),
      );
      await cleanLeftBehind(repo, left, control);
      return;
    }
  }
}

/**
 * What an optimize or a merge left behind is reclaimed where objects may be deleted (the SRM,
 * on formats that need one), by the clean that decides under the chains lock, through the same
 * control as every fix step (pause, cancel, lastError). Workflows started before this step
 * existed had their fix step remove it (older workers) or leave it to the clean of orphans a
 * later check offers; those started before it ran through the control replay without it.
 */
async function cleanLeftBehind(repo: RepositoryRef, left: { unneeded: string[] } | undefined, control: ReturnType<typeof operationControl>): Promise<void> {
  if (!patched('clean-after-fix-on-object-manager') || !left?.unneeded.length) return;
  const input = { repoUuid: repo.repoUuid, volumes: left.unneeded, strays: [] };
  if (patched('clean-left-behind-through-control')) await control.fix(objectManagerRoute(repo), null, ({ steps }) => steps.cleanOrphans(input));
  else await withCodes(() => onObjectManager(repo).cleanOrphans(input));
}
