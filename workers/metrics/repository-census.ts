/**
 * Gauges read from where the truth is, when Prometheus scrapes: images by status from each
 * connected repository's own records, and steps waiting for a host from the Temporal server's
 * task queue backlog (approximate counts; a step waits there while no host with the repository
 * connected has a free slot, or while the repository's SRM is not elected).
 *
 * Every host that has a repository connected reports the same numbers for it, labelled with its
 * own host id: aggregate across hosts with max by (repository), not sum.
 */
import type { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { Gauge, Registry } from 'prom-client';
import type { ConnectedRepository } from '../../activities/host/connections';
import { hostTaskQueue, repoTaskQueue, srmTaskQueue } from '../../api/task-queues';

const IMAGE_STATES = ['optimized', 'degraded', 'broken', 'removed'] as const;
type ImageState = (typeof IMAGE_STATES)[number];

/** A scan of every record is cheap but not free: scrapes closer together than this (several Prometheus servers) share one. */
const CENSUS_MAX_AGE_MS = 1_000;

export interface CensusSources {
  hostId: string;
  namespace: string;
  connection: Connection;
  repositories(): ConnectedRepository[];
  log(message: string, fields: Record<string, unknown>): void;
}

export class RepositoryCensus {
  private counted: { at: number; counts: Promise<Map<string, Record<ImageState, number>>> } | null = null;

  constructor(registry: Registry, private readonly sources: CensusSources) {
    const host = sources.hostId;
    const images: Gauge<'repository' | 'status' | 'host'> = new Gauge({
      name: 'diskflow_images',
      help: 'Images of each repository this host has connected, by status as recorded on the repository (removed: awaiting clean)',
      labelNames: ['repository', 'status', 'host'],
      registers: [registry],
      collect: async () => {
        const counts = await this.imageCounts();
        images.reset();
        for (const [repository, byState] of counts) for (const status of IMAGE_STATES) images.set({ repository, status, host }, byState[status]);
      },
    });
    const waitingOldest = new Gauge({
      name: 'diskflow_steps_waiting_oldest_seconds',
      help: 'Age of the oldest step waiting for a host, per task queue (0: none waiting)',
      labelNames: ['repository', 'queue', 'host'],
      registers: [registry],
    });
    const waiting: Gauge<'repository' | 'queue' | 'host'> = new Gauge({
      name: 'diskflow_steps_waiting',
      help: 'Steps scheduled but not taken by any host: on the repository\'s queue, its SRM\'s, or this host\'s own (approximate, from the server)',
      labelNames: ['repository', 'queue', 'host'],
      registers: [registry],
      collect: async () => {
        const backlogs = await this.backlogs();
        waiting.reset();
        waitingOldest.reset();
        for (const b of backlogs) {
          waiting.set({ repository: b.repository, queue: b.queue, host }, b.count);
          waitingOldest.set({ repository: b.repository, queue: b.queue, host }, b.oldestSeconds);
        }
      },
    });
  }

  private imageCounts(): Promise<Map<string, Record<ImageState, number>>> {
    if (!this.counted || Date.now() - this.counted.at > CENSUS_MAX_AGE_MS) {
      this.counted = { at: Date.now(), counts: this.countImages() };
    }
    return this.counted.counts;
  }

  private async countImages(): Promise<Map<string, Record<ImageState, number>>> {
    const counts = new Map<string, Record<ImageState, number>>();
    for (const { repoId, repository } of this.sources.repositories()) {
      try {
        const states = await repository.listRecords('image', (raw) => {
          const record = raw as { status?: string; removed?: unknown };
          return record.removed ? 'removed' : record.status;
        });
        const byState = Object.fromEntries(IMAGE_STATES.map((s) => [s, 0])) as Record<ImageState, number>;
        for (const state of states) if (IMAGE_STATES.includes(state as ImageState)) byState[state as ImageState]++;
        counts.set(repoId, byState);
      } catch (error) {
        // A repository that cannot be read now has no figures, rather than wrong ones.
        this.sources.log('could not count images for metrics', { repoId, error: (error as Error).message });
      }
    }
    return counts;
  }

  private async backlogs(): Promise<{ repository: string; queue: string; count: number; oldestSeconds: number }[]> {
    const queues = [
      { repository: '', queue: 'host', taskQueue: hostTaskQueue(this.sources.hostId) },
      ...this.sources.repositories().flatMap(({ repoId, repository }) => [
        { repository: repoId, queue: 'repository', taskQueue: repoTaskQueue(repository.header.uuid) },
        ...(repository.traits.needsSrm ? [{ repository: repoId, queue: 'srm', taskQueue: srmTaskQueue(repository.header.uuid) }] : []),
      ]),
    ];
    const { connection, namespace } = this.sources;
    const results = await Promise.all(
      queues.map(async ({ repository, queue, taskQueue }) => {
        try {
          const { stats } = await connection.withDeadline(Date.now() + 5_000, () =>
            connection.workflowService.describeTaskQueue({
              namespace,
              taskQueue: { name: taskQueue, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
              taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
              reportStats: true,
            }),
          );
          if (!stats) return null;
          const age = stats.approximateBacklogAge;
          const oldestSeconds = Number(age?.seconds ?? 0) + (age?.nanos ?? 0) / 1e9;
          return { repository, queue, count: Number(stats.approximateBacklogCount ?? 0), oldestSeconds };
        } catch (error) {
          this.sources.log('could not read a task queue backlog for metrics', { taskQueue, error: (error as Error).message });
          return null;
        }
      }),
    );
    return results.filter((r) => r !== null);
  }
}
