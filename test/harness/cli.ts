/** Runs the real `diskflow` command, as a user would, against the test run's Temporal server. */
import { execFile } from 'node:child_process';
import { findTemporalCli } from '../../workers/temporal-server';
import { DISKFLOW_BIN, temporalAddress, testEnv } from './hosts';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function diskflow(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [DISKFLOW_BIN, ...args], { env: testEnv(env), timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export async function diskflowJson<T = unknown>(args: string[], env: Record<string, string> = {}): Promise<T> {
  const result = await diskflow([...args, '--json'], env);
  if (result.code !== 0) throw new Error(`diskflow ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

/** Runs the `temporal` CLI against the test run's server, as an operator would. */
export function temporalCli(args: string[]): Promise<string> {
  const cli = findTemporalCli().path!;
  return new Promise((resolve, reject) =>
    execFile(cli, [...args, '--address', temporalAddress()], { timeout: 60_000 }, (error, stdout, stderr) =>
      error ? reject(new Error(`temporal ${args.join(' ')}: ${stderr}${stdout}`)) : resolve(stdout),
    ),
  );
}
