/**
 * A host worker's Prometheus metrics, served at http://DISKFLOW_METRICS_ADDRESS/metrics: the
 * Temporal SDK's own (workers, pollers, task latencies; its exporter listens on loopback and
 * is read on every scrape) followed by diskflow's (prom-client): operations by type and
 * outcome, steps in progress and stalled, bytes moved, images by status, steps waiting for a
 * host, and the Node process. Names follow Prometheus conventions (base units, `_total`
 * counters); `host` is the diskflow host id. docs/DEPLOYING.md lists them.
 */
import { createServer, Server } from 'node:http';
import type { Connection } from '@temporalio/client';
import type { ActivityInterceptorsFactory, InjectedSinks } from '@temporalio/worker';
import { collectDefaultMetrics, Counter, Registry } from 'prom-client';
import type { ConnectedRepository } from '../../activities/host/connections';
import type { OperationSinks } from '../../workflows/operation-metrics';
import type { Logger } from '../logger';
import { RepositoryCensus } from './repository-census';
import type { MetricsSettings } from './settings';
import { StepTracker } from './step-tracker';

export interface WorkerMetricsSources {
  hostId: string;
  namespace: string;
  connection: Connection;
  repositories(): ConnectedRepository[];
  repoIdsOf(repoUuid: string): string[];
  logger: Logger;
}

/** The sink workflows report their end to, when this worker has no metrics: calls are dropped. */
export const droppedOperationSinks: InjectedSinks<OperationSinks> = { diskflowOperations: { ended: { fn: () => undefined } } };

export class WorkerMetrics {
  readonly registry = new Registry();
  readonly steps: StepTracker;
  readonly sinks: InjectedSinks<OperationSinks>;
  readonly activityInterceptors: ActivityInterceptorsFactory;

  private readonly server: Server;

  private constructor(
    private readonly settings: MetricsSettings,
    sources: WorkerMetricsSources,
  ) {
    const { registry } = this;
    const { hostId, logger } = sources;
    collectDefaultMetrics({ register: registry, labels: { host: hostId } });
    this.steps = new StepTracker(registry, hostId, sources.repoIdsOf, settings.stallAfterMs);
    this.activityInterceptors = this.steps.interceptors;
    new RepositoryCensus(registry, { ...sources, log: (message, fields) => logger.warn({ hostId, ...fields }, message) });
    const operations = new Counter({
      name: 'diskflow_operations_total',
      help: 'Operations (workflows) that ended on this host\'s workflow worker, by type and outcome; host is the host the operation was for',
      labelNames: ['operation_type', 'repository', 'host', 'outcome', 'code'],
      registers: [registry],
    });
    this.sinks = {
      diskflowOperations: {
        ended: {
          fn: (_info, o) => operations.inc({ operation_type: o.operationType, repository: o.repository, host: o.host, outcome: o.outcome, code: o.code ?? '' }),
        },
      },
    };
    this.server = createServer((request, response) => {
      if (request.method !== 'GET' || !request.url?.startsWith('/metrics')) {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('diskflow serves its metrics at /metrics\n');
        return;
      }
      this.render().then(
        (body) => response.writeHead(200, { 'content-type': registry.contentType }).end(body),
        (error: Error) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${error.message}\n`),
      );
    });
  }

  /** Starts the endpoint; fails at once (port taken, bad address) rather than running without it. */
  static async start(settings: MetricsSettings, sources: WorkerMetricsSources): Promise<WorkerMetrics> {
    const metrics = new WorkerMetrics(settings, sources);
    await new Promise<void>((resolve, reject) => {
      metrics.server.once('error', (error: NodeJS.ErrnoException) =>
        reject(new Error(`cannot serve metrics on ${settings.host}:${settings.port} (DISKFLOW_METRICS_ADDRESS): ${error.code === 'EADDRINUSE' ? 'the port is in use' : error.message}`)),
      );
      metrics.server.listen(settings.port, settings.host, () => resolve());
    });
    return metrics;
  }

  get url(): string {
    const host = this.settings.host.includes(':') ? `[${this.settings.host}]` : this.settings.host;
    return `http://${host}:${this.settings.port}/metrics`;
  }

  /** The SDK's exposition, then diskflow's: two sets of families with distinct names, one valid text. */
  private async render(): Promise<string> {
    const sdk = await fetch(`http://${this.settings.sdkBindAddress}/metrics`, { signal: AbortSignal.timeout(2_000) })
      .then((r) => (r.ok ? r.text() : `# the Temporal SDK's exporter answered ${r.status}\n`))
      .catch((error: Error) => `# the Temporal SDK's exporter did not answer: ${error.message}\n`);
    return `${sdk.trimEnd()}\n${await this.registry.metrics()}`;
  }

  async close(): Promise<void> {
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
