/**
 * Failpoints: named instants where a test can have this process killed (SIGKILL, as a power
 * loss would), to prove that every step converges when re-run from what is on disk. Inert unless
 * DISKFLOW_FAILPOINTS names them (comma-separated), which only tests do.
 */
const armed = new Set((process.env.DISKFLOW_FAILPOINTS ?? '').split(',').map((s) => s.trim()).filter(Boolean));

export function failpoint(name: string): void {
  if (!armed.has(name)) return;
  process.stderr.write(`failpoint ${name}: killing this process\n`);
  process.kill(process.pid, 'SIGKILL');
}
