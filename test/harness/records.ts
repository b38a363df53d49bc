/** Reading a file repository's records directly, as an operator (or a fresh cluster) would. */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageRecord } from '../../activities/images/records';

export function imageRecord(repoPath: string, imageId: string): ImageRecord {
  return JSON.parse(readFileSync(join(repoPath, 'images', `${imageId}.json`), 'utf8')) as ImageRecord;
}

/** Volume data files in the repository (records excluded). */
export function volumeFiles(repoPath: string): string[] {
  return readdirSync(join(repoPath, 'volumes')).filter((name) => !name.endsWith('.json'));
}

/** Processes (`pid args` lines of ps) whose command line matches `command` and mentions `text`. */
export function processesMatching(command: RegExp, text: string): string[] {
  const out = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' });
  return out.split('\n').filter((line) => command.test(line) && line.includes(text));
}

/** qemu processes whose command line mentions `text` (a volume id): none may outlive its step. */
export function qemuProcessesFor(text: string): string[] {
  return processesMatching(/qemu-(img|io|nbd|storage-daemon)/, text);
}

/** `qemu-img check` of every qcow2 volume of a file repository: those that are not clean. */
export function uncleanVolumes(repoPath: string): string[] {
  return volumeFiles(repoPath)
    .filter((name) => name.endsWith('.qcow2') && !name.startsWith('_remove_me_'))
    .filter((name) => {
      try {
        execFileSync('qemu-img', ['check', '-q', '-f', 'qcow2', join(repoPath, 'volumes', name)]);
        return false;
      } catch {
        return true;
      }
    });
}
