/** Volumes: the legal mark (VDSM's ILLEGAL), set before the first write and cleared after the last. */
import { DiskflowError } from '../../../api/errors';
import type { Repository } from '../../repository/repository';
import { readVolume, writeVolume } from '../image-store';
import type { VolumeRecord } from '../records';

/** A volume's record as its maker knows it before the first write. */
export type NewVolume = Pick<VolumeRecord, 'schema' | 'volumeId' | 'format' | 'parentId' | 'size' | 'createdAt' | 'createdBy'>;

/** The record of a volume about to be made for an image: `parentId` its backing (null: standalone). */
export function newVolume(fields: Pick<VolumeRecord, 'volumeId' | 'format' | 'size' | 'createdBy'> & { parentId?: string | null }): NewVolume {
  return { schema: 'diskflow.volume/1', parentId: null, ...fields, createdAt: new Date().toISOString() };
}

/** A volume about to be written: recorded not legal before its first byte. */
export async function recordIllegalVolume(repo: Repository, volume: NewVolume): Promise<void> {
  await writeVolume(repo, { ...volume, legal: false });
}

/** The volume's last byte is written and checked: it may be used as is. */
export async function markVolumeLegal(repo: Repository, volumeId: string): Promise<void> {
  const volume = await readVolume(repo, volumeId);
  if (!volume) throw new DiskflowError('STORAGE_ERROR', `volume ${volumeId} has no record`);
  if (!volume.legal) await writeVolume(repo, { ...volume, legal: true });
}

/** A merge moved a volume's backing onto `parentId` (its qcow2 header already says so). */
export async function relinkVolume(repo: Repository, volumeId: string, parentId: string): Promise<void> {
  const volume = await readVolume(repo, volumeId);
  if (!volume) throw new DiskflowError('STORAGE_ERROR', `volume ${volumeId} has no record`);
  await writeVolume(repo, { ...volume, parentId });
}

/** A volume's storage was reclaimed: its record goes last. */
export async function forgetVolume(repo: Repository, volumeId: string): Promise<void> {
  await repo.deleteRecord('volume', volumeId);
}
