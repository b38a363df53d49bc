/**
 * The block layer diskflow owns: one qemu-storage-daemon per image served for a VM on this host
 * (prepareImage with `serve`), living in DISKFLOW_HOME/served/<imageId>/:
 *
 *   serving.json   what it serves: repository, image, mode (written before the daemon starts)
 *   qmp.sock       its QMP monitor: every live operation is a command sent there
 *   nbd.sock | vhost.sock | disk   what the VM opens (NBD, vhost-user-blk, a FUSE file)
 *   qsd.pid, qsd.log
 *
 * One daemon per image, not per host: a daemon that fails takes one disk with it, teardown
 * stops one process, and a live job on one image never waits on another's graph; a daemon costs
 * a few tens of MiB. The daemon outlives its worker (its own session, no death signal): a VM
 * never loses its disk because diskflow restarted, and a restarted worker finds it again here.
 */
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { DiskflowError } from '../../api/errors';
import { ServeMode } from '../../api/values';
import { processAlive, spawnTied } from '../process';
import { Qmp } from '../qemu/qmp';

/** What a served directory says it serves; read back on restart (this host's own state). */
export const Serving = z.object({
  schema: z.literal('diskflow.serving/1'),
  repoUuid: z.string(),
  imageId: z.string(),
  mode: ServeMode,
  since: z.string(),
});
export type Serving = z.infer<typeof Serving>;

/** Unix socket paths are limited to 107 bytes. */
const SOCKET_PATH_MAX = 107;
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;

export const EXPORT_ID = 'disk';

export class ServingDaemon {
  readonly dir: string;

  constructor(
    home: string,
    readonly imageId: string,
  ) {
    this.dir = join(home, 'served', imageId);
  }

  get qmpPath(): string {
    return join(this.dir, 'qmp.sock');
  }
  private get pidPath(): string {
    return join(this.dir, 'qsd.pid');
  }
  private get servingPath(): string {
    return join(this.dir, 'serving.json');
  }

  /** What a VM opens for `mode`: an NBD URI (export named after the image), a socket, a file. */
  address(mode: ServeMode): string {
    if (mode === 'nbd') return `nbd+unix:///${this.imageId}?socket=${join(this.dir, 'nbd.sock')}`;
    if (mode === 'vhost-user-blk') return join(this.dir, 'vhost.sock');
    return join(this.dir, 'disk');
  }

  /** The daemon's pid, if one runs for this image (a pid reused by another process does not count). */
  async pid(): Promise<number | null> {
    const text = await readFile(this.pidPath, 'utf8').catch(() => '');
    const pid = Number(text.trim());
    if (!(pid > 0) || !processAlive(pid)) return null;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    return cmdline.includes(this.qmpPath) ? pid : null;
  }

  /** Whether its daemon has run at all (it writes its pid file as it starts). */
  started(): boolean {
    return existsSync(this.pidPath);
  }

  async serving(): Promise<Serving | null> {
    const text = await readFile(this.servingPath, 'utf8').catch(() => null);
    if (text === null) return null;
    const parsed = Serving.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  }

  /**
   * Starts a daemon with its monitor and, for NBD, its server; the graph and the export are
   * made over QMP by the caller (graph.ts). A daemon already running for the image is kept.
   */
  async start(serving: Omit<Serving, 'schema' | 'since'>): Promise<void> {
    if (await this.pid()) return;
    for (const path of [this.qmpPath, join(this.dir, 'nbd.sock'), join(this.dir, 'vhost.sock')]) {
      if (Buffer.byteLength(path) > SOCKET_PATH_MAX) {
        throw new DiskflowError('INVALID_ARGUMENT', `DISKFLOW_HOME is too long for a served disk's sockets (${path} is over ${SOCKET_PATH_MAX} bytes)`);
      }
    }
    await rm(this.dir, { recursive: true, force: true });
    await mkdir(this.dir, { recursive: true });
    await writeFile(this.servingPath, JSON.stringify({ schema: 'diskflow.serving/1', ...serving, since: new Date().toISOString() }, null, 2) + '\n');
    if (serving.mode === 'fuse') await writeFile(this.address('fuse'), '');
    const args = [
      '--chardev', `socket,id=qmp,path=${this.qmpPath},server=on,wait=off`,
      '--monitor', 'chardev=qmp',
      '--pidfile', this.pidPath,
      ...(serving.mode === 'nbd' ? ['--nbd-server', `addr.type=unix,addr.path=${join(this.dir, 'nbd.sock')}`] : []),
    ];
    const log = openSync(join(this.dir, 'qsd.log'), 'a');
    try {
      // Its own session and no death signal: the daemon must outlive the worker that started it.
      const child = spawnTied('qemu-storage-daemon', args, { outliveWorker: true, detached: true, stdio: ['ignore', log, log], env: { ...process.env, LC_ALL: 'C' } });
      child.unref();
      let exit: number | null | undefined;
      child.once('exit', (code) => (exit = code));
      for (const deadline = Date.now() + START_TIMEOUT_MS; !existsSync(this.qmpPath) || !(await this.pid()); ) {
        if (exit !== undefined) throw new DiskflowError('STORAGE_ERROR', `qemu-storage-daemon for image ${this.imageId} exited (${exit}): ${await this.logTail()}`);
        if (Date.now() > deadline) throw new DiskflowError('STORAGE_ERROR', `qemu-storage-daemon for image ${this.imageId} did not start within ${START_TIMEOUT_MS / 1000} s`);
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      closeSync(log);
    }
  }

  /** The daemon's monitor; STORAGE_ERROR when no daemon serves the image. */
  async connect(): Promise<Qmp> {
    if (!(await this.pid())) throw new DiskflowError('STORAGE_ERROR', `no qemu-storage-daemon serves image ${this.imageId} on this host`);
    return Qmp.connect(this.qmpPath, () => undefined);
  }

  /** Runs `fn` with the daemon's monitor, closed afterwards (the monitor takes one client at a time). */
  async withMonitor<T>(fn: (qmp: Qmp) => Promise<T>): Promise<T> {
    const qmp = await this.connect();
    try {
      return await fn(qmp);
    } finally {
      qmp.close();
    }
  }

  /**
   * Stops serving: `quit` flushes and closes every image (persistent bitmaps are written back),
   * then the directory goes. A daemon that does not answer is killed. Idempotent.
   */
  async stop(): Promise<void> {
    const pid = await this.pid();
    if (pid) {
      await this.withMonitor((qmp) => qmp.execute('quit')).catch(() => undefined);
      const deadline = Date.now() + STOP_TIMEOUT_MS;
      while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      if (processAlive(pid)) process.kill(pid, 'SIGKILL');
    }
    await rm(this.dir, { recursive: true, force: true });
  }

  async logTail(): Promise<string> {
    const text = await readFile(join(this.dir, 'qsd.log'), 'utf8').catch(() => '');
    return text.trim().split('\n').slice(-3).join(' / ') || 'no message';
  }
}

/** The images this host serves, as its DISKFLOW_HOME says (whatever their daemons' state). */
export async function servedHere(home: string): Promise<{ daemon: ServingDaemon; serving: Serving }[]> {
  const names = await readdir(join(home, 'served')).catch(() => [] as string[]);
  const found: { daemon: ServingDaemon; serving: Serving }[] = [];
  for (const name of names) {
    const daemon = new ServingDaemon(home, name);
    const serving = await daemon.serving();
    if (serving) found.push({ daemon, serving });
  }
  return found;
}
