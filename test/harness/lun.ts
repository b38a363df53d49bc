/**
 * A shared LUN for clvm tests: a sparse file attached as a loop device, which every test host
 * (worker process) uses as its SAN disk. Removed with everything diskflow put on it (its VG,
 * the loop devices hosts attached over its extents) by `removeLun`, pass or fail.
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Lvm } from '../../activities/volumes/lvm';
import { tempDir } from './repositories';

export interface Lun {
  file: string;
  device: string;
}

export function createLun(bytes: number): Lun {
  const file = join(tempDir('lun'), 'lun.img');
  execFileSync('truncate', ['-s', String(bytes), file]);
  const device = execFileSync('losetup', ['-f', '--show', file], { encoding: 'utf8' }).trim();
  return { file, device };
}

/** Loop devices attached over `device` (activations of its LVs by any host). */
export function loopsOver(device: string): string[] {
  const { loopdevices } = JSON.parse(execFileSync('losetup', ['-J', '-l', '-O', 'NAME,BACK-FILE'], { encoding: 'utf8' }) || '{"loopdevices":[]}') as {
    loopdevices: { name: string; 'back-file': string }[];
  };
  return loopdevices.filter((l) => l['back-file'] === device).map((l) => l.name);
}

export async function removeLun(lun: Lun | undefined, vgName: string): Promise<void> {
  if (!lun) return;
  for (const loop of loopsOver(lun.device)) execFileSync('losetup', ['-d', loop]);
  const lvm = new Lvm([lun.device], vgName);
  await lvm.vgremove().catch(() => undefined);
  await lvm.pvremove().catch(() => undefined);
  execFileSync('losetup', ['-d', lun.device]);
  rmSync(lun.file, { force: true });
}
