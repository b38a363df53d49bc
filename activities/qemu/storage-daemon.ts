/**
 * The incremental copy's data mover: a qemu-storage-daemon, started for one copy, runs
 * `blockdev-backup` with `sync: bitmap` from the source (its chain, opened read-only) into the
 * new qcow2 overlay, reading and writing only the clusters the bitmap marks dirty. The bitmap
 * is left as it is (`bitmap-mode: never`): it belongs to the earlier copy, and a copy that is
 * stopped and started again must find it unchanged.
 *
 * The daemon never outlives its copy: it is killed when the step is cancelled or fails, and
 * started under `setpriv --pdeathsig KILL`, so a worker killed outright takes it along. Its
 * socket lives in a private temporary directory (named after the worker's pid) removed
 * afterwards, or by the next copy on the host when the worker died first.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { DiskflowError } from '../../api/errors';
import { processAlive, spawnTied } from '../process';
import type { VolumeFormat } from './qemu-img';
import { Qmp, QmpEvent } from './qmp';

export interface BlockEndpoint {
  path: string;
  format: VolumeFormat;
  directIo: boolean;
}

export interface BitmapBackupOptions {
  /** Bytes per second; unlimited when absent. */
  rateLimit?: number;
  signal?: AbortSignal;
  /** Bytes done and to do, as the job reports them. */
  onProgress?: (done: number, total: number) => void;
  /** Called with the bytes the bitmap marks dirty before the target is opened (room for them on block storage). */
  beforeWrite?: (dirtyBytes: number) => Promise<void>;
}

const escape = (value: string) => value.replace(/,/g, ',,');

/** A blockdev-add node of one image (and its backing chain, opened from its header). */
async function node(name: string, endpoint: BlockEndpoint, readOnly: boolean): Promise<Record<string, unknown>> {
  const protocol = (await stat(endpoint.path)).isBlockDevice() ? 'host_device' : 'file';
  return { driver: endpoint.format, 'node-name': name, 'read-only': readOnly, cache: { direct: endpoint.directIo }, file: { driver: protocol, filename: endpoint.path } };
}

const POLL_MS = 500;
const DIR_PREFIX = 'diskflow-qsd-';

/** Socket directories left by a worker killed mid-copy (its daemon died with it): removed. */
async function removeStaleDirs(): Promise<void> {
  for (const name of await readdir(tmpdir()).catch(() => [] as string[])) {
    const pid = Number(name.slice(DIR_PREFIX.length).split('-')[0]);
    if (name.startsWith(DIR_PREFIX) && pid > 0 && !processAlive(pid)) await rm(join(tmpdir(), name), { recursive: true, force: true }).catch(() => undefined);
  }
}

/** Copies the clusters `bitmap` marks dirty in `source` into `target` (a qcow2 overlay of the earlier copy). */
export async function backupDirtyClusters(source: BlockEndpoint, target: BlockEndpoint, bitmap: string, options: BitmapBackupOptions = {}): Promise<void> {
  const { signal } = options;
  signal?.throwIfAborted();
  await removeStaleDirs();
  // Named after the worker (stale-dir removal) and the target (`ps` shows which copy a daemon serves).
  const dir = await mkdtemp(join(tmpdir(), `${DIR_PREFIX}${process.pid}-${basename(target.path).replace(/\.[^.]*$/, '').slice(0, 40)}-`));
  const socketPath = join(dir, 'qmp.sock');
  const args = ['--chardev', `socket,id=qmp,path=${escape(socketPath)},server=on,wait=off`, '--monitor', 'chardev=qmp'];
  const child = spawnTied('qemu-storage-daemon', args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-2000)));
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(-1));
  });
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code));
  const daemonFailed = () => new DiskflowError('STORAGE_ERROR', `qemu-storage-daemon exited (${exitCode}): ${stderr.trim().split('\n').slice(-3).join(' / ') || 'no message'}`);

  let qmp: Qmp | null = null;
  let settle: { resolve: () => void; reject: (error: Error) => void } | null = null;
  const finished = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  finished.catch(() => undefined);
  const onAbort = () => settle?.reject(signal?.reason instanceof Error ? signal.reason : new Error('copy stopped'));
  signal?.addEventListener('abort', onAbort, { once: true });
  void exited.then(() => settle?.reject(daemonFailed()));
  const onEvent = (event: QmpEvent) => {
    if (event.event === 'BLOCK_JOB_COMPLETED') {
      const error = event.data?.error;
      if (error) settle?.reject(new DiskflowError('STORAGE_ERROR', `incremental copy failed: ${String(error)}`));
      else settle?.resolve();
    } else if (event.event === 'BLOCK_JOB_CANCELLED') {
      settle?.reject(new DiskflowError('STORAGE_ERROR', 'incremental copy job was cancelled inside qemu-storage-daemon'));
    }
  };

  try {
    // The daemon creates its socket as it starts.
    for (let waited = 0; !qmp; waited += 20) {
      signal?.throwIfAborted();
      if (exitCode !== undefined) throw daemonFailed();
      if (waited > 30_000) throw new DiskflowError('STORAGE_ERROR', 'qemu-storage-daemon did not open its monitor within 30 s');
      if (existsSync(socketPath)) qmp = await Qmp.connect(socketPath, onEvent).catch(() => null);
      if (!qmp) await new Promise((r) => setTimeout(r, 20));
    }
    await qmp.execute('blockdev-add', await node('source', source, true));
    const nodes = await qmp.execute<{ 'node-name': string; 'dirty-bitmaps'?: { name: string; count: number }[] }[]>('query-named-block-nodes', { flat: true });
    const dirty = nodes.find((n) => n['node-name'] === 'source')?.['dirty-bitmaps']?.find((b) => b.name === bitmap);
    if (!dirty) throw new DiskflowError('STORAGE_ERROR', `bitmap ${bitmap} is not on the source`);
    await options.beforeWrite?.(dirty.count);
    await qmp.execute('blockdev-add', await node('target', target, false));
    const backup: Record<string, unknown> = { 'job-id': 'copy', device: 'source', target: 'target', sync: 'bitmap', bitmap, 'bitmap-mode': 'never', 'auto-dismiss': true };
    if (options.rateLimit) backup.speed = options.rateLimit;
    await qmp.execute('blockdev-backup', backup);
    let done = false;
    void finished.then(
      () => (done = true),
      () => (done = true),
    );
    while (!done) {
      await Promise.race([finished.catch(() => undefined), new Promise((r) => setTimeout(r, POLL_MS))]);
      if (done) break;
      const jobs = await qmp.execute<{ device: string; offset: number; len: number }[]>('query-block-jobs').catch(() => []);
      const job = jobs.find((j) => j.device === 'copy');
      if (job) options.onProgress?.(job.offset, job.len);
    }
    await finished;
    // quit closes both images: the overlay's metadata is flushed before the daemon exits.
    await qmp.execute('quit').catch(() => undefined);
    const code = await exited;
    if (code !== 0) throw daemonFailed();
  } finally {
    signal?.removeEventListener('abort', onAbort);
    settle = null;
    qmp?.close();
    if (exitCode === undefined) child.kill('SIGKILL');
    await exited;
    await rm(dir, { recursive: true, force: true });
  }
}
