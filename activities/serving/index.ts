/** The steps of live operations that are workflow steps of their own (the others run inside fix steps). */
import type { ActivityDeps, ImageStep } from '../deps';
import { endBackupExport } from '../images/lifecycle';
import { BackupExportStep, ExportEnd, runBackupExport } from './backup-export';
import { runLiveSnapshot } from './live-snapshot';

export function createServingActivities(deps: ActivityDeps) {
  return {
    /** createSnapshot of a served disk: the VM moves onto a new overlay, its volume becomes the snapshot (on the host serving it). */
    async liveSnapshot(input: ImageStep): Promise<void> {
      await runLiveSnapshot(deps, deps.connections.byUuid(input.repoUuid), input.imageId, { operationId: input.operationId, hostId: deps.hostId });
    },

    /** serveBackup: holds the read-only NBD export until stopped (cancelled) or idle (on the caller's host). */
    serveBackupExport(input: BackupExportStep): Promise<ExportEnd> {
      return runBackupExport(deps, input);
    },

    /** serveBackup ended: the export no longer reads the image (where records are written). */
    async endBackupExport(input: ImageStep): Promise<void> {
      await endBackupExport(deps.connections.byUuid(input.repoUuid), input.imageId, input.operationId);
    },
  };
}
