/**
 * bench/create-latency: how long a createVirtualDisk call takes to return (it returns once the
 * new disk is persisted), and how many creates per second a host sustains, on the embedded dev
 * server with SQLite persistence, as `diskflow dev` runs it. Every create also runs its autoFix.
 *
 *   npm run build && node dist/bench/create-latency.js [--calls 300] [--burst 200]
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { WithStartWorkflowOperation } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { describeMachine, percentile } from './machine';
import { arg } from './measure';
import { withOneHost } from './one-host';

async function timed(call: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await call();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function summary(label: string, ms: number[]): string {
  const sorted = [...ms].sort((a, b) => a - b);
  return `${label}: p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms, max ${sorted[sorted.length - 1].toFixed(1)} ms (${ms.length} calls)`;
}

function ratio(a: number[], b: number[]): string {
  const p50 = (ms: number[]) => percentile([...ms].sort((x, y) => x - y), 50);
  return (p50(a) / p50(b)).toFixed(2);
}

async function main(): Promise<void> {
  const calls = Number(arg('calls', '300'));
  const burst = Number(arg('burst', '200'));
  const concurrency = Number(arg('concurrency', '8'));
  const onDisk = (scratch: string) => (process.env.BENCH_MEMORY ? {} : { dbFilename: join(scratch, 'temporal.db') });
  await withOneHost('bench-create', tmpdir(), async ({ server, client, localRepository }) => {
    await localRepository('bench');
    const create = () => client.createVirtualDisk('bench', 2 ** 30);

    // The same shape on bare Temporal, polled by workers in this process like diskflow's host worker.
    const connection = await NativeConnection.connect({ address: server.address });
    const baselineWorkers = await Promise.all([
      Worker.create({ connection, taskQueue: 'baseline.workflows', workflowsPath: require.resolve('./baseline-workflow') }),
      Worker.create({ connection, taskQueue: 'baseline.host', activities: { noop: async () => undefined } }),
      Worker.create({ connection, taskQueue: 'baseline.repo', activities: { noop: async () => undefined } }),
    ]);
    const baselineRunning = Promise.all(baselineWorkers.map((w) => w.run()));
    const baseline = () =>
      client.temporal.workflow.executeUpdateWithStart('persisted', {
        startWorkflowOperation: new WithStartWorkflowOperation('baselineCreate', {
          taskQueue: 'baseline.workflows',
          workflowId: `baseline-${randomUUID()}`,
          workflowIdConflictPolicy: 'USE_EXISTING',
        }),
      });

    for (let i = 0; i < 20; i++) {
      await create(); // warm-up: workers, sticky caches, connections
      await baseline();
    }

    const sequential: number[] = [];
    const sequentialBaseline: number[] = [];
    const spaced: number[] = [];
    const spacedBaseline: number[] = [];
    for (let i = 0; i < calls; i++) {
      sequential.push(await timed(create));
      sequentialBaseline.push(await timed(baseline));
    }
    // An engine issuing operations now and then rather than in a tight loop.
    for (let i = 0; i < Math.min(calls, 100); i++) {
      await new Promise((r) => setTimeout(r, 250));
      spaced.push(await timed(create));
      await new Promise((r) => setTimeout(r, 250));
      spacedBaseline.push(await timed(baseline));
    }
    baselineWorkers.forEach((w) => w.shutdown());
    await baselineRunning;
    await connection.close();

    const sustainedStart = Date.now();
    const sustained: number[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next++ < calls) sustained.push(await timed(create));
      }),
    );
    const perSecond = (sustained.length / ((Date.now() - sustainedStart) / 1000)).toFixed(1);

    let errors = 0;
    const burstMs = await Promise.all(
      Array.from({ length: burst }, () =>
        timed(create).catch((error) => {
          errors++;
          process.stderr.write(`burst error: ${(error as Error).message}\n`);
          return NaN;
        }),
      ),
    );

    process.stdout.write(
      [
        'bench/create-latency: createVirtualDisk, call to return (persisted), 1 GiB space disks, autoFix on',
        describeMachine({ temporal: `dev server ${server.cli.source}, SQLite`, repository: 'localfs on the root file system' }),
        summary('one at a time, back to back', sequential),
        `${summary('  bare Temporal, same shape', sequentialBaseline)}; ratio of p50s ${ratio(sequential, sequentialBaseline)}`,
        summary('one at a time, 250 ms apart', spaced),
        `${summary('  bare Temporal, same shape', spacedBaseline)}; ratio of p50s ${ratio(spaced, spacedBaseline)}`,
        `${summary(`sustained, ${concurrency} callers`, sustained)}; ${perSecond} creates/s`,
        `${summary(`burst of ${burst} at once`, burstMs.filter((n) => !Number.isNaN(n)))}; errors: ${errors}`,
      ].join('\n') + '\n',
    );
  }, { server: onDisk });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
