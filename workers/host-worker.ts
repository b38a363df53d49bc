/**
 * One host's worker process: workflow tasks (any host may run them), this host's own activity
 * queue, and one activity queue per connected repository (plus the SRM queue of repositories
 * whose SRM this host is). Connecting and disconnecting repositories starts and stops pollers
 * while the process runs.
 */
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { NativeConnection, Worker, WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities';
import { ActivityDefaultsInterceptor } from '../activities/activity-defaults';
import { HostConnections, RepositoryPollers } from '../activities/host/connections';
import type { ActivityDeps, HostSettings } from '../activities/deps';
import type { OperationRegistry } from '../activities/images/lifecycle';
import type { Repository } from '../activities/repository/repository';
import { DiskflowError } from '../api/errors';
import { hostTaskQueue, repoTaskQueue, srmTaskQueue, WORKFLOW_TASK_QUEUE } from '../api/task-queues';
import { leaseTiming } from '../activities/srm/delta-lease';
import { createWorkflowLocalActivities } from '../activities/workflow-local';
import { startSpawner } from '../activities/spawner';
import { createMetadataForwarder } from '../activities/srm/metadata-forwarder';
import { SrmPollers, SrmRoles } from '../activities/srm/srm-roles';
import { watchServed } from '../activities/serving/watch';
import type { TemporalSettings } from '../config/environment';
import { homeId, lockHome } from './home-lock';
import { assertHostIdFree, workerIdentity } from './host-twin';
import { loadFixKey } from './fix-key';
import { hostSettings, maxConcurrentSteps } from './settings';
import { installTemporalLogging, Logger } from './logger';
import type { MetricsSettings } from './metrics/settings';
import { droppedOperationSinks, WorkerMetrics } from './metrics/worker-metrics';
import { PRELOADED_WORKFLOW_MODULES, WORKFLOW_INTERCEPTOR_MODULES, WORKFLOWS_PATH } from './workflow-bundle';

export interface HostWorkerOptions {
  hostId: string;
  home: string;
  temporal: TemporalSettings;
  logger: Logger;
  /** Serve Prometheus metrics (workers/metrics/); the SDK's runtime must have been installed with them. */
  metrics?: MetricsSettings | null;
}

/** How often a host looks at the daemons serving its VMs' disks. */
const SERVED_WATCH_MS = Number(process.env.DISKFLOW_SERVED_WATCH_MS ?? 5000);

/** Prebuilt by `npm run build` (scripts/bundle-workflows.ts); bundled at start-up when absent. */
const WORKFLOW_BUNDLE = join(__dirname, '..', 'workflow-bundle.js');

class TemporalOperations implements OperationRegistry {
  constructor(private readonly client: Client) {}

  async isRunning(operationId: string): Promise<boolean> {
    try {
      const description = await this.client.workflow.getHandle(operationId).describe();
      return description.status.name === 'RUNNING';
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return false;
      throw error;
    }
  }
}

export class HostWorker implements RepositoryPollers, SrmPollers {
  readonly connections: HostConnections;
  readonly srm: SrmRoles;
  private readonly running = new Map<string, { worker: Worker; done: Promise<void> }>();
  private readonly activityOptions: Pick<WorkerOptions, 'activities' | 'interceptors' | 'defaultHeartbeatThrottleInterval' | 'maxHeartbeatThrottleInterval'>;
  /** The checks workflows run on the host that runs their task (local activities). */
  private readonly localActivities: ReturnType<typeof createWorkflowLocalActivities>;
  private stopping = false;
  private watching: Promise<void> | null = null;
  private watchTimer: NodeJS.Timeout | undefined;
  private failure: Error | undefined;
  private wake: () => void = () => undefined;

  private constructor(
    private readonly options: HostWorkerOptions,
    private readonly nativeConnection: NativeConnection,
    private readonly clientConnection: Connection,
    private readonly unlock: () => Promise<void>,
    settings: HostSettings,
    readonly metrics: WorkerMetrics | null,
    home: { path: string; id: string },
  ) {
    const { hostId, temporal, logger } = options;
    const log = (message: string, fields?: Record<string, unknown>) => logger.info({ hostId, ...fields }, message);
    this.srm = new SrmRoles(hostId, home.id, leaseTiming(), this, log);
    this.connections = new HostConnections(
      { hostId, home: home.path, homeId: home.id, srm: this.srm, metadataOnSrm: createMetadataForwarder(settings.fixKey) },
      this,
      log,
    );
    const client = new Client({ connection: clientConnection, namespace: temporal.namespace });
    const deps: ActivityDeps = { hostId, connections: this.connections, operations: new TemporalOperations(client), settings, srm: this.srm };
    this.localActivities = createWorkflowLocalActivities(deps);
    this.activityOptions = {
      activities: createActivities(deps),
      // The step tracker first: it sees each step's failure as the defaults interceptor coded it.
      interceptors: { activity: [...(metrics ? [metrics.activityInterceptors] : []), () => ({ inbound: new ActivityDefaultsInterceptor() })] },
      // Cancellation reaches an activity only through its heartbeats: send them often, so a
      // cancelled or paused copy stops its qemu-img within a second or two.
      defaultHeartbeatThrottleInterval: '1 second',
      maxHeartbeatThrottleInterval: '1 second',
    };
  }

  static async start(options: HostWorkerOptions): Promise<HostWorker> {
    const { hostId, home, temporal, logger } = options;
    installTemporalLogging(logger, options.metrics ? { bindAddress: options.metrics.sdkBindAddress, hostId } : undefined);
    const unlock = await lockHome(home);
    const opened: { close(): Promise<void> }[] = [];
    try {
      const connectionOptions = { address: temporal.address, tls: temporal.tls, apiKey: temporal.apiKey };
      const fixKey = await loadFixKey(home);
      if (!fixKey.shared) logger.warn({ hostId }, 'DISKFLOW_FIX_KEY is not set: fixes are signed with a key of this host only; set it, the same on every host, in a cluster');
      // A key that cannot protect fixes stops the worker here, with what to change (fix-key.ts).
      const settings = hostSettings(fixKey.key);
      const id = await homeId(home);
      const clientConnection = await Connection.connect(connectionOptions);
      opened.push(clientConnection);
      // A host id is one host: refused while a live worker elsewhere serves it (host-twin.ts).
      await assertHostIdFree(new Client({ connection: clientConnection, namespace: temporal.namespace }), temporal.namespace, hostId).catch((error: unknown) => {
        if (error instanceof DiskflowError) throw error;
        // A server that does not answer who polls (permissions): the leases still tell two holders apart.
        logger.warn({ hostId, err: error }, 'could not ask the Temporal server whether another worker serves this host id');
      });
      const nativeConnection = await NativeConnection.connect(connectionOptions);
      opened.push(nativeConnection);
      // The metrics read the host's connections when scraped, once the host exists.
      const made: { host?: HostWorker } = {};
      const metrics = options.metrics
        ? await WorkerMetrics.start(options.metrics, {
            hostId,
            namespace: temporal.namespace,
            connection: clientConnection,
            repositories: () => made.host?.connections.list() ?? [],
            repoIdsOf: (repoUuid) => made.host?.connections.repoIdsOf(repoUuid) ?? [],
            logger,
          })
        : null;
      if (metrics) opened.push(metrics);
      startSpawner();
      const host = (made.host = new HostWorker(options, nativeConnection, clientConnection, unlock, settings, metrics, { path: home, id }));
      // The prebuilt bundle holds the workflow interceptors; from source they are bundled here.
      const bundled = existsSync(WORKFLOW_BUNDLE);
      await host.launch(
        await Worker.create({
          ...host.common(WORKFLOW_TASK_QUEUE),
          ...(bundled
            ? { workflowBundle: { codePath: WORKFLOW_BUNDLE } }
            : { workflowsPath: WORKFLOWS_PATH, bundlerOptions: { preloadModules: PRELOADED_WORKFLOW_MODULES } }),
          // The workflow queue runs workflow tasks and their local activities only.
          activities: host.localActivities,
          enableNonLocalActivities: false,
          interceptors: { ...host.activityOptions.interceptors, ...(bundled ? {} : { workflowModules: WORKFLOW_INTERCEPTOR_MODULES }) },
          sinks: metrics?.sinks ?? droppedOperationSinks,
        }),
      );
      // Connections first: a host takes work for a repository only once it has it connected
      // (a copy between two repositories runs on the caller's host queue).
      await host.connections.restore();
      await host.launch(await Worker.create({ ...host.common(hostTaskQueue(hostId)), ...host.activityOptions }));
      host.watchServedDisks();
      logger.info(
        { hostId, home, address: temporal.address, repositories: host.connections.list().map((c) => c.repoId), ...(metrics && { metrics: metrics.url }) },
        'host worker started',
      );
      return host;
    } catch (error) {
      for (const resource of opened.reverse()) await resource.close().catch(() => undefined);
      await unlock();
      throw error;
    }
  }
  get hostId(): string {
    return this.options.hostId;
  }

  /**
   * The disks this host serves to VMs: their daemons outlive a worker, and one found gone is
   * recorded on its image at once and every few seconds after (activities/serving/watch.ts).
   */
  private watchServedDisks(): void {
    const pass = () => {
      if (this.watching || this.stopping) return;
      this.watching = watchServed(this.connections)
        .catch((error: Error) => this.options.logger.warn({ err: error }, 'served disks not checked'))
        .finally(() => (this.watching = null));
    };
    pass();
    this.watchTimer = setInterval(pass, SERVED_WATCH_MS);
    this.watchTimer.unref();
  }

  private common(taskQueue: string): Pick<WorkerOptions, 'connection' | 'namespace' | 'taskQueue' | 'identity' | 'shutdownGraceTime'> {
    return {
      connection: this.nativeConnection,
      namespace: this.options.temporal.namespace,
      taskQueue,
      identity: workerIdentity(this.options.hostId),
      // A stopping host hands its activities back quickly: they are retried elsewhere or after restart.
      shutdownGraceTime: '3 seconds',
    };
  }

  private async launch(worker: Worker): Promise<void> {
    const taskQueue = worker.options.taskQueue;
    const done = worker.run().catch((error: Error) => {
      // A worker that dies on its own takes the process down: crash-only, a supervisor restarts it.
      if (!this.stopping) {
        this.failure = error;
        this.options.logger.error({ err: error, taskQueue }, 'worker failed');
        this.wake();
      }
    });
    this.running.set(taskQueue, { worker, done });
  }

  /** Polls the repository's queue (RepositoryPollers: called on connect and on restore). */
  async startRepository(repository: Repository): Promise<void> {
    const taskQueue = repoTaskQueue(repository.header.uuid);
    if (this.running.has(taskQueue)) return;
    // A cap per host and repository, so a burst of fix steps spreads over the hosts that have it connected.
    const maxConcurrentActivityTaskExecutions = maxConcurrentSteps();
    await this.launch(await Worker.create({ ...this.common(taskQueue), ...this.activityOptions, maxConcurrentActivityTaskExecutions }));
    this.options.logger.info({ taskQueue, location: repository.location, maxConcurrentSteps: maxConcurrentActivityTaskExecutions }, 'polling repository queue');
  }

  /** Stops polling the repository's queues (RepositoryPollers: called on disconnect). */
  async stopRepository(repoUuid: string): Promise<void> {
    // A disconnected repository is no longer managed by this host either.
    await this.srm.stop(repoUuid);
    await this.stopPoller(repoTaskQueue(repoUuid));
  }

  /** Polls the repository's SRM queue (SrmPollers: called once this host holds the SRM lease). */
  async startSrm(repoUuid: string): Promise<void> {
    const taskQueue = srmTaskQueue(repoUuid);
    if (this.running.has(taskQueue) || this.stopping) return;
    await this.launch(await Worker.create({ ...this.common(taskQueue), ...this.activityOptions }));
    this.options.logger.info({ taskQueue }, 'polling SRM queue');
  }

  /** Stops polling the SRM queue: at once on a lost lease, so no new SRM step starts here. */
  async stopSrm(repoUuid: string): Promise<void> {
    await this.stopPoller(srmTaskQueue(repoUuid));
  }

  private async stopPoller(taskQueue: string): Promise<void> {
    const entry = this.running.get(taskQueue);
    if (!entry) return;
    this.running.delete(taskQueue);
    if (entry.worker.getState() === 'RUNNING') entry.worker.shutdown();
    await entry.done;
    this.options.logger.info({ taskQueue }, 'stopped polling');
  }

  /** Resolves when the worker is shut down; rejects if one of its pollers failed. */
  async run(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.wake = resolve;
      if (this.failure || this.stopping) resolve();
    });
    await this.shutdown();
    if (this.failure) throw this.failure;
  }

  async shutdown(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.watchTimer);
    await this.watching;
    this.wake();
    await this.srm.stopAll();
    const all = [...this.running.values()];
    this.running.clear();
    for (const { worker } of all) {
      if (worker.getState() === 'RUNNING') worker.shutdown();
    }
    await Promise.all(all.map((entry) => entry.done));
    await this.connections.close();
    await this.metrics?.close();
    await this.nativeConnection.close();
    await this.clientConnection.close();
    await this.unlock();
  }
}
