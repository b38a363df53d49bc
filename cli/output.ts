/** How commands print: JSON with --json, readable tables otherwise; errors as CODE: message. */
import Table from 'cli-table3';
import { DiskflowError } from '../api/errors';
import { toDiskflowError } from '../api/failures';
import type { ImageStatus } from '../api/image-status';

/** Plain borders and no colours unless a person is watching. */
const tableStyle = () => (process.stdout.isTTY ? {} : { style: { head: [], border: [] } });

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value ?? null, null, 2) + '\n');
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}

export function formatStage(status: ImageStatus): string {
  if (!status.stage) return '-';
  const percent = status.percentComplete >= 0 ? ` ${status.percentComplete}%` : '';
  return `${status.stage.current}/${status.stage.total}${percent}`;
}

export function printImageStatus(status: ImageStatus): void {
  const table = new Table(tableStyle());
  table.push(
    { image: status.imageId },
    { repository: status.repoId },
    { kind: status.kind },
    { status: status.status },
    { size: `${formatBytes(status.size)} (${status.size} bytes)` },
    { stage: formatStage(status) },
    { host: status.hostId ?? '-' },
    { 'last error': status.lastError ?? '-' },
    { 'user data': JSON.stringify(status.userData) },
  );
  process.stdout.write(table.toString() + '\n');
}

export function printImageList(images: ImageStatus[]): void {
  if (images.length === 0) {
    process.stdout.write('no images\n');
    return;
  }
  const table = new Table({ head: ['image', 'kind', 'status', 'size', 'stage', 'host'], ...tableStyle() });
  for (const s of images) table.push([s.imageId, s.kind, s.status, formatBytes(s.size), formatStage(s), s.hostId ?? '-']);
  process.stdout.write(table.toString() + '\n');
}

/** Prints a failure as `CODE: message` on stderr and sets a non-zero exit code. */
export function reportFailure(error: unknown): void {
  const failure = error instanceof DiskflowError ? error : toDiskflowError(error);
  process.stderr.write(`${failure.code}: ${failure.message}\n`);
  process.exitCode = 1;
}
