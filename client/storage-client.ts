/**
 * The engine-facing API (API.md, "Client API"). Every call validates its input before anything
 * is started, runs as one Temporal workflow, and fails with a DiskflowError carrying an API code.
 * Calls that change something return once their intent is durable on the repository (the
 * `persisted` update of Update-With-Start), never after data has moved.
 */
import { createHash, randomUUID } from 'node:crypto';
import {
  Client,
  Connection,
  WithStartWorkflowOperation,
  WorkflowExecutionAlreadyStartedError,
} from '@temporalio/client';
import type { TLSConfig } from '@temporalio/client';
import { z } from 'zod';
import { DiskflowError } from '../api/errors';
import { describeFailure, toDiskflowError } from '../api/failures';
import type { RepoFormat } from '../api/formats';
import type { Fix, ImageStatus, PreparedImage, RepositoryConstraints } from '../api/image-status';
import {
  CheckStorageRepositoryInput,
  ConnectStorageRepositoryInput,
  FixStorageRepositoryInput,
  CopyImageInput,
  ExportImageInput,
  ImportImageInput,
  Measurement,
  MeasureImageInput,
  CreateSnapshotInput,
  ResizeVirtualDiskInput,
  ServeBackupInput,
  ServeBackupOutput,
  CreateVirtualDiskInput,
  DisconnectStorageRepositoryInput,
  GetStorageRepositoryConstraintsInput,
  RepositoryManagerInput,
  ImageRefInput,
  PrepareImageInput,
  TeardownImageInput,
  InitStorageRepositoryInput,
  ImagesPage,
  ListImagesPageInput,
  PERSISTED_UPDATE,
  RemoveImageInput,
  requestIdentity,
  WORKFLOW_CONTRACTS,
  WorkflowType,
} from '../api/operations';
import { HostOption } from '../api/options';
import type { ServeMode } from '../api/values';
import { WORKFLOW_TASK_QUEUE } from '../api/task-queues';
import { parseInput } from '../api/validation';
import { ImageId, RepoId } from '../api/values';
import { defaultHostId, stallAfterMs, temporalSettings } from '../config/environment';
import { findStalledOperations, StalledOperation } from './stalled-operations';
import { OperationProgress, PROGRESS_QUERY, STOP_EXPORT_SIGNAL } from '../api/progress';

/** The memo key holding the fingerprint of an operation's request (sha256 of its requestIdentity). */
const REQUEST_MEMO = 'diskflowRequest';

/** PendingActivityState SCHEDULED: no worker has the attempt yet. */
const SCHEDULED = 1;

export interface StorageClientOptions {
  address?: string;
  namespace?: string;
  tls?: TLSConfig;
  apiKey?: string;
  /** The host whose repoId handles this client uses (default: DISKFLOW_HOST_ID, else the host name). */
  hostId?: string;
}

type Json = Record<string, unknown>;

/** How long a read may wait for its host before it fails (the host's own step fails after 15 s). */
const READ_TIMEOUT = '2 minutes';

export class StorageClient {
  private constructor(
    readonly temporal: Client,
    private readonly connection: Connection,
    readonly hostId: string,
    private readonly address: string,
  ) {}

  static async connect(options: StorageClientOptions = {}): Promise<StorageClient> {
    const settings = { ...temporalSettings(), ...definedOnly(options) };
    const hostId = parseInput(HostOption, { hostId: options.hostId ?? defaultHostId() }, 'options').hostId!;
    // Lazy: bad input is refused before anything touches the network.
    const connection = Connection.lazy({ address: settings.address, tls: settings.tls, apiKey: settings.apiKey, connectTimeout: '5 seconds' });
    return new StorageClient(new Client({ connection, namespace: settings.namespace }), connection, hostId, settings.address);
  }

  async close(): Promise<void> {
    await this.connection.close();
  }

  // Repositories

  async initStorageRepository(repoFormat: RepoFormat, connectionParameters: Json, options: { hostId?: string } = {}): Promise<void> {
    const hostId = this.hostFrom(options);
    await this.call('initStorageRepository', this.check(InitStorageRepositoryInput, { hostId, repoFormat, connectionParameters }));
  }

  async connectStorageRepository(repoId: string, repoFormat: RepoFormat, connectionParameters: Json = {}, options: { hostId?: string } = {}): Promise<void> {
    const hostId = this.hostFrom(options);
    await this.call('connectStorageRepository', this.check(ConnectStorageRepositoryInput, { hostId, repoId, repoFormat, connectionParameters }));
  }

  async disconnectStorageRepository(repoId: string, options: { hostId?: string } = {}): Promise<void> {
    const hostId = this.hostFrom(options);
    await this.call('disconnectStorageRepository', this.check(DisconnectStorageRepositoryInput, { hostId, repoId }));
  }

  async getStorageRepositoryConstraints(repoId: string): Promise<RepositoryConstraints> {
    return this.call('getStorageRepositoryConstraints', this.check(GetStorageRepositoryConstraintsInput, { hostId: this.hostId, repoId }));
  }

  /** Makes a host (default: this client's) the repository's SRM; SRM_CONFLICT while another host is. */
  async startRepositoryManager(repoId: string, options: { hostId?: string } = {}): Promise<void> {
    await this.call('startRepositoryManager', this.check(RepositoryManagerInput, { hostId: this.hostFrom(options), repoId }));
  }

  /** The host gives the SRM role up. */
  async stopRepositoryManager(repoId: string, options: { hostId?: string } = {}): Promise<void> {
    await this.call('stopRepositoryManager', this.check(RepositoryManagerInput, { hostId: this.hostFrom(options), repoId }));
  }

  // Images

  async createVirtualDisk(targetRepoId: string, size: number, baseSnapshotId: string | null = null, userData: Json = {}, options: Json = {}): Promise<string> {
    const input = this.check(CreateVirtualDiskInput, { hostId: this.hostId, targetRepoId, size, baseSnapshotId, userData, options });
    const { imageId } = await this.operate('createVirtualDisk', input, input.options.requestId);
    return imageId;
  }

  async createSnapshot(targetRepoId: string, baseVirtualDiskId: string, userData: Json = {}, options: Json = {}): Promise<string> {
    const input = this.check(CreateSnapshotInput, { hostId: this.hostId, targetRepoId, baseVirtualDiskId, userData, options });
    const { imageId } = await this.operate('createSnapshot', input, input.options.requestId);
    return imageId;
  }

  async copyImage(targetRepoId: string, imageId: string, baseImageId: string | null = null, userData: Json = {}, options: Json = {}): Promise<string> {
    const input = this.check(CopyImageInput, { hostId: this.hostId, targetRepoId, imageId, baseImageId, userData, options });
    const result = await this.operate('copyImage', input, input.options.requestId);
    return result.imageId;
  }

  /**
   * Grows a virtual disk to `newSize` bytes; returns once the new size is persisted (the volume
   * grows by the fix that follows). Shrinking is INVALID_ARGUMENT; IMAGE_IN_USE while prepared
   * for a VM, unless served live as vhost-user-blk or fuse.
   */
  async resizeVirtualDisk(repositoryId: string, imageId: string, newSize: number, options: Json = {}): Promise<void> {
    const input = this.check(ResizeVirtualDiskInput, { hostId: this.hostId, repositoryId, imageId, newSize, options });
    await this.operate('resizeVirtualDisk', input, input.options.requestId);
  }

  /**
   * Pull-mode backup: exposes a snapshot or a stopped disk read-only over NBD on this client's
   * host and answers where, once clients may connect. With `since` (an earlier copy of the
   * image), the export carries the dirty bitmap of every change since (`answer.bitmap`). The
   * export (operation `answer.operationId`) runs until stopBackupExport, a cancel, or
   * `options.idleTimeoutSeconds` unused (default 300).
   */
  async serveBackup(repositoryId: string, imageId: string, since: string | null = null, options: Json = {}): Promise<ServeBackupOutput> {
    const input = this.check(ServeBackupInput, { hostId: this.hostId, repositoryId, imageId, since, options });
    return this.operate('serveBackup', input, input.options.requestId);
  }

  /** Ends the backup exports of an image that run (each ends its operation as completed); answers their operation ids. */
  async stopBackupExport(repositoryId: string, imageId: string): Promise<string[]> {
    const repoId = parseInput(RepoId, repositoryId, 'repositoryId');
    const image = parseInput(ImageId, imageId, 'imageId');
    try {
      await this.ensureConnected();
      const query = `WorkflowType = 'serveBackup' AND DiskflowRepo = '${repoId}' AND DiskflowImage = '${image}' AND ExecutionStatus = 'Running'`;
      const stopped: string[] = [];
      for await (const execution of this.temporal.workflow.list({ query })) {
        const handle = this.temporal.workflow.getHandle(execution.workflowId, execution.runId);
        await handle.signal(STOP_EXPORT_SIGNAL);
        await handle.result().catch(() => undefined);
        stopped.push(execution.workflowId);
      }
      return stopped;
    } catch (error) {
      throw this.failure(error);
    }
  }

  /**
   * Imports a file on this client's host (an absolute path) or an http(s) URL into targetRepoId;
   * answers the new image's id once persisted (the data moves by its fix, watched by status).
   */
  async importImage(targetRepoId: string, source: string, userData: Json = {}, options: Json = {}): Promise<string> {
    const input = this.check(ImportImageInput, { hostId: this.hostId, targetRepoId, source, userData, options });
    const result = await this.operate('importImage', input, input.options.requestId);
    return result.imageId;
  }

  /** Starts an export of the image into a new file at `path` on this host; answers its operationId (waitForOperation, operationProgress). */
  async exportImage(repositoryId: string, imageId: string, path: string, options: Json = {}): Promise<{ operationId: string }> {
    const input = this.check(ExportImageInput, { hostId: this.hostId, repositoryId, imageId, path, options });
    return this.operate('exportImage', input, input.options.requestId);
  }

  /** The room a copy of an image (`{ imageId }`) or an import (`{ location }`) needs in targetRepoId. */
  async measureImage(targetRepoId: string, source: { imageId: string } | { location: string }, options: Json = {}): Promise<Measurement> {
    return this.call('measureImage', this.check(MeasureImageInput, { hostId: this.hostId, targetRepoId, source, options }));
  }

  async removeImage(repositoryId: string, imageId: string, options: Json = {}): Promise<void> {
    const input = this.check(RemoveImageInput, { hostId: this.hostId, repositoryId, imageId, options });
    await this.operate('removeImage', input, input.options.requestId);
  }

  async getImageStatus(repositoryId: string, imageId: string): Promise<ImageStatus> {
    return this.call('getImageStatus', this.check(ImageRefInput, { hostId: this.hostId, repositoryId, imageId }));
  }

  /** Every image of the repository that is not removed, oldest first, fetched a page (one answer) at a time. */
  async listImages(repositoryId: string): Promise<ImageStatus[]> {
    const images: ImageStatus[] = [];
    for (let after: string | null = null; ; ) {
      const page = await this.listImagesPage(repositoryId, after);
      images.push(...page.images);
      if (!page.next) return images;
      after = page.next;
    }
  }

  /** The images after `after` (the `next` of the page before; null: from the first), as many as fit in one answer. */
  async listImagesPage(repositoryId: string, after: string | null = null): Promise<ImagesPage> {
    return this.call('listImagesPage', this.check(ListImagesPageInput, { hostId: this.hostId, repositoryId, after }));
  }

  /** Makes the image usable by a VM on the host; IMAGE_BUSY while an operation changes or copies it. */
  async prepareImage(repositoryId: string, imageId: string, options: { hostId?: string; serve?: ServeMode } = {}): Promise<PreparedImage> {
    const { serve, ...rest } = options;
    const hostId = this.hostFrom(rest);
    return this.call('prepareImage', this.check(PrepareImageInput, { hostId, repositoryId, imageId, options: serve ? { serve } : {} }));
  }

  /**
   * The VM on the host no longer uses the image. `fencedHostId`: release instead the mark of a
   * host the engine knows is fenced (dead, powered off), which cannot tear down for itself.
   */
  async teardownImage(repositoryId: string, imageId: string, options: { hostId?: string; fencedHostId?: string } = {}): Promise<void> {
    const { fencedHostId, ...rest } = options;
    const hostId = this.hostFrom(rest);
    await this.call('teardownImage', this.check(TeardownImageInput, { hostId, repositoryId, imageId, options: fencedHostId ? { fencedHostId } : {} }));
  }

  // Check and fix

  async checkStorageRepository(repositoryId: string, options: Json = {}): Promise<Fix[]> {
    return this.call('checkStorageRepository', this.check(CheckStorageRepositoryInput, { hostId: this.hostId, repositoryId, options }));
  }

  /**
   * Starts a fix and returns once it is accepted (its data authentic and current, its images
   * claimed). The operation id comes from the fix's data: the same fix asked twice is one run.
   */
  async fixStorageRepository(repositoryId: string, fix: Fix, options: Json = {}): Promise<{ operationId: string }> {
    const input = this.check(FixStorageRepositoryInput, { hostId: this.hostId, repositoryId, fix, options });
    const key = createHash('sha256').update(`${this.hostId}\0${repositoryId}\0${input.fix.data}`).digest('hex').slice(0, 40);
    // A fix that failed (its source repository was not connected, say) may be run again; one
    // still running is joined; one that completed changed the images it names, so its data is
    // stale: FIX_INVALID (not the old success), and a new check offers what is left to do.
    return this.operate('fixStorageRepository', input, key, 'ALLOW_DUPLICATE_FAILED_ONLY', (operationId) => {
      throw new DiskflowError('FIX_INVALID', `this fix already ran (operation ${operationId}) and the images it names have changed since: check the repository again for what is left to do`);
    });
  }

  /**
   * Running operations on the repository that made no progress for `afterMs` (default
   * DISKFLOW_STALL_AFTER, 10 minutes): steps that stopped moving, and steps no host has taken.
   */
  async stalledOperations(repositoryId: string, options: { afterMs?: number } = {}): Promise<StalledOperation[]> {
    const repoId = parseInput(RepoId, repositoryId, 'repositoryId');
    try {
      await this.ensureConnected();
      return await findStalledOperations(this.temporal, repoId, options.afterMs ?? stallAfterMs());
    } catch (error) {
      throw this.failure(error);
    }
  }

  /**
   * Live progress of a running operation: its `progress` query, plus what a retried step waits
   * for (the host that ran it died and no other has taken it yet), which only the server knows.
   */
  async operationProgress(operationId: string): Promise<OperationProgress | null> {
    const handle = this.temporal.workflow.getHandle(operationId);
    const progress = await handle.query<OperationProgress>(PROGRESS_QUERY).catch(() => null);
    if (!progress || progress.waitingFor || !progress.runsOn) return progress;
    const { raw } = await handle.describe().catch(() => ({ raw: null }));
    const retrying = raw?.pendingActivities?.find((a) => Number(a.attempt) > 1 && Number(a.state) === SCHEDULED);
    return retrying ? { ...progress, waitingFor: `${progress.runsOn}, attempt ${retrying.attempt}` } : progress;
  }

  /** Waits for an operation (a workflow id, e.g. a fix's operationId) to end; fails with its code. */
  async waitForOperation(operationId: string): Promise<void> {
    try {
      await this.ensureConnected();
      await this.temporal.workflow.getHandle(operationId).result();
    } catch (error) {
      throw this.failure(error);
    }
  }

  // Plumbing

  private hostFrom(options: { hostId?: string }): string {
    return parseInput(HostOption, options ?? {}, 'options').hostId ?? this.hostId;
  }

  private connected: Promise<void> | undefined;

  /** Connects on first use, failing within seconds when the server is not there. */
  private ensureConnected(): Promise<void> {
    this.connected ??= this.connection.ensureConnected().catch((error: unknown) => {
      this.connected = undefined;
      throw error;
    });
    return this.connected;
  }

  private failure(error: unknown): DiskflowError {
    const message = describeFailure(error);
    if (!(error instanceof DiskflowError) && /Failed to connect|UNAVAILABLE|ECONNREFUSED|No connection established/i.test(message)) {
      return new DiskflowError(
        'STORAGE_ERROR',
        `cannot reach Temporal at ${this.address} (is \`diskflow dev\` or your Temporal server running? TEMPORAL_ADDRESS says where)`,
      );
    }
    return toDiskflowError(error);
  }

  private check<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
    return parseInput(schema, input);
  }

  /** Runs a workflow to completion: reads and host-level calls. */
  private async call<W extends WorkflowType>(type: W, input: unknown): Promise<z.output<(typeof WORKFLOW_CONTRACTS)[W]['output']>> {
    try {
      await this.ensureConnected();
      return await this.temporal.workflow.execute(type, {
        taskQueue: WORKFLOW_TASK_QUEUE,
        workflowId: `${type}:${randomUUID()}`,
        args: [input],
        workflowExecutionTimeout: READ_TIMEOUT,
      });
    } catch (error) {
      throw this.failure(error);
    }
  }

  /**
   * Starts an operation and returns once it is persisted. The workflow id carries the requestId,
   * so the same request twice reaches the same workflow: one effect, one answer (a running
   * workflow answers the update again; a finished one is asked for its result). The same id
   * with other arguments is INVALID_ARGUMENT: the update carries the request, which the running
   * workflow compares with its own (workflows/persisted.ts), and a finished one is compared by
   * the fingerprint of its request kept in its memo.
   */
  private async operate<W extends WorkflowType>(
    type: W,
    input: unknown,
    requestId: string | undefined,
    workflowIdReusePolicy: 'REJECT_DUPLICATE' | 'ALLOW_DUPLICATE_FAILED_ONLY' = 'REJECT_DUPLICATE',
    /** The request ran to completion before: what to answer instead of its old result. */
    completedBefore?: (workflowId: string) => never,
  ): Promise<z.output<(typeof WORKFLOW_CONTRACTS)[W]['output']>> {
    const workflowId = `${type}:${requestId ?? randomUUID()}`;
    const fingerprint = createHash('sha256').update(requestIdentity(type, input) ?? '').digest('hex');
    const startWorkflowOperation = new WithStartWorkflowOperation(type, {
      taskQueue: WORKFLOW_TASK_QUEUE,
      workflowId,
      args: [input],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy,
      memo: { [REQUEST_MEMO]: fingerprint },
    });
    try {
      await this.ensureConnected();
      return (await this.temporal.workflow.executeUpdateWithStart(PERSISTED_UPDATE, { startWorkflowOperation, args: [input] })) as never;
    } catch (error) {
      if (requestId && error instanceof WorkflowExecutionAlreadyStartedError) {
        try {
          const handle = this.temporal.workflow.getHandle(workflowId);
          const described = await handle.describe();
          const memo = described.memo?.[REQUEST_MEMO];
          if (memo !== undefined && memo !== fingerprint) {
            throw new DiskflowError('INVALID_ARGUMENT', `operation ${workflowId} was started with other arguments: a requestId names one request; use another requestId for another request`);
          }
          if (completedBefore && described.status.name === 'COMPLETED') completedBefore(workflowId);
          return await handle.result();
        } catch (resultError) {
          throw this.failure(resultError);
        }
      }
      throw this.failure(error);
    }
  }
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
