/**
 * Input and output of every workflow: the wire contract for engines that start workflows
 * directly (docs/ENGINES.md, JSON Schemas under schemas/). `hostId` names the host whose
 * repoId handles the call uses: a repoId is only meaningful on the host that connected it.
 */
import { z } from 'zod';
import { withRepositorySpec } from './formats';
import { Fix, ImageStatus, PreparedImage, RepositoryConstraints } from './image-status';
import {
  CheckOptions,
  CopyImageOptions,
  CreateSnapshotOptions,
  CreateVirtualDiskOptions,
  FixOptions,
  RemoveImageOptions,
} from './options';
import { HostId, ImageId, RepoId, Size, UserData } from './values';

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
export const RemoveImageInput = z.strictObject({
  ...onHost,
  repositoryId: RepoId,
  imageId: ImageId,
  options: RemoveImageOptions.default(RemoveImageOptions.parse({})),
});
export const ImageRefInput = z.strictObject({ ...onHost, repositoryId: RepoId, imageId: ImageId });
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
export type ImageRefInput = z.input<typeof ImageRefInput>;
export type ListImagesInput = z.input<typeof ListImagesInput>;
export type ListImagesPageInput = z.input<typeof ListImagesPageInput>;
export type ImagesPage = z.infer<typeof ImagesPage>;
export type CheckStorageRepositoryInput = z.input<typeof CheckStorageRepositoryInput>;
export type FixStorageRepositoryInput = z.input<typeof FixStorageRepositoryInput>;
export type NewImageOutput = z.infer<typeof NewImageOutput>;
export type FixStartedOutput = z.infer<typeof FixStartedOutput>;

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
  removeImage: { input: RemoveImageInput, output: NoOutput },
  getImageStatus: { input: ImageRefInput, output: ImageStatus },
  listImages: { input: ListImagesInput, output: z.array(ImageStatus) },
  listImagesPage: { input: ListImagesPageInput, output: ImagesPage },
  prepareImage: { input: ImageRefInput, output: PreparedImage },
  teardownImage: { input: ImageRefInput, output: NoOutput },
  checkStorageRepository: { input: CheckStorageRepositoryInput, output: z.array(Fix) },
  fixStorageRepository: { input: FixStorageRepositoryInput, output: FixStartedOutput },
} as const;
export type WorkflowType = keyof typeof WORKFLOW_CONTRACTS;

/** The update an operation answers once its intent is durable (Update-With-Start). */
export const PERSISTED_UPDATE = 'persisted';
