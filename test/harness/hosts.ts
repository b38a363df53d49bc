/**
 * Hosts for tests: real `diskflow worker` processes, each with its own DISKFLOW_HOME, against
 * the run's Temporal server. Every process started here is stopped by the test file that
 * started it (stopAllHosts in afterAll), and killed if the test process exits first.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { inject } from 'vitest';
import { StorageClient } from '../../client/storage-client';
import { unmountUnder } from './mounts';

export const ROOT = resolve(__dirname, '..', '..');
export const DISKFLOW_BIN = join(ROOT, 'bin', 'diskflow');

export interface TestHost {
  hostId: string;
  home: string;
  /** Lines the worker logged, parsed. */
  logs: Record<string, unknown>[];
  process: ChildProcess;
  /** Stops the worker: SIGTERM (a clean stop) or SIGKILL (a crash). */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the worker again on the same DISKFLOW_HOME, with `env` changed from its first start. */
  restart(env?: Record<string, string>): Promise<void>;
  /** Resolves when the worker process has exited (e.g. killed by a failpoint). */
  exited(): Promise<void>;
}

const live = new Set<ChildProcess>();
const homes: string[] = [];
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export function temporalAddress(): string {
  return inject('temporalAddress');
}

export function testEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, TEMPORAL_ADDRESS: temporalAddress(), DISKFLOW_LOG_LEVEL: 'info', ...extra };
}

function launch(hostId: string, home: string, logs: Record<string, unknown>[], env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(DISKFLOW_BIN, ['worker', '--host-id', hostId], {
    env: testEnv({ DISKFLOW_HOME: home, ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  child.on('exit', () => live.delete(child));
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker ${hostId} did not start in 60 s: ${stderr}`)), 60_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'host worker started') {
          clearTimeout(timer);
          resolvePromise(child);
        }
      } catch {
        logs.push({ msg: line });
      }
    });
    // 'close': after its output is read to the end, so the message it died with is all there.
    child.on('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`worker ${hostId} exited with ${code} before it started: ${stderr}`));
    });
  });
}

async function terminate(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  const timeout = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timeout);
}

/** Starts a host worker; `env` sets its tunables (DISKFLOW_COPY_CHUNK, DISKFLOW_COPY_RATE_LIMIT, ...). */
export async function startHost(hostId: string, env: Record<string, string> = {}): Promise<TestHost> {
  const home = mkdtempSync(join(tmpdir(), `diskflow-${hostId}-`));
  homes.push(home);
  const logs: Record<string, unknown>[] = [];
  const host: TestHost = {
    hostId,
    home,
    logs,
    process: await launch(hostId, home, logs, env),
    async stop(signal = 'SIGTERM') {
      await terminate(host.process, signal);
    },
    async restart(changes = {}) {
      await terminate(host.process, 'SIGTERM');
      host.process = await launch(hostId, home, logs, { ...env, ...changes });
    },
    exited() {
      const child = host.process;
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      return new Promise((r) => child.once('exit', () => r()));
    },
  };
  return host;
}

/**
 * Starts a worker that must refuse to start: resolves to its exit code and stderr. `prepare`
 * sets up its DISKFLOW_HOME first. A worker that starts after all is stopped, and the call fails.
 */
export async function startHostExpectingExit(
  hostId: string,
  env: Record<string, string> = {},
  prepare: (home: string) => void = () => undefined,
): Promise<{ code: number | null; stderr: string; home: string }> {
  const home = mkdtempSync(join(tmpdir(), `diskflow-${hostId}-`));
  homes.push(home);
  prepare(home);
  const logs: Record<string, unknown>[] = [];
  try {
    const child = await launch(hostId, home, logs, env);
    await terminate(child, 'SIGTERM');
    throw new Error(`worker ${hostId} started, but should have refused to`);
  } catch (error) {
    const match = /exited with (\S+) before it started: ([\s\S]*)$/.exec((error as Error).message);
    if (!match) throw error;
    return { code: match[1] === 'null' ? null : Number(match[1]), stderr: match[2], home };
  }
}

/** Stops every worker this process started and removes their homes. */
export async function stopAllHosts(): Promise<void> {
  await Promise.all([...live].map((child) => terminate(child, 'SIGTERM')));
  // A stopped host keeps its repository mounts (docs/ARCHITECTURE.md): unmount them first, so
  // removing the home never reaches into a repository through its mount point.
  for (const home of homes.splice(0)) {
    await stopServedDaemons(home);
    unmountUnder(home);
    rmSync(home, { recursive: true, force: true });
  }
}

/**
 * The daemons serving disks a test left prepared: they outlive their worker by design, so the
 * test stops them, by their pid files under the host's DISKFLOW_HOME (FUSE exports unmount as
 * their daemon exits).
 */
async function stopServedDaemons(home: string): Promise<void> {
  const served = join(home, 'served');
  if (!existsSync(served)) return;
  const pids = readdirSync(served)
    .map((name) => Number(readFileSafe(join(served, name, 'qsd.pid'))))
    .filter((pid) => pid > 0);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      continue;
    }
    for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  }
}

const readFileSafe = (path: string): string => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
};

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

export function clientFor(hostId: string): Promise<StorageClient> {
  return StorageClient.connect({ address: temporalAddress(), hostId });
}
