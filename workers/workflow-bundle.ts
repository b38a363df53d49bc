/**
 * What goes into the workflow bundle besides the workflows, the same wherever it is made: the
 * prebuilt bundle (scripts/bundle-workflows.ts), a host worker bundling from source, the replay
 * tests. Paths without an extension: the bundler finds the .js of a build and the .ts of the source.
 */
import { join } from 'node:path';

const WORKFLOWS = join(__dirname, '..', 'workflows');

export const WORKFLOWS_PATH = WORKFLOWS;
/** Registered by every worker that runs the bundle: the metrics' (how each operation ended) and the requestId's (the input it was started with). */
export const WORKFLOW_INTERCEPTOR_MODULES = [join(WORKFLOWS, 'operation-metrics'), join(WORKFLOWS, 'interceptors')];
/** Loaded once per workflow thread and shared by every workflow run (workflows/shared-modules.ts). */
export const PRELOADED_WORKFLOW_MODULES = [join(WORKFLOWS, 'shared-modules')];
