/**
 * What a Temporal cluster must offer diskflow, asked of the cluster itself (`diskflow cluster
 * check`), and the part of it a client may register (`diskflow cluster setup`): the namespace
 * and diskflow's search attributes. Server features that only the cluster's dynamic config turns
 * on are probed with requests that cannot change anything (an id no workflow has, or an
 * Update-With-Start whose two halves disagree, which a server that runs it refuses as invalid and
 * one that does not refuses as disabled); the report says which config line turns each on.
 * docs/DEPLOYING.md explains every item.
 */
import { randomUUID } from 'node:crypto';
import { Connection, isGrpcServiceError } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { google, temporal } from '@temporalio/proto';
import { SEARCH_ATTRIBUTES } from '../api/search-attributes';
import { WORKFLOW_TASK_QUEUE } from '../api/task-queues';
import type { TemporalSettings } from '../config/environment';

const { IndexedValueType } = temporal.api.enums.v1;
const { TaskQueueType } = temporal.api.enums.v1;

/** gRPC status codes the probes tell apart. */
const GRPC = { INVALID_ARGUMENT: 3, NOT_FOUND: 5, ALREADY_EXISTS: 6, PERMISSION_DENIED: 7, UNIMPLEMENTED: 12 } as const;

export interface Requirement {
  /** What is checked, in operators' words ("search attribute DiskflowRepo"). */
  name: string;
  /** Missing it, diskflow does not work (false: a feature or a metric is lost). */
  required: boolean;
  ok: boolean;
  /** What the cluster answered. */
  detail: string;
  /** How to get it, when it is missing. */
  fix: string | null;
}

export interface ClusterReport {
  address: string;
  namespace: string;
  serverVersion: string | null;
  requirements: Requirement[];
  /** Every required item is there. */
  ready: boolean;
}

export interface SetupResult {
  /** What setup changed, in words. */
  changed: string[];
  /** The cluster as it is afterwards. */
  report: ClusterReport;
}

const SETUP = 'diskflow cluster setup';
const dynamicConfig = (key: string) => `set ${key}=true in the server's dynamic config (see docs/DEPLOYING.md)`;

function grpcError(error: unknown): { code: number | null; message: string } {
  if (isGrpcServiceError(error)) return { code: error.code, message: error.details || error.message };
  return { code: null, message: error instanceof Error ? error.message : String(error) };
}

/** A call bounded in time, so a check never hangs on a server that does not answer. */
async function within<T>(connection: Connection, fn: () => Promise<T>): Promise<T> {
  return connection.withDeadline(Date.now() + 10_000, fn);
}

/** Runs `call`, which a server with the feature answers with NOT_FOUND (there is no such workflow). */
async function probeNotFound(connection: Connection, name: string, required: boolean, fix: string, call: () => Promise<unknown>): Promise<Requirement> {
  try {
    await within(connection, call);
    return { name, required, ok: true, detail: 'available', fix: null };
  } catch (error) {
    const { code, message } = grpcError(error);
    // NOT_FOUND of the probe's workflow, not of a namespace the server does not know yet.
    if (code === GRPC.NOT_FOUND && !/namespace/i.test(message)) return { name, required, ok: true, detail: 'available', fix: null };
    return { name, required, ok: false, detail: code === GRPC.UNIMPLEMENTED && !/enabled/i.test(message) ? `this server has no such API (${message})` : message, fix };
  }
}

/** The per-operation reasons of a refused Update-With-Start (google.rpc.Status details). */
function multiOperationReasons(error: unknown): string[] {
  const raw = (error as { metadata?: { get(key: string): unknown[] } }).metadata?.get('grpc-status-details-bin')?.[0];
  if (!(raw instanceof Uint8Array)) return [];
  try {
    const status = google.rpc.Status.decode(raw);
    return status.details
      .filter((d) => d.type_url?.endsWith('MultiOperationExecutionFailure'))
      .flatMap((d) => temporal.api.errordetails.v1.MultiOperationExecutionFailure.decode(d.value!).statuses)
      .filter((s) => s.code !== 10) // ABORTED: "not run because the other operation failed"
      .map((s) => s.message ?? '');
  } catch {
    return [];
  }
}

async function probeUpdateWithStart(connection: Connection, namespace: string): Promise<Requirement> {
  const name = 'Update-With-Start';
  const fix = dynamicConfig('frontend.enableExecuteMultiOperation');
  const probe = `diskflow-cluster-check-${randomUUID()}`;
  try {
    // Two halves naming different workflows: refused before anything is started.
    await within(connection, () =>
      connection.workflowService.executeMultiOperation({
        namespace,
        operations: [
          { startWorkflow: { namespace, workflowId: probe, workflowType: { name: 'diskflowClusterCheck' }, taskQueue: { name: probe }, requestId: randomUUID() } },
          { updateWorkflow: { namespace, workflowExecution: { workflowId: `${probe}-other` }, request: { meta: { updateId: probe }, input: { name: 'persisted' } } } },
        ],
      }),
    );
    return { name, required: true, ok: false, detail: 'the server accepted an inconsistent Update-With-Start: cannot tell', fix };
  } catch (error) {
    const { code, message } = grpcError(error);
    const reasons = multiOperationReasons(error);
    if (code === GRPC.INVALID_ARGUMENT && reasons.some((r) => /consistent/i.test(r))) return { name, required: true, ok: true, detail: 'available', fix: null };
    return { name, required: true, ok: false, detail: [message, ...reasons].filter(Boolean).join(': '), fix };
  }
}

async function probeSearchAttributes(connection: Connection, namespace: string): Promise<Requirement[]> {
  let custom: Record<string, number | string>;
  try {
    custom = (await within(connection, () => connection.operatorService.listSearchAttributes({ namespace }))).customAttributes as Record<string, number>;
  } catch (error) {
    const detail = `could not list search attributes: ${grpcError(error).message}`;
    return SEARCH_ATTRIBUTES.map((key) => ({ name: `search attribute ${key.name}`, required: true, ok: false, detail, fix: SETUP }));
  }
  return SEARCH_ATTRIBUTES.map((key) => {
    const name = `search attribute ${key.name}`;
    const type = custom[key.name];
    if (type === undefined) return { name, required: true, ok: false, detail: 'not registered', fix: SETUP };
    const keyword = type === IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD || type === 'INDEXED_VALUE_TYPE_KEYWORD';
    return keyword
      ? { name, required: true, ok: true, detail: 'Keyword', fix: null }
      : { name, required: true, ok: false, detail: `registered as ${typeof type === 'number' ? IndexedValueType[type] : type}, not Keyword`, fix: `remove it and run ${SETUP} (the operator API cannot change a type)` };
  });
}

async function probeTaskQueues(connection: Connection, namespace: string): Promise<Requirement[]> {
  const taskQueue = { name: WORKFLOW_TASK_QUEUE, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL };
  try {
    const activity = await within(connection, () =>
      connection.workflowService.describeTaskQueue({ namespace, taskQueue, taskQueueType: TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY, reportStats: true }),
    );
    const workflow = await within(connection, () => connection.workflowService.describeTaskQueue({ namespace, taskQueue, taskQueueType: TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW }));
    const hosts = workflow.pollers.map((p) => p.identity).filter(Boolean);
    return [
      activity.stats
        ? { name: 'task queue statistics', required: false, ok: true, detail: 'available (the diskflow_steps_waiting metric)', fix: null }
        : { name: 'task queue statistics', required: false, ok: false, detail: 'not reported: workers cannot export diskflow_steps_waiting', fix: 'a Temporal server >= 1.27' },
      { name: 'workers', required: false, ok: hosts.length > 0, detail: hosts.length ? `${hosts.length} polling ${WORKFLOW_TASK_QUEUE}: ${hosts.join(', ')}` : `none polling ${WORKFLOW_TASK_QUEUE} yet`, fix: hosts.length ? null : 'start `diskflow worker` on each host' },
    ];
  } catch (error) {
    return [{ name: 'task queue statistics', required: false, ok: false, detail: grpcError(error).message, fix: null }];
  }
}

async function withConnection<T>(settings: TemporalSettings, fn: (connection: Connection) => Promise<T>): Promise<T> {
  const connection = await Connection.connect({ address: settings.address, tls: settings.tls, apiKey: settings.apiKey, connectTimeout: '5 seconds' });
  try {
    return await fn(connection);
  } finally {
    await connection.close();
  }
}

async function inspect(connection: Connection, settings: TemporalSettings): Promise<ClusterReport> {
  const { namespace, address } = settings;
  const info = await within(connection, () => connection.workflowService.getSystemInfo({}));
  const serverVersion = info.serverVersion || null;
  const requirements: Requirement[] = [];
  try {
    const ns = await within(connection, () => connection.workflowService.describeNamespace({ namespace }));
    const retention = Number(ns.config?.workflowExecutionRetentionTtl?.seconds ?? 0);
    requirements.push({ name: `namespace ${namespace}`, required: true, ok: true, detail: `exists${retention ? `, retention ${Math.round(retention / 3600)} h` : ''}`, fix: null });
  } catch (error) {
    const { code, message } = grpcError(error);
    requirements.push({ name: `namespace ${namespace}`, required: true, ok: false, detail: code === GRPC.NOT_FOUND ? 'does not exist' : message, fix: SETUP });
    // Everything else lives in a namespace: nothing more to ask until it exists.
    return { address, namespace, serverVersion, requirements, ready: false };
  }
  const nowhere = { workflowId: `diskflow-cluster-check-${randomUUID()}` };
  requirements.push(...(await probeSearchAttributes(connection, namespace)));
  requirements.push(
    await probeNotFound(connection, 'Workflow Update', true, dynamicConfig('frontend.enableUpdateWorkflowExecution'), () =>
      connection.workflowService.updateWorkflowExecution({ namespace, workflowExecution: nowhere, request: { meta: { updateId: 'probe' }, input: { name: 'persisted' } } }),
    ),
  );
  requirements.push(await probeUpdateWithStart(connection, namespace));
  requirements.push(
    await probeNotFound(connection, 'activity pause and reset', false, dynamicConfig('frontend.activityAPIsEnabled'), () =>
      connection.workflowService.pauseActivity({ namespace, execution: nowhere, id: 'probe', identity: 'diskflow cluster check' }),
    ),
  );
  requirements.push(
    await probeNotFound(connection, 'workflow pause', false, dynamicConfig('frontend.WorkflowPauseEnabled'), () =>
      connection.workflowService.pauseWorkflowExecution({ namespace, workflowId: nowhere.workflowId, identity: 'diskflow cluster check', requestId: randomUUID() }),
    ),
  );
  requirements.push(...(await probeTaskQueues(connection, namespace)));
  return { address, namespace, serverVersion, requirements, ready: requirements.every((r) => r.ok || !r.required) };
}

/** Asks the cluster at `settings` (TEMPORAL_ADDRESS, TLS or API key, namespace) what diskflow needs of it. */
export async function checkCluster(settings: TemporalSettings): Promise<ClusterReport> {
  return withConnection(settings, (connection) => inspect(connection, settings));
}

/**
 * Registers what a client may: the namespace (self-hosted clusters; Temporal Cloud creates
 * namespaces in its own console) and diskflow's search attributes, through the operator API.
 */
export async function setupCluster(settings: TemporalSettings, options: { retentionDays?: number } = {}): Promise<SetupResult> {
  const { namespace } = settings;
  return withConnection(settings, async (connection) => {
    const changed: string[] = [];
    let report = await inspect(connection, settings);
    const nsMissing = report.requirements.find((r) => r.name === `namespace ${namespace}` && !r.ok);
    if (nsMissing) {
      const retentionDays = options.retentionDays ?? 7;
      try {
        await within(connection, () =>
          connection.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs(`${retentionDays} days`) }),
        );
        changed.push(`registered namespace ${namespace} (retention ${retentionDays} days)`);
      } catch (error) {
        const { code, message } = grpcError(error);
        if (code !== GRPC.ALREADY_EXISTS) throw new Error(`could not register namespace ${namespace}: ${message} (on Temporal Cloud, create it in the Cloud UI or with tcld)`);
      }
      // A new namespace is described at once but reaches the caches of the other services (the
      // operator API, matching) only at their next refresh, about ten seconds later.
      report = await eventually(() => inspect(connection, settings), (r) => !r.requirements.some((x) => !x.ok && /not found/i.test(x.detail)));
    }
    const missing = SEARCH_ATTRIBUTES.filter((key) => report.requirements.some((r) => r.name === `search attribute ${key.name}` && r.detail === 'not registered'));
    if (missing.length) {
      const searchAttributes = Object.fromEntries(missing.map((key) => [key.name, IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD]));
      try {
        await within(connection, () => connection.operatorService.addSearchAttributes({ namespace, searchAttributes }));
      } catch (error) {
        const { code, message } = grpcError(error);
        if (code !== GRPC.ALREADY_EXISTS) {
          const tcld = `tcld namespace search-attributes add --namespace ${namespace} ${missing.map((k) => `--search-attribute ${k.name}=Keyword`).join(' ')}`;
          throw new Error(`could not register search attributes ${missing.map((k) => k.name).join(', ')}: ${message} (on Temporal Cloud: ${tcld})`);
        }
      }
      changed.push(`registered search attributes ${missing.map((k) => `${k.name} (Keyword)`).join(', ')}`);
      report = await eventually(() => inspect(connection, settings), (r) => r.requirements.filter((x) => x.name.startsWith('search attribute')).every((x) => x.ok) && !r.requirements.some((x) => !x.ok && /not found/i.test(x.detail)));
    }
    return { changed, report };
  });
}

/** The last report once `done` holds, or after 30 s (a report that still shows what is missing). */
async function eventually(read: () => Promise<ClusterReport>, done: (report: ClusterReport) => boolean): Promise<ClusterReport> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const report = await read();
    if (done(report) || Date.now() > deadline) return report;
    await new Promise((r) => setTimeout(r, 500));
  }
}
