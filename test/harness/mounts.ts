/**
 * Shared file systems for tests: a sparse file formatted as xfs, which every test host mounts
 * itself (`mount -t xfs -o loop`) as a posixfs-1.0 repository. Mount points and loop devices
 * left by hosts (a stopped worker keeps its mounts, by design) are removed by `cleanUpMounts`.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './repositories';

const images: string[] = [];

/** A new empty xfs file system in a sparse file of `size` (e.g. '2G'). */
export function xfsImage(size = '2G'): string {
  const file = join(tempDir('xfs'), 'shared.xfs');
  execFileSync('truncate', ['-s', size, file]);
  execFileSync('mkfs.xfs', ['-q', file]);
  images.push(file);
  return file;
}

/** Mount points below `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  const targets = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((t): t is string => !!t && (t === dir || t.startsWith(`${dir}/`)));
  return targets.sort((a, b) => b.length - a.length);
}

export function unmountUnder(dir: string): void {
  for (const target of mountsUnder(dir)) {
    try {
      execFileSync('umount', [target], { stdio: 'ignore' });
    } catch {
      execFileSync('umount', ['-l', target], { stdio: 'ignore' });
    }
  }
}

/** Loop devices over `file` (`losetup -j`). */
export function loopDevicesOf(file: string): string[] {
  return execFileSync('losetup', ['-j', file], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(':')[0]);
}

/** Unmounts everything under `homes` and detaches the loop devices of every image made here. */
export function cleanUpMounts(homes: string[]): void {
  for (const home of homes) unmountUnder(home);
  for (const file of images.splice(0)) {
    for (const device of loopDevicesOf(file)) execFileSync('losetup', ['-d', device], { stdio: 'ignore' });
    rmSync(file, { force: true });
  }
}
