/**
 * The spawner (activities/spawner.ts): a small Node process that starts the worker's tools for
 * it. Started by the worker with an IPC channel; it runs each command it is sent under
 * `setpriv --pdeathsig KILL`, as the worker would, streams the command's output back and says
 * how it ended. It ends with its channel (the worker stopped or died): its commands are then
 * killed by the kernel, as they die with the worker when it starts them itself.
 */
import { ChildProcess, spawn } from 'node:child_process';
import type { SpawnerReply, SpawnerRequest } from './spawner';

const running = new Map<number, ChildProcess>();
const reply = (message: SpawnerReply) => process.send?.(message);

function start({ id, command, args, env }: Extract<SpawnerRequest, { t: 'run' }>): void {
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', command, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  running.set(id, child);
  child.stdout!.setEncoding('utf8').on('data', (data: string) => reply({ t: 'stdout', id, data }));
  child.stderr!.setEncoding('utf8').on('data', (data: string) => reply({ t: 'stderr', id, data }));
  child.on('error', (error: NodeJS.ErrnoException) => {
    running.delete(id);
    reply({ t: 'error', id, message: error.message, code: error.code ?? null });
  });
  child.on('close', (code, signal) => {
    if (!running.delete(id)) return; // its error was the reply
    reply({ t: 'close', id, code, signal });
  });
}

process.on('message', (message: SpawnerRequest) => {
  if (message.t === 'run') start(message);
  else running.get(message.id)?.kill('SIGKILL');
});
process.on('disconnect', () => {
  for (const child of running.values()) child.kill('SIGKILL');
  process.exit(0);
});
reply({ t: 'ready' });
