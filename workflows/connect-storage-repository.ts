import { ConnectStorageRepositoryInput, DisconnectStorageRepositoryInput } from '../api/operations';
import { validate, withCodes } from './failures';
import { onHost } from './routing';
import { tagOperation } from './tags';

/** connectStorageRepository(repoId, repoFormat, connectionParameters): the host reaches the repository and serves it under repoId. */
export async function connectStorageRepository(input: ConnectStorageRepositoryInput): Promise<null> {
  const request = validate(ConnectStorageRepositoryInput, input);
  tagOperation({ operation: 'connectStorageRepository', repo: request.repoId, host: request.hostId });
  const { hostId, ...connection } = request;
  await withCodes(() => onHost(hostId).connectRepository(connection));
  return null;
}

/** disconnectStorageRepository(repoId): the host stops serving the repository and releases the handle. */
export async function disconnectStorageRepository(input: DisconnectStorageRepositoryInput): Promise<null> {
  const { hostId, repoId } = validate(DisconnectStorageRepositoryInput, input);
  tagOperation({ operation: 'disconnectStorageRepository', repo: repoId, host: hostId });
  await withCodes(() => onHost(hostId).disconnectRepository({ repoId }));
  return null;
}
