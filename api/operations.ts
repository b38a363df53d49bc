/**
 * Input and output of every workflow: the wire contract for engines that start workflows
 * directly (docs/ENGINES.md, JSON Schemas under schemas/). `hostId` names the host whose
 * repoId handles the call uses: a repoId is only meaningful on the host that connected it.
 */
import { z } from 'zod';
import { canonicalJson } from './canonical-json';
import { jsonShapeIssue } from './validation';
import { withRepositorySpec } from './formats';
import { Fix, ImageStatus, PreparedImage, RepositoryConstraints } from './image-status';
import {
  CheckOptions,
  CopyImageOptions,
  CreateSnapshotOptions,
  CreateVirtualDiskOptions,
  ExportImageOptions,
  FixOptions,
  ImportImageOptions,
  MeasureOptions,
  RemoveImageOptions,
  ResizeVirtualDiskOptions,
  ServeBackupOptions,
  PrepareOptions,
  TeardownOptions,
} from './options';
import { AbsolutePath, HostId, ImageId, ImportSource, RepoId, Size, UserData } from './values';

const onHost = { hostId: HostId };

export const InitStorageRepositoryInput = withRepositorySpec(onHost);
export const ConnectStorageRepositoryInput = withRepositorySpec({ ...onHost, repoId: RepoId });
export const DisconnectStorageRepositoryInput = z.strictObject({ ...onHost, repoId: RepoId });
export const GetStorageRepositoryConstraintsInput = z.strictObject({ ...onHost, repoId: RepoId });
export const RepositoryManagerInput = z.strictObject({ ...onHost, repoId: RepoId });

export const CreateVirtualDiskInput = z.strictObject({
  ...onHost,
  targetRepoId: RepoId,
  size: Size,
  baseSnapshotId: ImageId.nullable().default(null),
  userData: UserData.default({}),
  options: CreateVirtualDiskOptions.default(CreateVirtualDiskOptions.parse({})),
});
export const CreateSnapshotInput = z.strictObject({
  ...onHost,
  targetRepoId: RepoId,
  baseVirtualDiskId: ImageId,
  userData: UserData.default({}),
  options: CreateSnapshotOptions.default(CreateSnapshotOptions.parse({})),
});
export const CopyImageInput = z.strictObject({
  ...onHost,
  targetRepoId: RepoId,
  imageId: ImageId,
  baseImageId: ImageId.nullable().default(null),
  userData: UserData.default({}),
  options: CopyImageOptions.default(CopyImageOptions.parse({})),
});
export const ImportImageInput = z.strictObject({
  ...onHost,
  targetRepoId: RepoId,
  source: ImportSource,
  userData: UserData.default({}),
  options: ImportImageOptions.default(ImportImageOptions.parse({})),
});
export const ExportImageInput = z.strictObject({
  ...onHost,
  repositoryId: RepoId,
  imageId: ImageId,
  /** Written on hostId: a new file (an existing one is refused), made under a temporary name and renamed when complete. */
  path: AbsolutePath,
  options: ExportImageOptions.default(ExportImageOptions.parse({})),
});
export const MeasureImageInput = z.strictObject({
  ...onHost,
  targetRepoId: RepoId,
  /** An image (found as copyImage finds it) or an import source. */
  source: z.union([z.strictObject({ imageId: ImageId }), z.strictObject({ location: ImportSource })]),
  options: MeasureOptions.default(MeasureOptions.parse({})),
});
export const Measurement = z.object({
  /** Bytes the new volume takes with the data it receives (qemu-img measure). */
  requiredBytes: z.number().int().nonnegative(),
  /** Bytes it takes once every block is written. */
  fullyAllocatedBytes: z.number().int().nonnegative(),
  freeBytes: z.number().int().nonnegative(),
  fits: z.boolean(),
  virtualSize: z.number().int().positive(),
  sourceFormat: z.string(),
  targetFormat: z.enum(['raw', 'qcow2']),
});
export const ExportOutput = z.object({ path: AbsolutePath, bytes: z.number().int().nonnegative() });
export const OperationStartedOutput = z.object({ operationId: z.string() });
export const RemoveImageInput = z.strictObject({
  ...onHost,
  repositoryId: RepoId,
  imageId: ImageId,
  options: RemoveImageOptions.default(RemoveImageOptions.parse({})),
});
export const ResizeVirtualDiskInput = z.strictObject({
  ...onHost,
  repositoryId: RepoId,
  imageId: ImageId,
  newSize: Size,
  options: ResizeVirtualDiskOptions.default(ResizeVirtualDiskOptions.parse({})),
});
export const ServeBackupInput = z.strictObject({
  ...onHost,
  repositoryId: RepoId,
  imageId: ImageId,
  /** A copy of the image made earlier: only what changed since is marked in the exported dirty bitmap. */
  since: ImageId.nullable().default(null),
  options: ServeBackupOptions.default(ServeBackupOptions.parse({})),
});
/** Where the backup export is reached (the persisted update's answer, and the operation's result). */
export const ServeBackupOutput = z.object({
  operationId: z.string(),
  /** nbd+unix URI of the read-only export, on hostId. */
  address: z.string(),
  exportName: z.string(),
  socket: z.string(),
  /** The dirty bitmap of the changes since `since` (`nbdinfo --map=qemu:dirty-bitmap:NAME`), or null. */
  bitmap: z.string().nullable(),
  hostId: HostId,
});
export const ImageRefInput = z.strictObject({ ...onHost, repositoryId: RepoId, imageId: ImageId });
export const PrepareImageInput = z.strictObject({
  ...onHost,
  repositoryId: RepoId,
  imageId: ImageId,
  options: PrepareOptions.default({}),
});
export const TeardownImageInput = z.strictObject({
  ...onHost,
  repositoryId: RepoId,
  imageId: ImageId,
  options: TeardownOptions.default({}),
});
export const ListImagesInput = z.strictObject({ ...onHost, repositoryId: RepoId });
/** Where a page of a listing starts: the `next` of the page before it (opaque to callers). */
export const PageCursor = z
  .string({ error: 'must be the `next` of an earlier page' })
  .max(128)
  .regex(/^[0-9:.TZ+-]{1,40}\/[0-9a-f-]{36}$/, { error: 'must be the `next` of an earlier page' });
export const ListImagesPageInput = z.strictObject({ ...onHost, repositoryId: RepoId, after: PageCursor.nullable().default(null) });
/** A page of a listing: as many images as fit in one answer, and where the next page starts (null: none). */
export const ImagesPage = z.object({ images: z.array(ImageStatus), next: PageCursor.nullable() });
export const CheckStorageRepositoryInput = z.strictObject({
  ...onHost,
  repositoryId: RepoId,
  options: CheckOptions.default({}),
});
export const FixStorageRepositoryInput = z.strictObject({
  ...onHost,
  repositoryId: RepoId,
  fix: Fix,
  options: FixOptions.default({}),
});

export const NewImageOutput = z.object({ imageId: ImageId });
export const FixStartedOutput = z.object({ operationId: z.string() });
export const NoOutput = z.null();

export type InitStorageRepositoryInput = z.input<typeof InitStorageRepositoryInput>;
export type ConnectStorageRepositoryInput = z.input<typeof ConnectStorageRepositoryInput>;
export type DisconnectStorageRepositoryInput = z.input<typeof DisconnectStorageRepositoryInput>;
export type GetStorageRepositoryConstraintsInput = z.input<typeof GetStorageRepositoryConstraintsInput>;
export type RepositoryManagerInput = z.input<typeof RepositoryManagerInput>;
export type CreateVirtualDiskInput = z.input<typeof CreateVirtualDiskInput>;
export type CreateSnapshotInput = z.input<typeof CreateSnapshotInput>;
export type CopyImageInput = z.input<typeof CopyImageInput>;
export type RemoveImageInput = z.input<typeof RemoveImageInput>;
export type ResizeVirtualDiskInput = z.input<typeof ResizeVirtualDiskInput>;
export type ServeBackupInput = z.input<typeof ServeBackupInput>;
export type ServeBackupOutput = z.infer<typeof ServeBackupOutput>;
export type ImportImageInput = z.input<typeof ImportImageInput>;
export type ExportImageInput = z.input<typeof ExportImageInput>;
export type MeasureImageInput = z.input<typeof MeasureImageInput>;
export type Measurement = z.infer<typeof Measurement>;
export type ExportOutput = z.infer<typeof ExportOutput>;
export type OperationStartedOutput = z.infer<typeof OperationStartedOutput>;
export type ImageRefInput = z.input<typeof ImageRefInput>;
export type PrepareImageInput = z.input<typeof PrepareImageInput>;
export type TeardownImageInput = z.input<typeof TeardownImageInput>;
export type ListImagesInput = z.input<typeof ListImagesInput>;
export type ListImagesPageInput = z.input<typeof ListImagesPageInput>;
export type ImagesPage = z.infer<typeof ImagesPage>;
export type CheckStorageRepositoryInput = z.input<typeof CheckStorageRepositoryInput>;
export type FixStorageRepositoryInput = z.input<typeof FixStorageRepositoryInput>;
export type NewImageOutput = z.infer<typeof NewImageOutput>;
export type FixStartedOutput = z.infer<typeof FixStartedOutput>;

/**
 * What each call does and when it is refused with IMAGE_IN_USE or IMAGE_BUSY (API.md, "A VM's
 * writes are never lost"): the description of its JSON Schema, for engines in other languages.
 */
export const CALL_DESCRIPTIONS = {
  createVirtualDisk:
    'Persists a new virtual disk (blank, or a thin overlay on baseSnapshotId) and answers its id once durable; unless options.autoFix is false, the fix that makes it usable runs after. ' +
    'Never IMAGE_IN_USE (a snapshot is never written, so disks are made on it while it is prepared). A base snapshot whose copy into the target repository is still running is waited for, not refused.',
  createSnapshot:
    'Freezes the disk\'s current content as a new snapshot (usable at once) and moves the disk onto an overlay of it; answers the snapshot\'s id once durable. ' +
    'IMAGE_IN_USE while the disk is prepared for a VM on any host (the message names the hosts), unless it is served (prepareImage with serve): then the snapshot is taken live in the daemon the VM writes through. IMAGE_BUSY while another operation works on the disk or a copy is reading it (named), or the disk has work pending.',
  copyImage:
    'Persists a copy of imageId in targetRepoId (only what differs from baseImageId, a snapshot there, when given) and answers its id once durable; the data moves by a fix. A copy is always of one instant of its source. ' +
    'IMAGE_IN_USE while the source is a virtual disk prepared for a VM (named hosts), unless it is served (prepareImage with serve): then the copy is a live backup of one instant, in the daemon serving it. options.bandwidth caps the bytes per second it moves. IMAGE_BUSY while another operation works on the source disk (named), or the source or base is not complete yet.',
  importImage:
    'Probes source (a file on hostId, or an http(s) URL answering byte ranges) without following any backing or data file named inside it (INVALID_ARGUMENT for a source that names one), measures the room its data needs in targetRepoId (NO_SPACE before anything is written), persists the new image, broken, and answers its id once durable; the data moves by a fix on hostId, resumably. With options.sha256 the source is verified before the image becomes usable.',
  exportImage:
    'Copies one instant of the image into a new file at path on hostId (qcow2 or raw, optionally compressed) and answers the operation id once the image is held for the export; the operation ends when the file is complete. ' +
    'IMAGE_IN_USE while the image is a virtual disk prepared for a VM (named hosts). IMAGE_BUSY while another operation changes it.',
  measureImage: 'How many bytes a copy of an image, or an import of a source, needs in targetRepoId (qemu-img measure), and whether it fits now.',
  removeImage:
    'Marks the image removed (logical and immediate) and stops the operation working on it; a clean fix reclaims its volumes once no other image needs them. IMAGE_IN_USE while it is prepared for a VM on any host (named).',
  resizeVirtualDisk:
    'Grows a virtual disk to newSize bytes: the new size is persisted first, then a fix grows its top volume (on clvm the SRM extends the LV). A size smaller than the disk\'s is INVALID_ARGUMENT (disks only grow), the same size does nothing. ' +
    'IMAGE_IN_USE while the disk is prepared for a VM, unless it is served by diskflow as vhost-user-blk or fuse: then it grows live (QMP block_resize) and its VM sees the new size; served over NBD it is refused, as an NBD client learns the size only when it connects. IMAGE_BUSY while another operation works on the disk or a copy is reading it.',
  serveBackup:
    'Exposes a snapshot or a stopped virtual disk read-only over NBD on hostId (pull-mode backup) and answers its address once clients may connect; with since (an earlier copy of the image), the changes since that copy are the dirty bitmap `qemu:dirty-bitmap:<bitmap>` of the export. ' +
    'The operation runs until the stopExport signal, a cancel, or options.idleTimeoutSeconds without use. While it runs, the image is neither prepared for a VM (IMAGE_BUSY) nor removed (IMAGE_IN_USE). ' +
    'IMAGE_IN_USE for a disk prepared or served for a VM (export a snapshot of it). INVALID_ARGUMENT when the changes since that copy are not known (the message says why).',
  getImageStatus: 'The image\'s last persisted status, stage, progress and error, read from the repository.',
  listImages: 'Every image of the repository that is not removed, oldest first.',
  listImagesPage: 'The images after `after` (oldest first) that fit in one answer, and where the next page starts.',
  prepareImage:
    'Makes the image usable by a VM on hostId and answers how to open it (a snapshot read-only: readOnly true): the top volume\'s path, or with options.serve (nbd, vhost-user-blk, fuse) the URI, socket or file of a qemu-storage-daemon that serves the chain and outlives the worker, through which snapshot, copy, merge and optimize then run live. Preparing a virtual disk lets a writer at it, so its content epoch moves in the same step: no copy that overlapped it can complete. ' +
    'IMAGE_BUSY while an operation is changing the image or a copy is reading it, or it is not complete yet (the message names the operation: cancel it or wait). Never IMAGE_IN_USE: an image may be prepared on several hosts.',
  teardownImage:
    'The VM on hostId no longer uses the image. options.fencedHostId releases instead the mark of a host the engine knows is fenced (dead, powered off, cut from the storage), from any host: nothing releases a host\'s marks implicitly. ' +
    'IMAGE_BUSY while a live snapshot, merge or optimize is changing the block graph of the daemon serving the disk (it ends first, or cancel it).',
  checkStorageRepository: 'Scans the repository and answers the fixes it needs (clean, optimize, merge, mend), the most urgent first; fixes of images prepared for a VM are listed and refused until teardown.',
  fixStorageRepository:
    'Accepts a fix from checkStorageRepository (FIX_INVALID if altered, forged or stale, or if it already ran to completion: check again) and answers its operation id; the fix then runs; the same fix asked again while it runs answers the same operation id. ' +
    'IMAGE_IN_USE for an optimize or merge of an image prepared for a VM (named hosts), unless it is served: then it runs live in the daemon serving it. options.bandwidth caps the bytes per second a fix moves. IMAGE_BUSY while another operation works on the image (named).',
} as const;

/**
 * Every workflow type with its input and output schema: the source of the JSON Schemas that
 * engines in other languages use, and of the client's typed calls.
 */
export const WORKFLOW_CONTRACTS = {
  initStorageRepository: { input: InitStorageRepositoryInput, output: NoOutput },
  connectStorageRepository: { input: ConnectStorageRepositoryInput, output: NoOutput },
  disconnectStorageRepository: { input: DisconnectStorageRepositoryInput, output: NoOutput },
  getStorageRepositoryConstraints: { input: GetStorageRepositoryConstraintsInput, output: RepositoryConstraints },
  startRepositoryManager: { input: RepositoryManagerInput, output: NoOutput },
  stopRepositoryManager: { input: RepositoryManagerInput, output: NoOutput },
  createVirtualDisk: { input: CreateVirtualDiskInput, output: NewImageOutput },
  createSnapshot: { input: CreateSnapshotInput, output: NewImageOutput },
  copyImage: { input: CopyImageInput, output: NewImageOutput },
  importImage: { input: ImportImageInput, output: NewImageOutput },
  exportImage: { input: ExportImageInput, output: OperationStartedOutput },
  measureImage: { input: MeasureImageInput, output: Measurement },
  removeImage: { input: RemoveImageInput, output: NoOutput },
  resizeVirtualDisk: { input: ResizeVirtualDiskInput, output: NoOutput },
  serveBackup: { input: ServeBackupInput, output: ServeBackupOutput },
  getImageStatus: { input: ImageRefInput, output: ImageStatus },
  listImages: { input: ListImagesInput, output: z.array(ImageStatus) },
  listImagesPage: { input: ListImagesPageInput, output: ImagesPage },
  prepareImage: { input: PrepareImageInput, output: PreparedImage },
  teardownImage: { input: TeardownImageInput, output: NoOutput },
  checkStorageRepository: { input: CheckStorageRepositoryInput, output: z.array(Fix) },
  fixStorageRepository: { input: FixStorageRepositoryInput, output: FixStartedOutput },
} as const;
export type WorkflowType = keyof typeof WORKFLOW_CONTRACTS;

/** The update an operation answers once its intent is durable (Update-With-Start). */
export const PERSISTED_UPDATE = 'persisted';

/**
 * What makes two calls of an operation the same request: its input as validated (defaults
 * filled in), in canonical JSON; for a fix, the fix's data stands for the fix (its description
 * and byte count are a later check's words for the same plan). A requestId (the workflow id)
 * names one request: the same id with another identity is refused with INVALID_ARGUMENT.
 * Null when `input` is not a valid input of `type`.
 */
export function requestIdentity(type: WorkflowType, input: unknown): string | null {
  if (jsonShapeIssue(input)) return null;
  const parsed = WORKFLOW_CONTRACTS[type].input.safeParse(input);
  if (!parsed.success) return null;
  const value = type === 'fixStorageRepository' ? { ...(parsed.data as FixStorageRepositoryRequest), fix: { data: (parsed.data as FixStorageRepositoryRequest).fix.data } } : parsed.data;
  return canonicalJson(value);
}
type FixStorageRepositoryRequest = z.output<typeof FixStorageRepositoryInput>;
