/** Reading what is really on disk, with the field's own tools. */
import { execFileSync } from 'node:child_process';

export interface QemuInfo {
  format: string;
  'virtual-size': number;
  'actual-size': number;
  'backing-filename'?: string;
}

export function qemuInfo(path: string): QemuInfo {
  return JSON.parse(execFileSync('qemu-img', ['info', '--output=json', '-U', path], { encoding: 'utf8' })) as QemuInfo;
}

export function qemuCheckClean(path: string, format: string): boolean {
  try {
    execFileSync('qemu-img', ['check', '-q', '-f', format, path]);
    return true;
  } catch {
    return false;
  }
}
