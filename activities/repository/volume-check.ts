/**
 * Before qemu opens a volume (activation for a copy, a mend, a merge, a VM): its file must be
 * what the repository's records say it is. A qcow2 volume's header is read by diskflow itself
 * (qemu/qcow2-header.ts) and must name exactly the backing volume of its recorded chain, so no
 * file a repository holds can make qemu open anything outside that chain. A volume that fails
 * is never opened; checkStorageRepository reports it (fixes/scan.ts).
 */
import { DiskflowError } from '../../api/errors';
import { VolumeRecord } from '../images/records';
import { AllowedBacking, foreignReason, HeadReading } from '../qemu/qcow2-header';
import type { VolumeFormat } from '../qemu/qemu-img';
import type { Repository } from './repository';

type ChainLink = Pick<VolumeRecord, 'volumeId' | 'format' | 'parentId'>;

/** A chain far longer than any diskflow makes: a corrupt record naming a cycle must not hang a step. */
const MAX_CHAIN = 1000;

type Allowed = { allowed: AllowedBacking[] } | { broken: string };

/**
 * The backing volumes a volume's header may name, its parent first, looked up with `find`; or
 * why there are none to trust (a parent without a record). One step of the walk per call of
 * `step`, so the same walk serves records in memory (a check) and records read one by one.
 */
function* walk(record: ChainLink, reference: (volumeId: string, format: VolumeFormat) => string): Generator<string, Allowed, ChainLink | null> {
  const allowed: AllowedBacking[] = [];
  const seen = new Set([record.volumeId]);
  for (let id = record.parentId; id && !seen.has(id) && seen.size < MAX_CHAIN; ) {
    seen.add(id);
    const volume = yield id;
    if (!volume) {
      if (allowed.length === 0) return { broken: `its parent volume ${id} has no record` };
      break;
    }
    allowed.push({ name: reference(volume.volumeId, volume.format), format: volume.format });
    id = volume.parentId;
  }
  return { allowed };
}

/** allowedBacking over records in memory (a check's scan). */
export function allowedBackingIn(record: ChainLink, find: (volumeId: string) => ChainLink | null, reference: (volumeId: string, format: VolumeFormat) => string): Allowed {
  const steps = walk(record, reference);
  for (let step = steps.next(); ; ) {
    if (step.done) return step.value;
    step = steps.next(find(step.value));
  }
}

/** The backing volumes a volume's header may name, reading each record of its chain with `find`. */
export async function allowedBacking(record: ChainLink, find: (volumeId: string) => Promise<ChainLink | null>, reference: (volumeId: string, format: VolumeFormat) => string): Promise<Allowed> {
  const steps = walk(record, reference);
  for (let step = steps.next(); ; ) {
    if (step.done) return step.value;
    step = steps.next(await find(step.value));
  }
}

/** Why a qcow2 volume whose header reads as `reading` must not be opened, or null. */
export function readingReason(reading: HeadReading, allowed: Allowed): string | null {
  if ('broken' in allowed) return allowed.broken;
  if ('notQcow2' in reading) return 'it is not a qcow2 file, as its record says';
  if ('invalid' in reading) return `its qcow2 header is not one qemu makes (${reading.invalid})`;
  if ('needBytes' in reading) return 'its qcow2 header could not be read';
  return foreignReason(reading.qcow2, allowed.allowed);
}

export function notOpened(repo: Pick<Repository, 'location'>, volumeId: string, reason: string): DiskflowError {
  return new DiskflowError(
    'STORAGE_ERROR',
    `volume ${volumeId} in ${repo.location} is not what its records say: ${reason}; diskflow does not open it (checkStorageRepository reports it)`,
    false,
  );
}

async function readVolumeRecord(repo: Repository, volumeId: string): Promise<VolumeRecord | null> {
  const raw = await repo.readRecord('volume', volumeId);
  if (raw === null) return null;
  const parsed = VolumeRecord.safeParse(raw);
  if (!parsed.success) throw new DiskflowError('STORAGE_ERROR', `volume ${volumeId} in ${repo.location}: its record is corrupt`, false);
  return parsed.data;
}

/**
 * Throws STORAGE_ERROR unless the volume at hand may be opened as `format`: it has a record of
 * that format and, if qcow2, its header (`header()`, read by diskflow) names only its recorded chain.
 */
export async function assertOpenable(repo: Repository, volumeId: string, format: VolumeFormat, header: () => Promise<HeadReading>): Promise<void> {
  const record = await readVolumeRecord(repo, volumeId);
  if (!record) throw notOpened(repo, volumeId, 'it has no record');
  if (record.format !== format) throw notOpened(repo, volumeId, `its record says ${record.format}, not ${format}`);
  if (format !== 'qcow2') return;
  const allowed = await allowedBacking(record, (id) => readVolumeRecord(repo, id), (id, f) => repo.backingReference(id, f));
  const reason = 'broken' in allowed ? allowed.broken : readingReason(await header(), allowed);
  if (reason) throw notOpened(repo, volumeId, reason);
}
