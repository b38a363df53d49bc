/**
 * bench/create-latency: how long a createVirtualDisk call takes to return (it returns once the
 * new disk is persisted), and how many creates per second a host sustains, on the embedded dev
 * server with SQLite persistence, as `diskflow dev` runs it. Every create also runs its autoFix.
 * Side by side in the same run, bare Temporal running the same shape (bench/baseline-workflow:
 * one workflow, one update, one activity that fsyncs a small file): one at a time, sustained
 * and in a burst. Goals: burst p99 at most 1.5x bare's; sustained creates/s at least 0.8x bare's.
 * Then where a create's time goes (bench/breakdown.ts), from the histories of traced creates.
 *
 *   npm run build && node dist/bench/create-latency.js [--calls 300] [--burst 200] [--concurrency 8]
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { closeSync, fsyncSync, openSync, writeSync, mkdtempSync } from 'node:fs';
import { WithStartWorkflowOperation } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { describeBreakdown, traceOperation, WorkTally, workNow } from './breakdown';
import { describeMachine, percentile } from './machine';
import { arg } from './measure';
import { withOneHost } from './one-host';

async function timed(call: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await call();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

const sortedOf = (ms: number[]) => [...ms].sort((a, b) => a - b);
const p50 = (ms: number[]) => percentile(sortedOf(ms), 50);
const p99 = (ms: number[]) => percentile(sortedOf(ms), 99);

function summary(label: string, ms: number[]): string {
  const sorted = sortedOf(ms);
  return `${label}: p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms, max ${sorted[sorted.length - 1].toFixed(1)} ms (${ms.length} calls)`;
}

const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');

async function main(): Promise<void> {
  const calls = Number(arg('calls', '300'));
  const burst = Number(arg('burst', '200'));
  const concurrency = Number(arg('concurrency', '8'));
  const traced = Number(arg('traced', '20'));
  const onDisk = (scratch: string) => (process.env.BENCH_MEMORY ? {} : { dbFilename: join(scratch, 'temporal.db') });
  await withOneHost('bench-create', tmpdir(), async ({ scratch, server, client, localRepository }) => {
    await localRepository('bench');
    const createWith = async (requestId: string) => client.createVirtualDisk('bench', 2 ** 30, null, {}, { requestId });
    const create = () => createWith(randomUUID());

    // The same shape on bare Temporal, polled by workers in this process like diskflow's host
    // worker; its one activity writes and fsyncs a small file, as a record write does.
    const files = mkdtempSync(join(scratch, 'baseline-'));
    const persist = async () => {
      const fd = openSync(join(files, randomUUID()), 'wx');
      try {
        writeSync(fd, JSON.stringify({ schema: 'baseline/1', at: Date.now() }));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    };
    const connection = await NativeConnection.connect({ address: server.address });
    const baselineWorkers = await Promise.all([
      Worker.create({ connection, taskQueue: 'baseline.workflows', workflowsPath: require.resolve('./baseline-workflow') }),
      Worker.create({ connection, taskQueue: 'baseline.host', activities: { persist } }),
    ]);
    const baselineRunning = Promise.all(baselineWorkers.map((w) => w.run()));
    const baselineWith = (n: string) =>
      client.temporal.workflow.executeUpdateWithStart('persisted', {
        startWorkflowOperation: new WithStartWorkflowOperation('baselineCreate', {
          taskQueue: 'baseline.workflows',
          workflowId: `baseline-${n}`,
          workflowIdConflictPolicy: 'USE_EXISTING',
        }),
      });
    const baseline = () => baselineWith(randomUUID());
    /** Waits until every operation started so far has ended (mends included), so one phase does not load the next. */
    const settle = (ids: string[]) => Promise.all(ids.map((id) => client.temporal.workflow.getHandle(id).result().catch(() => undefined)));

    try {
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

      /** `concurrency` callers issuing `calls` operations back to back; ms of each, and operations/s. */
      const sustain = async (one: (id: string) => Promise<unknown>, idOf: (n: string) => string) => {
        const ids: string[] = [];
        const ms: number[] = [];
        let next = 0;
        const start = Date.now();
        await Promise.all(
          Array.from({ length: concurrency }, async () => {
            while (next++ < calls) {
              const n = randomUUID();
              ids.push(idOf(n));
              ms.push(await timed(() => one(n)));
            }
          }),
        );
        const perSecond = ms.length / ((Date.now() - start) / 1000);
        await settle(ids);
        return { ms, perSecond };
      };
      /** `burst` operations at once; ms of each, errors counted. */
      const burstOf = async (one: (id: string) => Promise<unknown>, idOf: (n: string) => string) => {
        let errors = 0;
        const ids = Array.from({ length: burst }, () => randomUUID());
        const ms = await Promise.all(
          ids.map((n) =>
            timed(() => one(n)).catch((error) => {
              errors++;
              process.stderr.write(`burst error: ${(error as Error).message}\n`);
              return NaN;
            }),
          ),
        );
        await settle(ids.map(idOf));
        return { ms: ms.filter((n) => !Number.isNaN(n)), errors, ids: ids.map(idOf) };
      };
      const diskflowId = (n: string) => `createVirtualDisk:${n}`;
      const baselineId = (n: string) => `baseline-${n}`;

      const sustained = await sustain(createWith, diskflowId);
      const sustainedBaseline = await sustain(baselineWith, baselineId);
      const burstRun = await burstOf(createWith, diskflowId);
      const burstBaseline = await burstOf(baselineWith, baselineId);

      // Where the time goes: creates one at a time, each to its end (mend included), fsyncs counted.
      const tracedIds: string[] = [];
      const work = new WorkTally();
      for (let i = 0; i < traced; i++) {
        const n = randomUUID();
        const before = workNow();
        await createWith(n);
        await settle([diskflowId(n)]);
        work.add(before);
        tracedIds.push(diskflowId(n));
      }
      const baselineTraced: string[] = [];
      for (let i = 0; i < traced; i++) {
        const n = randomUUID();
        await baselineWith(n);
        baselineTraced.push(baselineId(n));
      }
      const trace = (ids: string[]) => Promise.all(ids.map((id) => traceOperation(client.temporal, id)));

      const burstRatio = p99(burstRun.ms) / p99(burstBaseline.ms);
      const sustainedRatio = sustained.perSecond / sustainedBaseline.perSecond;
      process.stdout.write(
        [
          'bench/create-latency: createVirtualDisk, call to return (persisted), 1 GiB space disks, autoFix on; bare Temporal = one workflow, one update, one activity fsyncing a small file',
          describeMachine({ temporal: `dev server ${server.cli.source}, SQLite`, repository: 'localfs on the root file system' }),
          summary('one at a time, back to back', sequential),
          `${summary('  bare Temporal, same shape', sequentialBaseline)}; ratio of p50s ${(p50(sequential) / p50(sequentialBaseline)).toFixed(2)}`,
          summary('one at a time, 250 ms apart', spaced),
          `${summary('  bare Temporal, same shape', spacedBaseline)}; ratio of p50s ${(p50(spaced) / p50(spacedBaseline)).toFixed(2)}`,
          `${summary(`sustained, ${concurrency} callers`, sustained.ms)}; ${sustained.perSecond.toFixed(1)} creates/s`,
          `${summary('  bare Temporal, same shape', sustainedBaseline.ms)}; ${sustainedBaseline.perSecond.toFixed(1)} /s`,
          `  sustained ratio ${sustainedRatio.toFixed(2)} of bare (goal >= 0.80: ${verdict(sustainedRatio >= 0.8)})`,
          `${summary(`burst of ${burst} at once`, burstRun.ms)}; errors: ${burstRun.errors}`,
          `${summary('  bare Temporal, same shape', burstBaseline.ms)}; errors: ${burstBaseline.errors}`,
          `  burst p99 ratio ${burstRatio.toFixed(2)} of bare (goal <= 1.50: ${verdict(burstRatio <= 1.5)}); p50 ratio ${(p50(burstRun.ms) / p50(burstBaseline.ms)).toFixed(2)}`,
          describeBreakdown('where a create goes, one at a time', await trace(tracedIds), work),
          describeBreakdown('  bare Temporal, same shape', await trace(baselineTraced), null),
          describeBreakdown(`where a create goes, in the burst of ${burst}`, await trace(burstRun.ids), null),
          describeBreakdown('  bare Temporal, same shape', await trace(burstBaseline.ids), null),
        ].join('\n') + '\n',
      );
    } finally {
      baselineWorkers.forEach((w) => w.shutdown());
      await baselineRunning;
      await connection.close();
    }
  }, { server: onDisk });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
