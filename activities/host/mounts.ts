/**
 * Mounts of shared file repositories (posixfs-1.0, nfs-1.0) on this host, under
 * DISKFLOW_HOME/mnt/. mount(8) and umount(8) run with argument arrays; the type and the options
 * were checked against the allow-lists of api/formats.ts before they reach here. Every mount is
 * `nosuid,nodev` (before the caller's options): nothing on a repository may gain privileges or
 * reach devices through it.
 *
 * The mount point of a spec is stable (derived from type and spec), so a worker restarted after
 * a crash finds the mount it made and re-uses it instead of mounting twice.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, realpath, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DiskflowError } from '../../api/errors';
import { run } from '../process';

const MOUNT_TIMEOUT_MS = 60_000;

export interface MountSpec {
  vfsType: string;
  spec: string;
  options?: string;
}

/** `<home>/mnt/<type>_<spec with / as _>_<hash>`: readable by operators, one per spec. */
export function mountPointFor(home: string, { vfsType, spec }: MountSpec): string {
  const hash = createHash('sha256').update(`${vfsType}\0${spec}`).digest('hex').slice(0, 8);
  const readable = spec.replace(/\//g, '_').replace(/[^A-Za-z0-9_.:@-]/g, '-').slice(-80);
  return join(home, 'mnt', `${vfsType}_${readable}_${hash}`);
}

/** What every repository mount is, whatever the caller asks. */
export const FORCED_OPTIONS = ['nosuid', 'nodev'];

/** The arguments of mount(8) for `spec` at `target`. */
export function mountArgs({ vfsType, spec, options }: MountSpec, target: string): string[] {
  return ['-t', vfsType, '-o', [...FORCED_OPTIONS, ...(options ? [options] : [])].join(','), spec, target];
}

interface MountInfo {
  target: string;
  source: string;
  fsType: string;
  /** The mount point's own options (nosuid, nodev, ...). */
  options: string[];
}

/** /proc/self/mountinfo escapes blanks, tabs, newlines and backslashes as octal. */
const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

export async function findMount(target: string): Promise<MountInfo | null> {
  const lines = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n');
  let found: MountInfo | null = null;
  for (const line of lines) {
    const [left, right] = line.split(' - ');
    if (!right) continue;
    const fields = left.split(' ');
    const [fsType, source] = right.split(' ');
    // The last mount at a point is the one visible there.
    if (unescape(fields[4]) === target) found = { target, source: unescape(source), fsType, options: (fields[5] ?? '').split(',') };
  }
  return found;
}

/** Whether what is mounted at a point is `spec`: the same source, or a loop device over the same file. */
async function sameSource(mounted: MountInfo, { vfsType, spec }: MountSpec): Promise<boolean> {
  if (vfsType !== 'none' && mounted.fsType !== vfsType) return false;
  if (mounted.source === spec) return true;
  const file = await realpath(spec).catch(() => spec);
  if (mounted.source === file) return true;
  const loop = /^\/dev\/(loop\d+)$/.exec(mounted.source);
  if (!loop) return false;
  const backing = await readFile(`/sys/block/${loop[1]}/loop/backing_file`, 'utf8').catch(() => '');
  return backing.trim() === file;
}

/**
 * Mounts `spec` at `target`, or finds it already mounted there (a worker restarted after a
 * crash). Returns whether this call mounted it. Something else mounted there is refused.
 */
export async function ensureMounted(spec: MountSpec, target: string): Promise<boolean> {
  await mkdir(target, { recursive: true });
  const mounted = await findMount(target);
  if (mounted) {
    if (!(await sameSource(mounted, spec))) throw new DiskflowError('STORAGE_ERROR', `${target} already has ${mounted.source} (${mounted.fsType}) mounted, not ${spec.spec}`);
    // Found mounted (by an earlier worker, or by hand) without nosuid or nodev: made so first.
    if (FORCED_OPTIONS.some((o) => !mounted.options.includes(o))) {
      await run('mount', ['-o', ['remount', ...FORCED_OPTIONS].join(','), target], { signal: AbortSignal.timeout(MOUNT_TIMEOUT_MS) }).catch((error: Error) => {
        throw new DiskflowError('STORAGE_ERROR', `${target} is mounted without ${FORCED_OPTIONS.join(',')} and could not be remounted with them: ${error.message}`);
      });
    }
    return false;
  }
  try {
    // An unreachable server must not hang a connect (or a worker's start) for ever.
    await run('mount', mountArgs(spec, target), { signal: AbortSignal.timeout(MOUNT_TIMEOUT_MS) });
  } catch (error) {
    await rmdir(target).catch(() => undefined);
    throw new DiskflowError('STORAGE_ERROR', `could not mount ${spec.spec} (${spec.vfsType}) at ${target}: ${(error as Error).message}`);
  }
  return true;
}

/** Unmounts `target` and removes its directory. Refused (STORAGE_ERROR) while files are open there. */
export async function unmount(target: string): Promise<void> {
  if (await findMount(target)) {
    try {
      await run('umount', [target], { signal: AbortSignal.timeout(MOUNT_TIMEOUT_MS) });
    } catch (error) {
      throw new DiskflowError('STORAGE_ERROR', `could not unmount ${target}: ${(error as Error).message}`);
    }
  }
  await rmdir(target).catch(() => undefined);
}
