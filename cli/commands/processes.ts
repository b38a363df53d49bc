/** `diskflow dev` and `diskflow worker`: the long-running processes. Loaded only when used. */
import { Command } from 'commander';
import { DEFAULT_UI_PORT, defaultHostId, diskflowHome, temporalSettings } from '../../config/environment';
import { HostId } from '../../api/values';
import { parseInput } from '../../api/validation';
import { reportFailure } from '../output';

function port(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value <= 0 || value > 65535) throw new Error(`${name}=${process.env[name]} is not a port`);
  return value;
}

function hostIdFrom(flag: string | undefined): string {
  return parseInput(HostId, flag ?? defaultHostId(), '--host-id');
}

export function devCommand(): Command {
  return new Command('dev')
    .description('run the embedded Temporal dev server + Web UI, this host\'s worker and a default localfs repository')
    .option('--host-id <hostId>', 'this host\'s id (default: DISKFLOW_HOST_ID, else the host name)')
    .action(async (o: { hostId?: string }) => {
      try {
        const { runDev } = await import('../dev');
        await runDev({ hostId: hostIdFrom(o.hostId), home: diskflowHome(), port: port('DISKFLOW_DEV_PORT', 7233), uiPort: port('DISKFLOW_UI_PORT', DEFAULT_UI_PORT) });
      } catch (error) {
        reportFailure(error);
        // The Temporal runtime, once loaded, keeps the event loop alive: a worker that cannot start exits.
        process.exit(1);
      }
    });
}

export function workerCommand(): Command {
  return new Command('worker')
    .description('run this host\'s worker against TEMPORAL_ADDRESS')
    .option('--host-id <hostId>', 'this host\'s id (default: DISKFLOW_HOST_ID, else the host name)')
    .action(async (o: { hostId?: string }) => {
      try {
        const { runWorker } = await import('../../workers/worker-process');
        await runWorker({ hostId: hostIdFrom(o.hostId), home: diskflowHome(), temporal: temporalSettings() });
      } catch (error) {
        reportFailure(error);
        // The Temporal runtime, once loaded, keeps the event loop alive: a worker that cannot start exits.
        process.exit(1);
      }
    });
}
