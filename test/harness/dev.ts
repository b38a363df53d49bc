/**
 * `diskflow dev` as a user runs it, for tests: started with its own ports and home, stopped with
 * Ctrl-C (SIGINT, which stops its dev server too) by the test that started it, pass or fail.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { DISKFLOW_BIN } from './hosts';
import { eventually } from './wait';

export interface Dev {
  child: ChildProcess;
  output: () => string;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export async function startDev(env: Record<string, string>): Promise<Dev> {
  const child = spawn(process.execPath, [DISKFLOW_BIN, 'dev'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.on('exit', () => running.delete(child));
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  await eventually(async () => output, (o) => o.includes('Ctrl-C stops everything') || child.exitCode !== null, 90_000);
  if (child.exitCode !== null) throw new Error(`diskflow dev exited: ${output}`);
  return { child, output: () => output };
}

/** Ctrl-C; resolves to the exit code. */
export async function interrupt(dev: Dev): Promise<number | null> {
  if (dev.child.exitCode !== null || dev.child.signalCode !== null) return dev.child.exitCode;
  const exited = new Promise<number | null>((resolve) => dev.child.once('exit', (code) => resolve(code)));
  dev.child.kill('SIGINT');
  return exited;
}

/** Stops every `diskflow dev` still running: Ctrl-C, then SIGKILL if it has not stopped in 20 s. */
export async function stopAllDevs(): Promise<void> {
  await Promise.all(
    [...running].map(async (child) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await interrupt({ child, output: () => '' });
      clearTimeout(timer);
    }),
  );
}
