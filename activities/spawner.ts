/**
 * Starting a tool from the worker costs a fork of the worker: the kernel copies its page tables,
 * and Node's spawn waits for the child's exec, all on the event loop. Measured here, spawn()
 * took 2 ms from a 48 MiB process and 29 ms from a 350 MiB one; a host worker holds 150 to 200
 * MiB, so every qemu-img stalled it for 10 to 15 ms (a quarter of its main thread's busy time
 * under sustained creates, and part of every copy's fixed cost). So the worker starts one small
 * Node process, the spawner (spawner-process.ts), and has it start the tools: a fork of that
 * is cheap, and the worker only sends a message.
 *
 * The spawner is started with a host worker (elsewhere on first use) under `setpriv --pdeathsig
 * KILL`, so it dies with the worker, and its tools with it; a spawner that dies fails the tools
 * it was running (retried as any STORAGE_ERROR), and the next tool starts a new one. It holds no
 * reference on the worker's event loop while no tool runs, so a command that ran a tool still
 * exits.
 */
import { AsyncResource } from 'node:async_hooks';
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export type SpawnerRequest = { t: 'run'; id: number; command: string; args: string[]; env: NodeJS.ProcessEnv } | { t: 'kill'; id: number };
export type SpawnerReply =
  | { t: 'ready' }
  | { t: 'stdout'; id: number; data: string }
  | { t: 'stderr'; id: number; data: string }
  | { t: 'error'; id: number; message: string; code: string | null }
  | { t: 'close'; id: number; code: number | null; signal: NodeJS.Signals | null };

/** What a started tool tells: its output as it comes, then either an error (it did not start) or how it ended. */
export interface ToolEvents {
  stdout(data: string): void;
  stderr(data: string): void;
  error(error: NodeJS.ErrnoException): void;
  close(code: number | null, signal: NodeJS.Signals | null): void;
}

export interface StartedTool {
  /** SIGKILL to the tool. */
  kill(): void;
}

/** Built next to this file by `npm run build`; from source (the unit tests) tools are started directly. */
const SPAWNER_MAIN = join(__dirname, 'spawner-process.js');
/**
 * A spawner relays each tool's output as it comes and holds it only while the worker is slow to
 * read (a `qemu-img map` of a large image prints megabytes): its cap is well above that, its
 * small young generation keeps it small when idle (7 MiB of its own).
 */
const SPAWNER_NODE_FLAGS = ['--max-old-space-size=128', '--max-semi-space-size=1'];

class Spawner {
  private child: ChildProcess | null = null;
  private ready = false;
  private queued: SpawnerRequest[] = [];
  private nextId = 1;
  private readonly running = new Map<number, ToolEvents>();

  start(command: string, args: readonly string[], env: NodeJS.ProcessEnv, events: ToolEvents): StartedTool {
    const id = this.nextId++;
    // The replies arrive on the spawner's channel, in the async context of whichever call started
    // it: each tool's events run in its caller's, as a child's own pipes would (an activity's
    // Context.current(), for its progress, is found that way).
    this.running.set(id, {
      stdout: AsyncResource.bind(events.stdout),
      stderr: AsyncResource.bind(events.stderr),
      error: AsyncResource.bind(events.error),
      close: AsyncResource.bind(events.close),
    });
    this.send({ t: 'run', id, command, args: [...args], env });
    this.holdLoop();
    return { kill: () => this.running.has(id) && this.send({ t: 'kill', id }) };
  }

  warm(): void {
    if (!this.child) this.launch();
    this.holdLoop();
  }

  private send(request: SpawnerRequest): void {
    if (!this.child) this.launch();
    if (this.ready) this.child!.send(request);
    else this.queued.push(request);
  }

  private launch(): void {
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', process.execPath, ...SPAWNER_NODE_FLAGS, SPAWNER_MAIN], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'json',
    });
    this.child = child;
    this.ready = false;
    child.on('message', (reply: SpawnerReply) => this.receive(reply));
    child.on('error', (error) => this.lost(child, error.message));
    child.on('exit', (code, signal) => this.lost(child, `exit ${code ?? signal}`));
  }

  private receive(reply: SpawnerReply): void {
    if (reply.t === 'ready') {
      this.ready = true;
      for (const request of this.queued.splice(0)) this.child!.send(request);
      return;
    }
    const events = this.running.get(reply.id);
    if (!events) return;
    if (reply.t === 'stdout' || reply.t === 'stderr') return events[reply.t](reply.data);
    this.running.delete(reply.id);
    if (reply.t === 'error') events.error(Object.assign(new Error(reply.message), { code: reply.code ?? undefined }));
    else events.close(reply.code, reply.signal);
    this.holdLoop();
  }

  /** The spawner ended: its tools were killed with it (pdeathsig), and are reported so. */
  private lost(child: ChildProcess, why: string): void {
    if (this.child !== child) return;
    this.child = null;
    this.queued = [];
    const running = [...this.running.values()];
    this.running.clear();
    for (const events of running) events.error(new Error(`the spawner process that ran it ended (${why})`));
  }

  /** Holds the worker's event loop open while a tool runs, and not otherwise. */
  private holdLoop(): void {
    const child = this.child;
    if (!child) return;
    if (this.running.size > 0) {
      child.ref();
      child.channel?.ref();
    } else {
      child.unref();
      child.channel?.unref();
    }
  }
}

let spawner: Spawner | null | undefined;

const theSpawner = () => (spawner === undefined ? (spawner = existsSync(SPAWNER_MAIN) ? new Spawner() : null) : spawner);

/** Starts `command` through this process's spawner; null where there is none (running from source). */
export function startThroughSpawner(command: string, args: readonly string[], env: NodeJS.ProcessEnv, events: ToolEvents): StartedTool | null {
  return theSpawner()?.start(command, args, env, events) ?? null;
}

/** Starts the spawner now, so a host's first step does not wait for a Node process to start (a worker calls this as it starts). */
export function startSpawner(): void {
  theSpawner()?.warm();
}
