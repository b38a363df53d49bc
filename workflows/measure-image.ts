import { Measurement, MeasureImageInput } from '../api/operations';
import { validate, withCodes } from './failures';
import { onHost } from './routing';
import { tagOperation } from './tags';

/** measureImage(targetRepoId, source, options): the room a copy or an import needs, and whether it fits now. */
export async function measureImage(input: MeasureImageInput): Promise<Measurement> {
  const request = validate(MeasureImageInput, input);
  tagOperation({ operation: 'measureImage', repo: request.targetRepoId, host: request.hostId });
  const { strategy, format, ...lookup } = request.options;
  return withCodes(() => onHost(request.hostId).measureImage({ repoId: request.targetRepoId, source: request.source, strategy, format, lookup }));
}
