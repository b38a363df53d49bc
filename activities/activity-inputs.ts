/**
 * The input schema of every activity, applied in one place (activity-defaults.ts) before the
 * activity runs: a step refuses with INVALID_ARGUMENT what could not have come from diskflow's
 * own workflows (anyone who can run a worker in the namespace can schedule activities on
 * diskflow's task queues, and what workflows pass on comes partly from storage). The types the
 * activities declare and these schemas are kept in step at compile time (ActivityInputsMatch):
 * every activity has a schema, the schema's output is what the activity takes, and no field of
 * its input goes unchecked.
 */
import { z } from 'zod';
import { withRepositorySpec } from '../api/formats';
import { PageCursor } from '../api/operations';
import { SrmMetadataInput } from '../api/srm-metadata';
import { AbsolutePath, HostId, ImageId, ImageKind, ImportSource, MAX_VIRTUAL_SIZE, OperationId, RepoId, RepoUuid, ServeMode, Sha256, Size, Strategy, UserData, VolumeId } from '../api/values';
import { MAX_IDLE_SECONDS } from '../api/options';
import { SourceFormat } from './images/records';
import { FixPlanSchema, FixData, StrayName } from './fixes/fix-data';
import type { Activities } from './index';
import type { WorkflowLocalActivities } from './workflow-local';

const Repo = z.strictObject({ repoId: RepoId });
const ImageOnHost = z.strictObject({ repoId: RepoId, imageId: ImageId });
const ImageStep = z.strictObject({ repoUuid: RepoUuid, imageId: ImageId, operationId: OperationId });
/** The call's options, of which the lookup reads its two (the rest are the call's own). */
const Lookup = z.looseObject({ participatingRepositories: z.array(RepoId).optional(), imageHints: z.record(ImageId, RepoId).optional() });
const Count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

const SourceFacts = z.strictObject({
  repoUuid: RepoUuid,
  imageId: ImageId,
  kind: ImageKind,
  size: z.number().int().positive().max(MAX_VIRTUAL_SIZE),
  userData: UserData,
  strategy: Strategy,
  volumeId: VolumeId,
  contentEpoch: Count,
  servedOn: HostId.nullable().optional(),
});
const Bandwidth = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

const PersistRequest = z.discriminatedUnion('op', [
  z.strictObject({
    op: z.literal('create-virtual-disk'),
    imageId: ImageId,
    operationId: OperationId,
    size: Size,
    userData: UserData,
    strategy: Strategy,
    autoFix: z.boolean(),
    baseSnapshotId: ImageId.nullable(),
    lookup: Lookup,
  }),
  z.strictObject({ op: z.literal('create-snapshot'), diskId: ImageId, snapshotId: ImageId, operationId: OperationId, userData: UserData, autoFix: z.boolean() }),
  z.strictObject({
    op: z.literal('copy-image'),
    newImageId: ImageId,
    sourceId: ImageId,
    baseImageId: ImageId.nullable().optional(),
    operationId: OperationId,
    userData: UserData,
    strategy: Strategy,
    kind: ImageKind.optional(),
    autoFix: z.boolean(),
    lookup: Lookup,
    bandwidth: Bandwidth.optional(),
  }),
  z.strictObject({
    op: z.literal('import-image'),
    newImageId: ImageId,
    source: ImportSource,
    format: z.enum(['auto', 'raw', 'qcow2', 'vmdk', 'vhdx', 'vdi']),
    sha256: Sha256.optional(),
    operationId: OperationId,
    userData: UserData,
    strategy: Strategy,
    kind: ImageKind,
    autoFix: z.boolean(),
    bandwidth: Bandwidth.optional(),
  }),
  z.strictObject({ op: z.literal('mark-removed'), imageId: ImageId, operationId: OperationId }),
  z.strictObject({ op: z.literal('accept-fix'), data: FixData, operationId: OperationId, bandwidth: Bandwidth.optional() }),
  z.strictObject({ op: z.literal('resize-disk'), imageId: ImageId, newSize: Size, operationId: OperationId }),
  z.strictObject({ op: z.literal('serve-backup'), imageId: ImageId, operationId: OperationId }),
]);

const PersistStep = z.union([
  z.strictObject({
    op: z.literal('create-virtual-disk'),
    input: z.strictObject({
      imageId: ImageId,
      operationId: OperationId,
      hostId: HostId,
      size: Size,
      userData: UserData,
      strategy: Strategy,
      autoFix: z.boolean(),
      base: z.strictObject({ snapshotId: ImageId, copyFrom: SourceFacts.nullable() }).nullable(),
    }),
  }),
  z.strictObject({
    op: z.literal('create-snapshot'),
    input: z.strictObject({ diskId: ImageId, snapshotId: ImageId, operationId: OperationId, hostId: HostId, userData: UserData, autoFix: z.boolean() }),
  }),
  z.strictObject({
    op: z.literal('copy-image'),
    input: z.strictObject({
      imageId: ImageId,
      operationId: OperationId,
      operationType: z.string().min(1).max(64),
      hostId: HostId,
      source: SourceFacts,
      kind: ImageKind,
      userData: UserData,
      strategy: Strategy,
      autoFix: z.boolean(),
      base: z.strictObject({ imageId: ImageId, volumeId: VolumeId }).nullable().optional(),
      bandwidth: Bandwidth.nullable().optional(),
      requiredBytes: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).nullable().optional(),
    }),
  }),
  z.strictObject({
    op: z.literal('import-image'),
    input: z.strictObject({
      imageId: ImageId,
      operationId: OperationId,
      hostId: HostId,
      size: z.number().int().positive().max(MAX_VIRTUAL_SIZE),
      kind: ImageKind,
      userData: UserData,
      strategy: Strategy,
      autoFix: z.boolean(),
      job: z.strictObject({ location: ImportSource, format: SourceFormat, identity: z.string().max(1024), sha256: Sha256.nullable(), bandwidth: Bandwidth.nullable() }),
    }),
  }),
  z.strictObject({ op: z.literal('mark-removed'), input: z.strictObject({ imageId: ImageId, operationId: OperationId }) }),
  z.strictObject({ op: z.literal('accept-fix'), input: z.strictObject({ plan: FixPlanSchema, operationId: OperationId, bandwidth: Bandwidth.optional() }) }),
  z.strictObject({ op: z.literal('resize-disk'), input: z.strictObject({ imageId: ImageId, newSize: Size, operationId: OperationId, hostId: HostId }) }),
  z.strictObject({ op: z.literal('serve-backup'), input: z.strictObject({ imageId: ImageId, operationId: OperationId, hostId: HostId }) }),
  // As workflows started before steps carried `input` send them (operations/index.ts reads both).
  z.strictObject({ op: z.literal('mark-removed'), imageId: ImageId, operationId: OperationId }),
  z.strictObject({ op: z.literal('accept-fix'), plan: FixPlanSchema, operationId: OperationId }),
]);

/** Why work stopped, as recorded on the image (a failure's message: long, but bounded). */
const Reason = z.string().max(64 * 1024);

export const ACTIVITY_INPUTS = {
  // Host steps (activities/host/)
  initRepository: withRepositorySpec({}),
  connectRepository: withRepositorySpec({ repoId: RepoId }),
  disconnectRepository: Repo,
  resolveRepository: Repo,
  startRepositoryManager: Repo,
  stopRepositoryManager: Repo,
  requireConnected: z.strictObject({ repoUuid: RepoUuid, repoId: RepoId }),
  resolveAndPersist: z.strictObject({ repoId: RepoId, request: PersistRequest }),
  imageStatus: ImageOnHost,
  listImageStatuses: Repo,
  listImageStatusPage: z.strictObject({ repoId: RepoId, after: PageCursor.nullable() }),
  prepareImage: ImageOnHost.extend({ serve: ServeMode.optional() }),
  activateImage: ImageOnHost.extend({ serve: ServeMode.optional() }),
  markPrepared: z.strictObject({
    repoUuid: RepoUuid,
    imageId: ImageId,
    onHost: HostId,
    prepared: z.boolean(),
    serve: z.strictObject({ mode: ServeMode, address: z.string().min(1).max(4096) }).nullable().optional(),
  }),
  teardownImage: ImageOnHost.extend({ fencedHostId: HostId.optional() }),
  checkRepository: Repo,
  // Repository steps
  persist: z.strictObject({ repoUuid: RepoUuid, step: PersistStep }),
  mendImage: ImageStep,
  recordStoppedWork: ImageStep.extend({ reason: Reason, keepClaim: z.boolean().optional() }),
  cleanRemovedImage: ImageStep,
  cleanOrphans: z.strictObject({ repoUuid: RepoUuid, volumes: z.array(VolumeId), strays: z.array(StrayName) }),
  optimizeImage: ImageStep.extend({ bandwidth: Bandwidth.optional() }),
  mergeVolumes: ImageStep.extend({ upper: VolumeId, lower: VolumeId, bandwidth: Bandwidth.optional() }),
  // Served disks
  liveSnapshot: ImageStep,
  serveBackupExport: ImageStep.extend({ since: ImageId.nullable(), idleTimeoutSeconds: z.number().int().positive().max(MAX_IDLE_SECONDS) }),
  endBackupExport: ImageStep,
  // Getting images in and out (activities/imports/)
  measureImage: z.strictObject({
    repoId: RepoId,
    source: z.union([z.strictObject({ imageId: ImageId }), z.strictObject({ location: ImportSource })]),
    strategy: Strategy,
    format: z.enum(['auto', 'raw', 'qcow2', 'vmdk', 'vhdx', 'vdi']),
    lookup: Lookup,
  }),
  holdForExport: z.strictObject({ repoId: RepoId, imageId: ImageId, operationId: OperationId }),
  releaseExport: z.strictObject({ repoId: RepoId, imageId: ImageId, operationId: OperationId }),
  exportImage: z.strictObject({ repoId: RepoId, imageId: ImageId, operationId: OperationId, path: AbsolutePath, format: z.enum(['qcow2', 'raw']), compress: z.boolean() }),
  // The SRM
  applyMetadataOnSrm: SrmMetadataInput,
  // Local activities of workflows
  checkMetadataCall: SrmMetadataInput,
  resolveAndPersistHere: z.strictObject({ hostId: HostId, repoId: RepoId, request: PersistRequest }),
} satisfies Record<keyof Activities | keyof WorkflowLocalActivities, z.ZodType>;

type AllActivities = Activities & WorkflowLocalActivities;

/** Optional keys made required-or-undefined, at every level: what JSON can tell apart. */
type Loose<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]-?: Loose<T[K]> | undefined } : T;
type Input<K extends keyof AllActivities> = Parameters<AllActivities[K]>[0];
type Output<K extends keyof AllActivities> = z.output<(typeof ACTIVITY_INPUTS)[K]>;
type Check<K extends keyof AllActivities> = [Loose<Output<K>>] extends [Loose<Input<K>>]
  ? [Exclude<keyof Input<K>, keyof Output<K>>] extends [never]
    ? [Exclude<keyof Output<K>, keyof Input<K>>] extends [never]
      ? true
      : { unknownToTheActivity: Exclude<keyof Output<K>, keyof Input<K>> }
    : { unchecked: Exclude<keyof Input<K>, keyof Output<K>> }
  : { mismatch: K };

/** Fails to compile, naming the activity, when a schema and its activity's input drift apart. */
export type ActivityInputsMatch = { [K in keyof AllActivities]: Check<K> };
const inputsMatch: { [K in keyof AllActivities]: true } = {} as ActivityInputsMatch;
void inputsMatch;
