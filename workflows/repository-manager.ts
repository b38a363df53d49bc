import { RepositoryManagerInput } from '../api/operations';
import { validate, withCodes } from './failures';
import { onHost } from './routing';
import { tagOperation } from './tags';

/**
 * startRepositoryManager(repoId): the host becomes the repository's SRM, by taking the SRM
 * lease on the repository's storage (SRM_CONFLICT naming the holder while another host holds
 * it). Taking a lease whose holder went silent waits out a lease timeout plus a margin.
 */
export async function startRepositoryManager(input: RepositoryManagerInput): Promise<null> {
  const { hostId, repoId } = validate(RepositoryManagerInput, input);
  tagOperation({ operation: 'startRepositoryManager', repo: repoId, host: hostId });
  await withCodes(() => onHost(hostId).startRepositoryManager({ repoId }));
  return null;
}

/** stopRepositoryManager(repoId): the host gives the SRM role up (stops SRM work, frees the lease). */
export async function stopRepositoryManager(input: RepositoryManagerInput): Promise<null> {
  const { hostId, repoId } = validate(RepositoryManagerInput, input);
  tagOperation({ operation: 'stopRepositoryManager', repo: repoId, host: hostId });
  await withCodes(() => onHost(hostId).stopRepositoryManager({ repoId }));
  return null;
}
