/**
 * All activities, built from the host's dependencies. Every host registers the same set on each
 * of its activity task queues; which queue a workflow schedules a step on decides where it runs.
 */
import type { ActivityDeps } from './deps';
import { createCheckActivities } from './fixes/check';
import { createFixActivities } from './fixes/run-fixes';
import { createHostImageActivities } from './host/images';
import { createRepositoryActivities } from './host/repositories';
import { createImportExportActivities } from './imports';
import { createCleanActivities } from './images/clean';
import { createMendActivities } from './images/mend';
import { createPersistActivities } from './operations';
import { createServingActivities } from './serving';
import { createSrmMetadataActivities } from './srm/apply-metadata';

export function createActivities(deps: ActivityDeps) {
  return {
    ...createRepositoryActivities(deps),
    ...createHostImageActivities(deps),
    ...createPersistActivities(deps),
    ...createMendActivities(deps),
    ...createCleanActivities(deps),
    ...createCheckActivities(deps),
    ...createFixActivities(deps),
    ...createSrmMetadataActivities(deps),
    ...createServingActivities(deps),
    ...createImportExportActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
export type { ActivityDeps } from './deps';
