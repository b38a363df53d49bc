/**
 * diskflow on one host inside the calling process, for the benchmarks and the history recorder:
 * a scratch directory, the dev server, this host's worker, a client, localfs repositories in
 * the scratch directory; all of it stopped and removed afterwards, whatever happens.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { StorageClient } from '../client/storage-client';
import { HostWorker } from '../workers/host-worker';
import { createLogger, installTemporalLogging } from '../workers/logger';
import { DevServer, DevServerOptions, startDevServer } from '../workers/temporal-server';

export interface OneHost {
  scratch: string;
  server: DevServer;
  client: StorageClient;
  /** Initialises and connects a localfs repository in the scratch directory; resolves to its path. */
  localRepository(repoId: string): Promise<string>;
}

export interface OneHostOptions {
  hostId?: string;
  /** The dev server's options, given the scratch directory. */
  server?: (scratch: string) => DevServerOptions;
}

export async function withOneHost<T>(name: string, dir: string, run: (host: OneHost) => Promise<T>, options: OneHostOptions = {}): Promise<T> {
  const { hostId = 'bench', server: serverOptions = () => ({}) } = options;
  const scratch = mkdtempSync(join(dir, `${name}-`));
  const logger = createLogger({ level: 'warn', destination: join(scratch, 'log') });
  installTemporalLogging(logger);
  const server = await startDevServer(serverOptions(scratch));
  const worker = await HostWorker.start({ hostId, home: join(scratch, 'home'), temporal: { address: server.address, namespace: 'default' }, logger });
  const running = worker.run();
  const client = await StorageClient.connect({ address: server.address, hostId });
  const localRepository = async (repoId: string) => {
    const path = mkdtempSync(join(scratch, `${repoId}-`));
    await client.initStorageRepository('localfs-1.0', { path });
    await client.connectStorageRepository(repoId, 'localfs-1.0', { path });
    return path;
  };
  try {
    return await run({ scratch, server, client, localRepository });
  } finally {
    await client.close();
    await worker.shutdown();
    await running;
    await server.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}
