/**
 * Room a new volume needs before anything is written to it (`qemu-img measure`), and the
 * NO_SPACE answer when the repository does not have it: a copy, an import or an optimize that
 * cannot fit is refused at once instead of failing half-way with a partial volume.
 */
import { DiskflowError } from '../../api/errors';
import type { Repository } from '../repository/repository';
import { readChain } from '../images/image-store';
import type { VolumeRecord } from '../images/records';
import { measureSpec, MeasuredRoom } from './source';
import { stat } from 'node:fs/promises';

/**
 * The blockdev of a chain as its records say it (top first), each level's backing named
 * explicitly: no backing name from a header is followed.
 */
export async function chainBlockdev(paths: { path: string; volume: VolumeRecord }[]): Promise<Record<string, unknown>> {
  let spec: Record<string, unknown> | null = null;
  for (const { path, volume } of [...paths].reverse()) {
    const driver = (await stat(path)).isBlockDevice() ? 'host_device' : 'file';
    const level: Record<string, unknown> = { driver: volume.format, file: { driver, filename: path, locking: 'off' } };
    if (volume.format === 'qcow2') level.backing = spec;
    spec = level;
  }
  return spec!;
}

/** What a standalone copy of the chain of `volumeId` (in `repo`) needs in a new volume of `targetFormat`. */
export async function measureChain(repo: Repository, volumeId: string, targetFormat: 'raw' | 'qcow2', virtualSize: number, preallocate: boolean, signal?: AbortSignal): Promise<MeasuredRoom> {
  const chain = await readChain(repo, volumeId);
  const paths: { path: string; volume: VolumeRecord }[] = [];
  try {
    for (const volume of [...chain].reverse()) paths.unshift({ path: await repo.activate(volume.volumeId, volume.format), volume });
    return await measureSpec(await chainBlockdev(paths), targetFormat, virtualSize, preallocate, signal);
  } finally {
    for (const volume of chain) await repo.deactivate(volume.volumeId).catch(() => undefined);
  }
}

/** NO_SPACE unless `repo` has `requiredBytes` free now. */
export async function requireRoom(repo: Repository, requiredBytes: number, what: string): Promise<number> {
  const free = await repo.freeBytes();
  if (requiredBytes > free) {
    throw new DiskflowError('NO_SPACE', `${what} needs ${requiredBytes} bytes (qemu-img measure) and ${repo.location} has ${free} free; nothing was written`);
  }
  return free;
}
