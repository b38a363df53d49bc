/**
 * Runs the field's own tools (qemu-img, mount, lvm, dd, ...) with argument arrays, never a shell
 * string. No tool outlives its step: a cancelled activity's AbortSignal kills the child, and
 * every child is started under `setpriv --pdeathsig KILL`, so the kernel kills it when its
 * worker dies, even by SIGKILL (a qemu-img left writing a volume after its worker is gone would
 * race the retried step on another host). Only what must outlive the worker by design (a daemon
 * serving a VM's disk) is started with `outliveWorker`. A tool run to its end (`run`) is started
 * by the worker's spawner (spawner.ts), under the same death signal, so the worker is not forked.
 */
import { ChildProcess, spawn, SpawnOptions } from 'node:child_process';
import { DiskflowError } from '../api/errors';
import { startThroughSpawner, StartedTool, ToolEvents } from './spawner';

/**
 * spawn(2) of `command`, tied to this process: the kernel sends it SIGKILL when this process's
 * thread that started it ends (Node starts children from its main thread, which ends with the
 * process). setpriv sets the signal, then execs the command, so the child keeps its pid.
 */
export function spawnTied(command: string, args: readonly string[], options: SpawnOptions & { outliveWorker?: boolean } = {}): ChildProcess {
  const { outliveWorker, ...spawnOptions } = options;
  if (outliveWorker) return spawn(command, args, spawnOptions);
  return spawn('setpriv', ['--pdeathsig', 'KILL', '--', command, ...args], spawnOptions);
}

/** setpriv's own failure to start the command (exit 127 with this message): reported as the command missing. */
const NOT_EXECUTED = /^setpriv: failed to execute/m;

export interface RunOptions {
  signal?: AbortSignal;
  /** Called with each chunk of stdout as it arrives (progress parsing). */
  onStdout?: (chunk: string) => void;
  /** Exit codes that are not failures (e.g. `qemu-img compare` returns 1 for "differ"). */
  okExitCodes?: number[];
  env?: NodeJS.ProcessEnv;
  /** Not tied to the worker's life (a daemon that must outlive it by design); false for every tool. */
  outliveWorker?: boolean;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Output a tool prints when the storage under it is full: reported as NO_SPACE, not retried. */
const NO_SPACE = /No space left on device|ENOSPC|Insufficient free space/i;

/** Child processes this process has run so far, `command subcommand` -> count and ms, for the benchmarks' breakdowns (bench/breakdown.ts). */
export const processRuns = new Map<string, { count: number; ms: number }>();

export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const started = Date.now();
  const tally = () => {
    const key = `${command} ${args[0] ?? ''}`.trim();
    const entry = processRuns.get(key) ?? { count: 0, ms: 0 };
    processRuns.set(key, { count: entry.count + 1, ms: entry.ms + (Date.now() - started) });
  };
  return runUntallied(command, args, options).finally(tally);
}

function runUntallied(command: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) return reject(abortError(command, options.signal));
    let stdout = '';
    let stderr = '';
    const onAbort = () => tool.kill();
    const tool = startTool(command, args, options.env ?? { ...process.env, LC_ALL: 'C' }, !!options.outliveWorker, {
      stdout(chunk) {
        stdout += chunk;
        options.onStdout?.(chunk);
      },
      stderr(chunk) {
        stderr += chunk;
      },
      error(error) {
        options.signal?.removeEventListener('abort', onAbort);
        const hint = error.code === 'ENOENT' ? ` (is ${options.outliveWorker ? command : 'setpriv'} installed? run: npm run bootstrap)` : '';
        reject(new DiskflowError('STORAGE_ERROR', `${command}: ${error.message}${hint}`));
      },
      close(code, signal) {
        options.signal?.removeEventListener('abort', onAbort);
        if (options.signal?.aborted) return reject(abortError(command, options.signal));
        const exitCode = code ?? -1;
        if (exitCode === 127 && NOT_EXECUTED.test(stderr)) {
          return reject(new DiskflowError('STORAGE_ERROR', `${command}: not found (is ${command} installed? run: npm run bootstrap)`));
        }
        if (exitCode === 0 || options.okExitCodes?.includes(exitCode)) return resolve({ stdout, stderr, exitCode });
        const detail = (stderr.trim() || stdout.trim() || `killed by ${signal}`).split('\n').slice(-3).join(' / ');
        const code_ = NO_SPACE.test(stderr) ? 'NO_SPACE' : 'STORAGE_ERROR';
        reject(new DiskflowError(code_, `${command} ${args[0] ?? ''} failed (exit ${exitCode}): ${detail}`));
      },
    });
    options.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Starts a tool through the spawner (activities/spawner.ts) where there is one, else by a spawn of this process. */
function startTool(command: string, args: readonly string[], env: NodeJS.ProcessEnv, outliveWorker: boolean, events: ToolEvents): StartedTool {
  const viaSpawner = outliveWorker ? null : startThroughSpawner(command, args, env, events);
  if (viaSpawner) return viaSpawner;
  const child = spawnTied(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env, outliveWorker });
  child.stdout!.setEncoding('utf8').on('data', events.stdout);
  child.stderr!.setEncoding('utf8').on('data', events.stderr);
  child.on('error', events.error);
  child.on('close', events.close);
  return { kill: () => child.kill('SIGKILL') };
}

function abortError(command: string, signal: AbortSignal): Error {
  const reason = signal.reason instanceof Error ? signal.reason : new Error(`${command} stopped: ${String(signal.reason)}`);
  return reason;
}

/** Whether a process of this pid exists (one of another user's counts: EPERM). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
