/**
 * importImage: the source is probed on the caller's host (activities/imports/source.ts: its
 * format, without following any name inside it) and measured against the target repository
 * (NO_SPACE before anything is written); the new image is then persisted, broken, holding the
 * import job its mend runs on that host.
 */
import { randomUUID } from 'node:crypto';
import type { ImageKind, Strategy, UserData } from '../../api/values';
import { DiskflowError } from '../../api/errors';
import { readImage } from '../images/image-store';
import { persistNewImage } from '../images/lifecycle';
import { freshVolumeFill, type ImportJob, type SourceFormat } from '../images/records';
import { importStages } from '../imports/import-job';
import { requireRoom } from '../imports/measure';
import { DeclaredFormat, measureSpec, probeSource, sourceBlockdev } from '../imports/source';
import type { Operation } from './operation';

export interface ImportImageRequest {
  newImageId: string;
  source: string;
  format: DeclaredFormat;
  sha256?: string;
  operationId: string;
  userData: UserData;
  strategy: Strategy;
  kind: ImageKind;
  autoFix: boolean;
  bandwidth?: number;
}

export interface PersistImportInput {
  imageId: string;
  operationId: string;
  hostId: string;
  size: number;
  kind: ImageKind;
  userData: UserData;
  strategy: Strategy;
  autoFix: boolean;
  job: { location: string; format: SourceFormat; identity: string; sha256: string | null; bandwidth: number | null };
}

export const importImage: Operation<ImportImageRequest, PersistImportInput, { made: boolean }> = {
  async resolve(deps, targetRepoId, request) {
    const target = deps.connections.byRepoId(targetRepoId);
    const probed = await probeSource(request.source, request.format);
    const performance = request.strategy === 'performance';
    const room = await measureSpec(sourceBlockdev(request.source, probed.format), performance ? 'raw' : 'qcow2', probed.virtualSize, performance);
    await requireRoom(target, room.requiredBytes, `the import of ${request.source}`);
    return {
      imageId: request.newImageId,
      operationId: request.operationId,
      hostId: deps.hostId,
      size: probed.virtualSize,
      kind: request.kind,
      userData: request.userData,
      strategy: request.strategy,
      autoFix: request.autoFix,
      job: { location: request.source, format: probed.format, identity: probed.identity, sha256: request.sha256 ?? null, bandwidth: request.bandwidth ?? null },
    };
  },

  async persist(_deps, repo, input) {
    const existing = await readImage(repo, input.imageId);
    if (existing) {
      if (existing.createdBy !== input.operationId) throw new DiskflowError('STORAGE_ERROR', `image id ${input.imageId} is already taken in ${repo.location}`);
      return { made: true };
    }
    const performance = input.strategy === 'performance';
    const job: ImportJob = {
      source: { location: input.job.location, format: input.job.format },
      identity: input.job.identity,
      onHost: input.hostId,
      sha256: input.job.sha256,
      verified: false,
      ...freshVolumeFill(randomUUID(), performance, input.job.bandwidth),
    };
    await persistNewImage(repo, {
      imageId: input.imageId,
      kind: input.kind,
      size: input.size,
      userData: input.userData,
      strategy: input.strategy,
      volumeId: job.volumeId,
      operationId: input.operationId,
      operationType: 'importImage',
      hostId: input.hostId,
      claim: input.autoFix,
      pending: { step: 'import', job },
      stages: importStages(job),
    });
    return { made: true };
  },
};
