/**
 * Bundles the workflow code once at build time, so a host worker starts in a second instead of
 * bundling on every start. The replay tests bundle from source instead, so they always test
 * the code as it is.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

async function main(): Promise<void> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: require.resolve('../workflows'),
    // Registered by every worker that runs this bundle (workers/host-worker.ts): the metrics' and the requestId's.
    workflowInterceptorModules: [require.resolve('../workflows/operation-metrics'), require.resolve('../workflows/interceptors')],
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
