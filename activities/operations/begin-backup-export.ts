/**
 * serveBackup: the export is recorded on the image first (lifecycle/backup-export.ts: it joins
 * the image's readers), then the step on the caller's host serves it (serving/backup-export.ts).
 */
import { beginBackupExport } from '../images/lifecycle';
import type { Operation } from './operation';

export interface BackupExportRequest {
  imageId: string;
  operationId: string;
}

export interface PersistBackupExportInput extends BackupExportRequest {
  hostId: string;
}

export const serveBackup: Operation<BackupExportRequest, PersistBackupExportInput, { kind: 'virtual-disk' | 'snapshot' }> = {
  async resolve({ hostId }, _targetRepoId, request) {
    return { ...request, hostId };
  },

  async persist({ operations }, repo, input) {
    const image = await beginBackupExport(repo, input.imageId, { operationId: input.operationId, hostId: input.hostId }, operations);
    return { kind: image.kind };
  },
};
