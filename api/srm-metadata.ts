/**
 * The input of `srmMetadataStep`, the one internal workflow type (docs/ARCHITECTURE.md, "Entry
 * points"): one metadata change of a repository that needs an SRM, sent by a host that is not
 * the SRM. It is registered on the same task queue as the public types, so anyone who can start
 * a workflow can start it: it is accepted only with a signature under the cluster's key
 * (DISKFLOW_FIX_KEY), over the repository, the operation that sends it and the change, and only
 * while that operation runs (activities/srm/metadata-signature.ts). Pure: workflows check the
 * shape with it before anything is scheduled.
 */
import { z } from 'zod';
import { MAX_VIRTUAL_SIZE, OperationId, RepoUuid, Uuid, VolumeId } from './values';

export const SRM_METADATA_WORKFLOW = 'srmMetadataStep';

const RecordKind = z.enum(['image', 'volume']);
const VolumeFormat = z.enum(['raw', 'qcow2']);

/** Bytes of an LV: a volume's size plus what qcow2 needs besides its data, bounded. */
const LvBytes = z.number().int().positive().max(2 * MAX_VIRTUAL_SIZE);

export const VolumeSpecInput = z.strictObject({
  volumeId: VolumeId,
  format: VolumeFormat,
  size: z.number().int().positive().max(MAX_VIRTUAL_SIZE),
  parent: z.strictObject({ volumeId: VolumeId, format: VolumeFormat }).nullable(),
  preallocate: z.boolean(),
});

/** One change only the SRM may make (activities/repository/repository.ts, MetadataCall). */
export const MetadataCallInput = z.discriminatedUnion('method', [
  // A record's value is checked against its record schema by the SRM before it is written.
  z.strictObject({ method: z.literal('createRecord'), kind: RecordKind, id: Uuid, value: z.unknown() }),
  z.strictObject({ method: z.literal('writeRecord'), kind: RecordKind, id: Uuid, value: z.unknown() }),
  z.strictObject({ method: z.literal('deleteRecord'), kind: RecordKind, id: Uuid }),
  z.strictObject({ method: z.literal('allocateVolume'), spec: VolumeSpecInput }),
  z.strictObject({ method: z.literal('removeVolume'), volumeId: VolumeId }),
  z.strictObject({ method: z.literal('extendVolume'), volumeId: VolumeId, bytes: LvBytes }),
]);

export const SrmMetadataInput = z.strictObject({
  repoUuid: RepoUuid,
  /** The operation (workflow id) whose step sends the change: it must still be running. */
  operationId: OperationId,
  call: MetadataCallInput,
  /** HMAC-SHA256 (base64url) of the canonical JSON of `{ v: 1, repoUuid, operationId, call }`. */
  signature: z.string().regex(/^[A-Za-z0-9_-]{43}$/, { error: 'must be the signature diskflow made' }),
});
export type SrmMetadataInput = z.infer<typeof SrmMetadataInput>;
