/** diskflow's engine-facing API: `import { StorageClient } from 'diskflow/client'`. */
export { StorageClient } from './storage-client';
export type { StorageClientOptions } from './storage-client';
export { DiskflowError, ERROR_CODES } from '../api/errors';
export type { ErrorCode } from '../api/errors';
export type { ImageStatus, Fix, PreparedImage, RepositoryConstraints } from '../api/image-status';
export type { RepoFormat } from '../api/formats';
export type { StalledOperation } from './stalled-operations';
