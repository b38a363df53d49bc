import type { Fix } from '../api/image-status';
import { CheckStorageRepositoryInput } from '../api/operations';
import { validate, withCodes } from './failures';
import { onHost } from './routing';
import { tagOperation } from './tags';

/**
 * checkStorageRepository(repositoryId): go over the repository and list what is left to do:
 * clean, optimize, merge and mend fixes, each with its opaque, signed data.
 */
export async function checkStorageRepository(input: CheckStorageRepositoryInput): Promise<Fix[]> {
  const { hostId, repositoryId } = validate(CheckStorageRepositoryInput, input);
  tagOperation({ operation: 'checkStorageRepository', repo: repositoryId, host: hostId });
  return withCodes(() => onHost(hostId).checkRepository({ repoId: repositoryId }));
}
