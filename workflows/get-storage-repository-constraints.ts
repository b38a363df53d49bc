import type { RepositoryConstraints } from '../api/image-status';
import { GetStorageRepositoryConstraintsInput } from '../api/operations';
import { validate, withCodes } from './failures';
import { onHost } from './routing';
import { tagOperation } from './tags';

/** getStorageRepositoryConstraints(repoId): whether the repository needs an SRM, and which host is it. */
export async function getStorageRepositoryConstraints(input: GetStorageRepositoryConstraintsInput): Promise<RepositoryConstraints> {
  const { hostId, repoId } = validate(GetStorageRepositoryConstraintsInput, input);
  tagOperation({ operation: 'getStorageRepositoryConstraints', repo: repoId, host: hostId });
  const repo = await withCodes(() => onHost(hostId).resolveRepository({ repoId }));
  return { needsSrm: repo.needsSrm, srmHostId: repo.srmHostId };
}
