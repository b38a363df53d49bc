/**
 * `diskflow dev`: everything on one machine. The Temporal dev server (SQLite under
 * DISKFLOW_HOME, Web UI, search attributes registered), this host's worker, and a localfs
 * repository connected as `default`, made on first start and found again on the next.
 */
import { mkdir, readdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { StorageClient } from '../client/storage-client';
import { HostWorker } from '../workers/host-worker';
import { createLogger, installTemporalLogging } from '../workers/logger';
import { DEV_METRICS_ADDRESS, metricsSettings } from '../workers/metrics/settings';
import { onStopSignal } from '../workers/signals';
import { startDevServer } from '../workers/temporal-server';

export interface DevOptions {
  hostId: string;
  home: string;
  port: number;
  uiPort: number;
}

export const DEFAULT_REPOSITORY = 'default';

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
      .once('error', () => resolve(false))
      .once('listening', () => server.close(() => resolve(true)))
      .listen(port, '127.0.0.1');
  });
}

async function ensureDefaultRepository(client: StorageClient, worker: HostWorker, home: string): Promise<string> {
  const path = join(home, 'repositories', DEFAULT_REPOSITORY);
  if (worker.connections.list().some((c) => c.repoId === DEFAULT_REPOSITORY)) return path;
  await mkdir(path, { recursive: true });
  // An empty directory is one dev made and has not initialised yet; anything else, connect says what it is.
  if ((await readdir(path)).length === 0) await client.initStorageRepository('localfs-1.0', { path });
  await client.connectStorageRepository(DEFAULT_REPOSITORY, 'localfs-1.0', { path });
  return path;
}

export async function runDev(options: DevOptions): Promise<void> {
  const { home, hostId, port, uiPort } = options;
  // Metrics are on in dev (DISKFLOW_METRICS_ADDRESS=off turns them off).
  const metrics = await metricsSettings(process.env, DEV_METRICS_ADDRESS);
  for (const p of [port, uiPort, ...(metrics ? [metrics.port] : [])]) {
    if (!(await portFree(p))) {
      throw new Error(`port ${p} is in use: is another \`diskflow dev\` running? (DISKFLOW_DEV_PORT, DISKFLOW_UI_PORT and DISKFLOW_METRICS_ADDRESS choose others)`);
    }
  }
  await mkdir(home, { recursive: true });
  const logFile = join(home, 'logs', 'diskflow.log');
  const logger = createLogger({ destination: logFile, base: { hostId } });
  installTemporalLogging(logger, metrics ? { bindAddress: metrics.sdkBindAddress, hostId } : undefined);

  process.stdout.write('starting the Temporal dev server...\n');
  const server = await startDevServer({ port, uiPort, dbFilename: join(home, 'temporal.db') });
  let worker: HostWorker | undefined;
  let client: StorageClient | undefined;
  try {
    worker = await HostWorker.start({ hostId, home, temporal: { address: server.address, namespace: 'default' }, logger, metrics });
    client = await StorageClient.connect({ address: server.address, hostId });
    const repoPath = await ensureDefaultRepository(client, worker, home);
    const images = await client.listImages(DEFAULT_REPOSITORY);
    await client.close();
    client = undefined;

    process.stdout.write(
      [
        '',
        'diskflow is running',
        `  Temporal UI   http://localhost:${uiPort}`,
        `  Temporal      ${server.address} (${server.cli.source}${server.cli.path ? `: ${server.cli.path}` : ''})`,
        `  metrics       ${worker.metrics ? worker.metrics.url : 'off (DISKFLOW_METRICS_ADDRESS=off)'}`,
        `  host          ${hostId}, state in ${home}`,
        `  repository    ${DEFAULT_REPOSITORY} (localfs-1.0 at ${repoPath}), ${images.length} image${images.length === 1 ? '' : 's'}`,
        `  logs          ${logFile}`,
        '',
        'Try, in another terminal:',
        `  npx diskflow disk create ${DEFAULT_REPOSITORY} 1G`,
        `  npx diskflow image list ${DEFAULT_REPOSITORY}`,
        '',
        'Ctrl-C stops everything.',
        '',
      ].join('\n'),
    );
    const running = worker.run();
    onStopSignal(async () => {
      await worker!.shutdown();
    });
    await running;
  } finally {
    await client?.close().catch(() => undefined);
    await worker?.shutdown().catch(() => undefined);
    await server.stop();
    logger.flush();
  }
  process.stdout.write('diskflow stopped\n');
}
