/** A description of the machine a benchmark ran on, printed with its figures. */
import { execFileSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';

export function describeMachine(extra: Record<string, string> = {}): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const lines = [
    `machine: ${cpus().length} x ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}`,
    `qemu-img: ${execFileSync('qemu-img', ['--version'], { encoding: 'utf8' }).split('\n')[0]}`,
    ...Object.entries(extra).map(([k, v]) => `${k}: ${v}`),
  ];
  return lines.join('\n');
}

/** The file system a benchmark's scratch directory is on, for its figures. */
export function describeStorage(dir: string): string {
  return `${dir} (${execFileSync('df', ['--output=fstype', dir], { encoding: 'utf8' }).split('\n')[1].trim()})`;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}
