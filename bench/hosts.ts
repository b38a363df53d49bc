/**
 * bench/hosts: the same set of copies on one posixfs-1.0 repository (a loop-mounted xfs file
 * system), run by one host and then by three hosts that all have it connected. Each host runs
 * at most DISKFLOW_MAX_CONCURRENT_STEPS (2) steps of the repository at once and each copy moves
 * at most DISKFLOW_COPY_RATE_LIMIT (64 MiB/s), standing for what one host's links and cores
 * allow; on this 2-core machine that, not the disks, is what more hosts add. Prints the time of
 * each run, their ratio against the goal (>= 2.7), the share of the copies and of all their
 * steps each host ran, and where the copies' time went (bench/breakdown.ts).
 *
 *   npm run bench:hosts [-- --copies 6] [--data-mib 256] [--dir /var/tmp]   (root: it mounts)
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { StorageClient } from '../client/storage-client';
import { HostWorker } from '../workers/host-worker';
import { createLogger, installTemporalLogging } from '../workers/logger';
import { startDevServer } from '../workers/temporal-server';
import { describeBreakdown, OperationTrace, stepShare, traceOperation } from './breakdown';
import { describeMachine, percentile } from './machine';
import { arg, removeToTheEnd } from './measure';

const MiB = 2 ** 20;
async function main(): Promise<void> {
  const copies = Number(arg('copies', '6'));
  const dataMiB = Number(arg('data-mib', '256'));
  process.env.DISKFLOW_MAX_CONCURRENT_STEPS ??= '2';
  process.env.DISKFLOW_COPY_RATE_LIMIT ??= '64M';
  const scratch = mkdtempSync(join(arg('dir', '/var/tmp'), 'bench-hosts-'));
  const file = join(scratch, 'shared.xfs');
  execFileSync('truncate', ['-s', `${Math.max(4, Math.ceil((dataMiB * (copies * 2 + 2)) / 1024) + 2)}G`, file]);
  execFileSync('mkfs.xfs', ['-q', file]);
  const params = { spec: file, vfsType: 'xfs', mountOptions: 'loop' };
  const logger = createLogger({ level: 'warn', destination: join(scratch, 'log') });
  installTemporalLogging(logger);
  const server = await startDevServer();
  const temporal = { address: server.address, namespace: 'default' };
  const hosts: HostWorker[] = [];
  const clients: StorageClient[] = [];
  const startHost = async (hostId: string, before?: (client: StorageClient) => Promise<void>) => {
    const host = await HostWorker.start({ hostId, home: join(scratch, hostId), temporal, logger });
    void host.run();
    hosts.push(host);
    const client = await StorageClient.connect({ address: server.address, hostId });
    clients.push(client);
    await before?.(client);
    await client.connectStorageRepository('shared', 'posixfs-1.0', params);
    return client;
  };
  try {
    const c = await startHost('b1', (client) => client.initStorageRepository('posixfs-1.0', params));
    const usable = async (id: string) => {
      while ((await c.getImageStatus('shared', id)).status === 'broken') await new Promise((r) => setTimeout(r, 100));
    };
    const source = await c.createVirtualDisk('shared', dataMiB * MiB);
    await usable(source);
    const { path, format } = await c.prepareImage('shared', source);
    execFileSync('qemu-io', ['-f', format, '-c', `write -P 0x42 0 ${dataMiB * MiB}`, path], { stdio: 'ignore' });
    await c.teardownImage('shared', source);

    const run = async () => {
      const start = process.hrtime.bigint();
      const requests: string[] = [];
      const ids = await Promise.all(
        Array.from({ length: copies }, async () => {
          const requestId = randomUUID();
          requests.push(`copyImage:${requestId}`);
          const id = await c.copyImage('shared', source, null, {}, { requestId });
          await c.waitForOperation(`copyImage:${requestId}`);
          return id;
        }),
      );
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const traces: OperationTrace[] = await Promise.all(requests.map((id) => traceOperation(c.temporal, id)));
      const share: Record<string, number> = {};
      for (const id of ids) {
        const status = await c.getImageStatus('shared', id);
        if (status.status === 'broken') throw new Error(`copy ${id} ended broken`);
        share[status.hostId ?? '?'] = (share[status.hostId ?? '?'] ?? 0) + 1;
        await removeToTheEnd(c, 'shared', id);
      }
      return { seconds, share, traces };
    };

    const one = await run();
    await startHost('b2');
    await startHost('b3');
    const three = await run();
    const fmt = (share: Record<string, number>) => Object.entries(share).sort().map(([h, n]) => `${h} ${n}`).join(', ');
    /** Each host's share of all the copies' steps (persist and data), and how long the copies' data steps waited and ran. */
    const steps = (traces: OperationTrace[]) => {
      const share = stepShare(traces);
      const total = Object.values(share).reduce((a, b) => a + b, 0);
      const mends = traces.flatMap((t) => t.activityRunMs.mendImage ?? []).sort((a, b) => a - b);
      const ends = traces.map((t) => t.totalMs).sort((a, b) => a - b);
      return [
        `  steps per host: ${Object.entries(share).sort().map(([h, n]) => `${h} ${n} (${((100 * n) / total).toFixed(0)}%)`).join(', ')}`,
        `  data steps (mendImage) ran p50 ${(percentile(mends, 50) / 1000).toFixed(2)} s, max ${(percentile(mends, 100) / 1000).toFixed(2)} s; copies ended (history) p50 ${(percentile(ends, 50) / 1000).toFixed(2)} s, last ${(percentile(ends, 100) / 1000).toFixed(2)} s`,
      ].join('\n');
    };
    process.stdout.write(
      [
        `bench/hosts: ${copies} copies of a ${dataMiB} MiB image on one posixfs-1.0 repository (loop-mounted xfs), each host capped at DISKFLOW_MAX_CONCURRENT_STEPS=${process.env.DISKFLOW_MAX_CONCURRENT_STEPS}, each copy at DISKFLOW_COPY_RATE_LIMIT=${process.env.DISKFLOW_COPY_RATE_LIMIT}`,
        describeMachine({ storage: file }),
        `one host:    ${one.seconds.toFixed(2)} s (copies per host: ${fmt(one.share)})`,
        steps(one.traces),
        `three hosts: ${three.seconds.toFixed(2)} s (copies per host: ${fmt(three.share)})`,
        steps(three.traces),
        `ratio one/three: ${(one.seconds / three.seconds).toFixed(2)} (goal >= 2.70: ${one.seconds / three.seconds >= 2.7 ? 'met' : 'NOT met'})`,
        describeBreakdown('where a copy goes, three hosts', three.traces, null),
        '',
      ].join('\n'),
    );
  } finally {
    for (const client of clients) {
      await client.disconnectStorageRepository('shared').catch(() => undefined);
      await client.close().catch(() => undefined);
    }
    for (const host of hosts) await host.shutdown().catch(() => undefined);
    await server.stop();
    try {
      for (const line of execFileSync('losetup', ['-j', file], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
        execFileSync('losetup', ['-d', line.split(':')[0]]);
      }
    } catch {
      // nothing attached
    }
    rmSync(scratch, { recursive: true, force: true });
  }
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
