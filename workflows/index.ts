/** Every workflow type diskflow runs: one per operation of the storage API. */
export { initStorageRepository } from './init-storage-repository';
export { connectStorageRepository, disconnectStorageRepository } from './connect-storage-repository';
export { getStorageRepositoryConstraints } from './get-storage-repository-constraints';
export { startRepositoryManager, stopRepositoryManager } from './repository-manager';
export { createVirtualDisk } from './create-virtual-disk';
export { createSnapshot } from './create-snapshot';
export { copyImage } from './copy-image';
export { importImage } from './import-image';
export { exportImage } from './export-image';
export { measureImage } from './measure-image';
export { removeImage } from './remove-image';
export { getImageStatus, listImages, listImagesPage } from './get-image-status';
export { prepareImage, teardownImage } from './prepare-image';
export { checkStorageRepository } from './check-storage-repository';
export { fixStorageRepository } from './fix-storage-repository';
export { persistedUpdate } from './persisted';
export { srmMetadataStep } from './srm-metadata-step';
