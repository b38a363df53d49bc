/**
 * Turns what a caller asked for into a step that names repositories by identity and carries
 * the facts it needs about its sources. Only the caller's host can do this: the repoIds and
 * the lookup options are in its terms.
 */
import { DiskflowError } from '../../api/errors';
import type { ActivityDeps } from '../deps';
import type { PersistRequest, PersistStep } from '../images/persist';
import { openFix } from '../fixes/fix-data';
import { sourceFacts } from '../images/source-facts';
import { incrementalBase } from '../images/incremental-base';
import { locateImage } from './lookup';

export async function resolveRequest({ connections, operations, hostId, settings }: ActivityDeps, targetRepoId: string, request: PersistRequest): Promise<PersistStep> {
  const target = connections.byRepoId(targetRepoId);
  switch (request.op) {
    case 'create-virtual-disk': {
      const { op, baseSnapshotId, lookup, ...rest } = request;
      if (!baseSnapshotId) return { op, input: { ...rest, hostId, base: null } };
      const located = await locateImage(connections, baseSnapshotId, lookup, targetRepoId);
      if (located.image.kind !== 'snapshot') throw new DiskflowError('NOT_A_SNAPSHOT', `image ${baseSnapshotId} is a virtual disk, not a snapshot`);
      const local = located.repo.header.uuid === target.header.uuid;
      const copyFrom = local ? null : await sourceFacts(located.repo.header.uuid, located.image, operations);
      return { op, input: { ...rest, hostId, base: { snapshotId: baseSnapshotId, copyFrom } } };
    }
    case 'create-snapshot': {
      const { op, ...input } = request;
      return { op, input: { ...input, hostId } };
    }
    case 'copy-image': {
      const located = await locateImage(connections, request.sourceId, request.lookup, targetRepoId);
      const source = await sourceFacts(located.repo.header.uuid, located.image, operations);
      const kind = request.kind ?? source.kind;
      // "In case of copying an immutable image the ID will be identical to the original image."
      const imageId = source.kind === 'snapshot' && kind === 'snapshot' ? source.imageId : request.newImageId;
      const base = request.baseImageId ? await incrementalBase(target, request.baseImageId, operations) : null;
      return {
        op: 'copy-image',
        input: {
          imageId,
          operationId: request.operationId,
          operationType: 'copyImage',
          hostId,
          source,
          kind,
          userData: request.userData,
          strategy: request.strategy,
          autoFix: request.autoFix,
          base,
        },
      };
    }
    case 'mark-removed':
      return request;
    case 'accept-fix':
      // The signature is checked by the host the engine asked: a forged fix goes no further.
      return { op: 'accept-fix', plan: openFix(request.data, target.header.uuid, settings.fixKey), operationId: request.operationId };
  }
}
