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
    logger: { trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error, log() {} },
  });
  await writeFile(join(__dirname, '..', 'workflow-bundle.js'), code);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
