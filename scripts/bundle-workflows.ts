/**
 * Bundles the workflow code once at build time, so a host worker starts in a second instead of
 * bundling on every start. The replay tests bundle from source instead, so they always test
 * the code as it is.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { PRELOADED_WORKFLOW_MODULES, WORKFLOW_INTERCEPTOR_MODULES, WORKFLOWS_PATH } from '../workers/workflow-bundle';

async function main(): Promise<void> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    workflowInterceptorModules: WORKFLOW_INTERCEPTOR_MODULES,
    preloadModules: PRELOADED_WORKFLOW_MODULES,
    logger: { trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error, log() {} },
    // A line-only source map without the sources: the SDK needs one inline, but the full one is
    // two thirds of the bundle, held by every worker's workflow isolate (~25 MiB resident).
    webpackConfigHook: (config) => ({ ...config, devtool: 'inline-nosources-cheap-module-source-map' }),
  });
  await writeFile(join(__dirname, '..', 'workflow-bundle.js'), code);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
