/**
 * Pull-mode backup over NBD (serveBackup), as oVirt's backup API: a snapshot or a stopped disk
 * exposed read-only by a qemu-storage-daemon on this host, with, when asked, the dirty bitmap
 * that counted every change since an earlier copy, so `nbdinfo --map=qemu:dirty-bitmap:NAME`
 * lists only the extents that changed and `nbdcopy` (or any NBD client) pulls only those.
 *
 * Unlike a served disk's daemon, this one is tied to its step: it dies with the worker, and the
 * retried step starts it again. Clients connect to a socket diskflow owns, in front of the
 * daemon's own: diskflow sees every connection and byte, so an export nobody has used for the
 * idle timeout ends by itself. Lives in DISKFLOW_HOME/backups/<imageId>/ (nbd.sock: clients;
 * qsd.sock: the daemon's, private).
 */
import { Context, getClient } from '@temporalio/activity';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { connect, createServer, Server, Socket } from 'node:net';
import { join } from 'node:path';
import { DiskflowError } from '../../api/errors';
import { EXPORT_READY_SIGNAL, ExportReady, PROGRESS_SIGNAL, StepProgress } from '../../api/progress';
import type { ActivityDeps } from '../deps';
import { bitmapOwner, judgeTracking } from '../images/change-tracking';
import { readChain, readImage, requireImage } from '../images/image-store';
import type { ImageRecord, VolumeRecord } from '../images/records';
import { listBitmaps } from '../qemu/bitmaps';
import { spawnTied } from '../process';
import type { Repository } from '../repository/repository';
import { nodeName, volumeNode } from './graph';

const SOCKET_PATH_MAX = 107;
const START_TIMEOUT_MS = 30_000;
const PROGRESS_EVERY_MS = 1000;

export interface BackupExportStep {
  repoUuid: string;
  imageId: string;
  operationId: string;
  /** The copy whose changes since are exported as a dirty bitmap (null: a full backup). */
  since: string | null;
  idleTimeoutSeconds: number;
}

export type ExportEnd = { ended: 'idle' | 'stopped'; servedBytes: number };

/**
 * The bitmap that counted every change of `image` since copy `since`: on its top volume, named
 * after the copy (change-tracking.ts), and trusted only as a later incremental copy would trust
 * it. For a snapshot, the bitmap on its (frozen) volume counted the writes of its disk from the
 * copy until the snapshot froze it. INVALID_ARGUMENT, saying why, when the changes are unknown.
 */
async function bitmapSince(deps: ActivityDeps, repoUuid: string, image: ImageRecord, top: VolumeRecord, topPath: string, since: string): Promise<string> {
  const unknown = (why: string) =>
    new DiskflowError('INVALID_ARGUMENT', `since: the changes of image ${image.imageId} since copy ${since} are not known (${why}); serve it without --since for a full backup`);
  if (top.format !== 'qcow2') throw unknown('its volume is raw, which holds no dirty bitmaps');
  const bitmaps = await listBitmaps(topPath);
  const bitmap = bitmaps.find((b) => bitmapOwner(b.name)?.imageId === since);
  if (!bitmap) throw unknown(`no bitmap of copy ${since} on its volume: that copy was not made from this image's current volume`);
  const owner = bitmapOwner(bitmap.name)!;
  let copyRepo: Repository;
  try {
    copyRepo = deps.connections.byUuid(owner.repoUuid);
  } catch {
    throw unknown(`the repository of copy ${since} (${owner.repoUuid}) is not connected on ${deps.hostId}, so its record cannot be read`);
  }
  const copy = await readImage(copyRepo, since);
  if (!copy || copy.removed) throw unknown(`copy ${since} is not in its repository any more`);
  const tracking = copy.changeTracking;
  if (image.kind === 'snapshot') {
    // A snapshot is its disk's volume, frozen: the copy's bitmap counted the disk's writes up to the freeze.
    if (tracking?.volumeId !== top.volumeId) throw unknown('the copy was not made from the volume this snapshot froze');
    if (bitmap.flags.includes('in-use')) throw unknown(`bitmap ${bitmap.name} is inconsistent (its writer did not close the image)`);
    if (copy.size !== image.size) throw unknown('the disk was resized since');
    return bitmap.name;
  }
  const verdict = judgeTracking(tracking, copy.size, { repoUuid, ...sourceOf(image) }, bitmaps);
  if (!verdict.trusted) throw unknown(verdict.reason);
  return verdict.bitmap;
}

const sourceOf = (image: ImageRecord) => ({ imageId: image.imageId, volumeId: image.volumeId, contentEpoch: image.contentEpoch, chainEpoch: image.chainEpoch, size: image.size });

/** Holds the export until it is stopped (cancellation), has been idle for its timeout, or fails. */
export async function runBackupExport(deps: ActivityDeps, step: BackupExportStep): Promise<ExportEnd> {
  const context = Context.current();
  const repo = deps.connections.byUuid(step.repoUuid);
  const image = await requireImage(repo, step.imageId);
  if (image.backupExport?.operationId !== step.operationId) {
    throw new DiskflowError('IMAGE_BUSY', `image ${step.imageId} is no longer exported by this operation (${step.operationId})`, false);
  }
  const chain = await readChain(repo, image.volumeId);
  const volumes: { volume: VolumeRecord; path: string }[] = [];
  for (const volume of [...chain].reverse()) volumes.unshift({ volume, path: await repo.activate(volume.volumeId, volume.format) });
  const bitmap = step.since ? await bitmapSince(deps, step.repoUuid, image, volumes[0].volume, volumes[0].path, step.since) : null;

  const dir = join(deps.connections.host.home, 'backups', step.imageId);
  const address = join(dir, 'nbd.sock');
  const daemonSocket = join(dir, 'qsd.sock');
  if (Buffer.byteLength(address) > SOCKET_PATH_MAX) throw new DiskflowError('INVALID_ARGUMENT', `DISKFLOW_HOME is too long for a backup export's socket (${address} is over ${SOCKET_PATH_MAX} bytes)`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });

  // The chain, read-only, base first; the export on the top node, with the bitmap when asked.
  const args: string[] = [];
  let below: string | null = null;
  for (const { volume, path } of [...volumes].reverse()) {
    args.push('--blockdev', JSON.stringify(await volumeNode({ volumeId: volume.volumeId, format: volume.format, path }, below, { directIo: repo.directIo, readOnly: true })));
    below = nodeName(volume.volumeId);
  }
  args.push('--nbd-server', JSON.stringify({ addr: { type: 'unix', path: daemonSocket } }));
  args.push('--export', JSON.stringify({ type: 'nbd', id: 'backup', 'node-name': below, name: step.imageId, writable: false, ...(bitmap ? { bitmaps: [bitmap] } : {}) }));
  const log = openSync(join(dir, 'qsd.log'), 'a');
  const daemon = spawnTied('qemu-storage-daemon', args, { stdio: ['ignore', log, log], env: { ...process.env, LC_ALL: 'C' } });
  closeSync(log);
  let exited: string | null = null;
  const exitedNow = new Promise<void>((resolve) => daemon.once('exit', (code, signal) => ((exited = `${signal ?? code}`), resolve())));
  const logTail = async () => (await readFile(join(dir, 'qsd.log'), 'utf8').catch(() => '')).trim().split('\n').slice(-3).join(' / ') || 'no message';

  const proxy = new ExportProxy(daemonSocket);
  try {
    for (const deadline = Date.now() + START_TIMEOUT_MS; !existsSync(daemonSocket); ) {
      if (exited !== null) throw new DiskflowError('STORAGE_ERROR', `qemu-storage-daemon exporting image ${step.imageId} exited (${exited}): ${await logTail()}`);
      if (Date.now() > deadline) throw new DiskflowError('STORAGE_ERROR', `qemu-storage-daemon exporting image ${step.imageId} did not start within ${START_TIMEOUT_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await proxy.listen(address);
    const ready: ExportReady = { address: `nbd+unix:///${step.imageId}?socket=${address}`, exportName: step.imageId, socket: address, bitmap, hostId: deps.hostId };
    await signalWorkflow(EXPORT_READY_SIGNAL, ready);
    context.log.info('backup export ready', { imageId: step.imageId, address, bitmap });

    const idleMs = step.idleTimeoutSeconds * 1000;
    let reported = -1;
    let lastReport = 0;
    for (;;) {
      if (context.cancellationSignal.aborted) return { ended: 'stopped', servedBytes: proxy.bytes };
      if (exited !== null) throw new DiskflowError('STORAGE_ERROR', `qemu-storage-daemon exporting image ${step.imageId} exited (${exited}): ${await logTail()}`);
      if (proxy.idleSince() >= idleMs) return { ended: 'idle', servedBytes: proxy.bytes };
      if (proxy.bytes !== reported && Date.now() - lastReport >= PROGRESS_EVERY_MS) {
        reported = proxy.bytes;
        lastReport = Date.now();
        await signalWorkflow(PROGRESS_SIGNAL, progressOf(step.imageId, deps.hostId, proxy.bytes));
      }
      await Promise.race([new Promise((r) => setTimeout(r, 200)), context.cancelled.catch(() => undefined), exitedNow]);
    }
  } finally {
    await proxy.close();
    if (exited === null) {
      daemon.kill('SIGTERM');
      await Promise.race([exitedNow, new Promise((r) => setTimeout(r, 10_000))]);
      if (exited === null) daemon.kill('SIGKILL');
    }
    await rm(dir, { recursive: true, force: true });
  }
}

const progressOf = (imageId: string, hostId: string, bytes: number): StepProgress => ({
  imageId,
  stage: { current: 1, total: 1 },
  percentComplete: -1,
  doneBytes: bytes,
  totalBytes: null,
  hostId,
  at: new Date().toISOString(),
});

/** Tells the workflow of this step (best effort for progress; the ready signal must arrive). */
async function signalWorkflow(name: string, value: unknown): Promise<void> {
  const { workflowExecution } = Context.current().info;
  if (!workflowExecution) return;
  await getClient().workflow.getHandle(workflowExecution.workflowId, workflowExecution.runId).signal(name, value);
}

/**
 * The socket clients connect to: each connection is piped to one of its own to the daemon, and
 * every byte counted, so the export knows when it was last used.
 */
class ExportProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private lastUse = Date.now();
  bytes = 0;

  constructor(private readonly upstream: string) {}

  async listen(path: string): Promise<void> {
    this.server = createServer((client) => this.pipe(client));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(path, () => resolve());
    });
  }

  /** Milliseconds since a client last connected, moved a byte or went away. */
  idleSince(): number {
    return Date.now() - this.lastUse;
  }

  private pipe(client: Socket): void {
    const daemon = connect(this.upstream);
    this.lastUse = Date.now();
    for (const s of [client, daemon]) {
      this.sockets.add(s);
      s.on('data', (chunk: Buffer) => {
        this.lastUse = Date.now();
        if (s === daemon) this.bytes += chunk.length;
      });
      s.on('close', () => {
        this.sockets.delete(s);
        this.lastUse = Date.now();
        client.destroy();
        daemon.destroy();
      });
      s.on('error', () => undefined);
    }
    client.pipe(daemon);
    daemon.pipe(client);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    if (this.server) await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}
