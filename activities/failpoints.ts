/**
 * Failpoints: named instants where a test can have this process killed (SIGKILL, as a power
 * loss would), to prove that every step converges when re-run from what is on disk. Inert unless
 * DISKFLOW_FAILPOINTS names them (comma-separated), which only tests do.
 *
 * Holdpoints: named instants where a step waits for as long as a file exists, so a test can see
 * an operation whose fix is really pending. Inert unless DISKFLOW_HOLDPOINTS names them
 * (`name=/path/of/file`, comma-separated), which only tests do.
 */
import { existsSync, writeFileSync } from 'node:fs';

const armed = new Set((process.env.DISKFLOW_FAILPOINTS ?? '').split(',').map((s) => s.trim()).filter(Boolean));

export function failpoint(name: string): void {
  if (!armed.has(name)) return;
  process.stderr.write(`failpoint ${name}: killing this process\n`);
  process.kill(process.pid, 'SIGKILL');
}

const holds = new Map(
  (process.env.DISKFLOW_HOLDPOINTS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.indexOf('=') > 0)
    .map((s) => [s.slice(0, s.indexOf('=')), s.slice(s.indexOf('=') + 1)] as const),
);

/**
 * Waits while the file armed for `name` exists (not at all when unarmed), or until `signal`
 * aborts; `<file>.reached` tells the test a step is waiting there.
 */
export async function holdpoint(name: string, signal?: AbortSignal): Promise<void> {
  const file = holds.get(name);
  if (!file) return;
  if (existsSync(file)) writeFileSync(`${file}.reached`, '');
  while (existsSync(file) && !signal?.aborted) await new Promise((resolve) => setTimeout(resolve, 100));
}
