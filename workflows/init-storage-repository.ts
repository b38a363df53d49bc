import { InitStorageRepositoryInput } from '../api/operations';
import { validate, withCodes } from './failures';
import { onHost } from './routing';
import { tagOperation } from './tags';

/** initStorageRepository(repoFormat, connectionParameters): write a new repository's header, on the host that reaches it. */
export async function initStorageRepository(input: InitStorageRepositoryInput): Promise<null> {
  const { hostId, ...spec } = validate(InitStorageRepositoryInput, input);
  tagOperation({ operation: 'initStorageRepository', host: hostId });
  await withCodes(() => onHost(hostId).initRepository(spec));
  return null;
}
