/**
 * Backup exports (serveBackup): a snapshot or a stopped disk exposed read-only over NBD for a
 * backup tool to pull. The export joins the image's readers (so no VM is let at a disk and its
 * chain does not change while it is read) and is named on the record (`backupExport`), so that
 * prepare and removal can say what holds the image and how to end it.
 */
import { DiskflowError } from '../../../api/errors';
import type { Repository } from '../../repository/repository';
import { updateImage } from '../image-store';
import type { ImageRecord } from '../records';
import { Actor, now, OperationRegistry, refuseBroken, refuseRemoved, refuseWhileBusy, refuseWhilePrepared } from './rules';

/** The export of the image that still runs, or null (none, or its operation is gone). */
export async function liveBackupExport(image: ImageRecord, operations: OperationRegistry): Promise<ImageRecord['backupExport']> {
  const exported = image.backupExport;
  return exported && (await operations.isRunning(exported.operationId)) ? exported : null;
}

const describeExport = (imageId: string, exported: NonNullable<ImageRecord['backupExport']>) =>
  `image ${imageId} is exported for a backup on ${exported.hostId} (operation ${exported.operationId}, since ${exported.since}); stop it with \`diskflow image serve-backup --stop\` (or cancel the operation)`;

/** Refuses `what` while a running backup export reads the image: `code` is the calling operation's word for it. */
export async function refuseWhileExported(image: ImageRecord, operations: OperationRegistry, what: string, code: 'IMAGE_BUSY' | 'IMAGE_IN_USE'): Promise<void> {
  const exported = await liveBackupExport(image, operations);
  if (exported) throw new DiskflowError(code, `${describeExport(image.imageId, exported)}: ${what} is refused until then`);
}

/**
 * serveBackup's persist step: the export claims the image as a reader. Refused: a disk prepared
 * or served for a VM (IMAGE_IN_USE: export a snapshot of it instead), an image another running
 * operation works on or another export reads (IMAGE_BUSY), a broken or removed one.
 */
export async function beginBackupExport(repo: Repository, imageId: string, actor: Actor, operations: OperationRegistry): Promise<ImageRecord> {
  return updateImage(repo, imageId, async (img) => {
    refuseRemoved(img);
    if (img.backupExport?.operationId === actor.operationId) return undefined;
    await refuseBroken(img, operations, 'a backup export of it');
    if (img.kind === 'virtual-disk') {
      if (img.served) throw new DiskflowError('IMAGE_IN_USE', `image ${imageId} is served to a VM on ${img.served.hostId}: snapshot it and export the snapshot, which its VM does not write`);
      refuseWhilePrepared(img, 'exporting it for a backup (export a snapshot of it instead)');
      await refuseWhileBusy(img, actor.operationId, operations, 'exporting it for a backup');
    }
    await refuseWhileExported(img, operations, 'a second export', 'IMAGE_BUSY');
    return { ...img, readers: { ...img.readers, [actor.operationId]: now() }, backupExport: { operationId: actor.operationId, hostId: actor.hostId, since: now() } };
  });
}

/** The export ended: it no longer reads the image. Idempotent; an image removed meanwhile is fine. */
export async function endBackupExport(repo: Repository, imageId: string, operationId: string): Promise<void> {
  await updateImage(repo, imageId, (img) => {
    const ours = img.backupExport?.operationId === operationId;
    if (!ours && !(operationId in img.readers)) return undefined;
    const readers = { ...img.readers };
    delete readers[operationId];
    return { ...img, readers, backupExport: ours ? null : img.backupExport };
  }).catch((error: unknown) => {
    if (!(error instanceof DiskflowError && error.code === 'IMAGE_NOT_FOUND')) throw error;
  });
}
