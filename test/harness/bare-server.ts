/**
 * A Temporal dev server as it comes, without what `diskflow dev` adds (search attributes,
 * dynamic config): what an operator's existing cluster may look like. `dynamicConfig` turns
 * features off, as an older or stricter server has them. Stopped by the test that started it.
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { findTemporalCli } from '../../workers/temporal-server';

export interface BareServer {
  address: string;
  stop(): Promise<void>;
}

export async function startBareServer(dynamicConfig: string[] = []): Promise<BareServer> {
  const path = findTemporalCli().path;
  if (!path) throw new Error('no Temporal CLI (npm run bootstrap installs one)');
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path },
      ip: '127.0.0.1',
      extraArgs: dynamicConfig.flatMap((value) => ['--dynamic-config-value', value]),
      // Its probes are refused on purpose: keep the server's own complaints out of the test output.
      log: { format: 'json', level: 'never' },
    },
  });
  return { address: env.address, stop: () => env.teardown() };
}
