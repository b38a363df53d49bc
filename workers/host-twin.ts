/**
 * A host id is one host: two live workers with the same id would both serve its queue, and
 * each would take the other's leases for its own earlier incarnation. A worker that starts asks
 * the Temporal server who polls its host queue: a worker of the same id that is alive (on this
 * machine: its process exists; elsewhere: it polled within the last long poll) stops this one
 * with a message saying so. The leases themselves carry the DISKFLOW_HOME identity too
 * (home-lock.ts), for two workers that start at the very same moment.
 */
import { hostname } from 'node:os';
import type { Client } from '@temporalio/client';
import { tsToMs } from '@temporalio/common/lib/time';
import { processAlive } from '../activities/process';
import { DiskflowError } from '../api/errors';
import { hostTaskQueue } from '../api/task-queues';

/** Temporal's enums TaskQueueKind NORMAL and TaskQueueType ACTIVITY (the host queue has activities only). */
const TASK_QUEUE_KIND_NORMAL = 1;
const TASK_QUEUE_TYPE_ACTIVITY = 2;

/** A live worker polls again at least this often (a long poll lasts about a minute). */
export const LIVE_POLL_MS = 75_000;

export const workerIdentity = (hostId: string): string => `${hostId}@${hostname()}/${process.pid}`;

/** Why another worker may hold this host id now, or null: `pollers` are those the server lists for the host queue. */
export function liveTwin(hostId: string, pollers: { identity: string; lastAccessMs: number }[], now = Date.now()): string | null {
  const own = workerIdentity(hostId);
  for (const { identity, lastAccessMs } of pollers) {
    if (identity === own) continue;
    const match = /^(.*)@([^@/]*)\/(\d+)$/.exec(identity);
    if (match && match[2] === hostname()) {
      // On this machine the process table tells: a worker restarted after a crash finds its predecessor gone.
      if (processAlive(Number(match[3]))) return `worker ${identity} (pid ${match[3]} on this machine) serves host ${hostId}`;
      continue;
    }
    const ago = now - lastAccessMs;
    if (ago < LIVE_POLL_MS) {
      return `worker ${identity} polled host ${hostId}'s queue ${Math.round(ago / 1000)} s ago (if it has stopped, this host id is free ${Math.ceil((LIVE_POLL_MS - ago) / 1000)} s from now)`;
    }
  }
  return null;
}

/** Throws INVALID_ARGUMENT (the worker's --host-id cannot be used) when a live worker elsewhere serves `hostId`. */
export async function assertHostIdFree(client: Client, namespace: string, hostId: string): Promise<void> {
  const response = await client.workflowService.describeTaskQueue({
    namespace,
    taskQueue: { name: hostTaskQueue(hostId), kind: TASK_QUEUE_KIND_NORMAL },
    taskQueueType: TASK_QUEUE_TYPE_ACTIVITY,
  });
  const pollers = (response.pollers ?? []).map((p) => ({ identity: p.identity ?? '', lastAccessMs: tsToMs(p.lastAccessTime) }));
  const twin = liveTwin(hostId, pollers);
  if (twin) throw new DiskflowError('INVALID_ARGUMENT', `host id ${hostId} is in use: ${twin}; every worker needs its own --host-id (DISKFLOW_HOST_ID)`);
}
