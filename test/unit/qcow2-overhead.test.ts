/**
 * The room a thin qcow2 LV gets for a VM (size + qcow2Overhead) must hold the disk written
 * whole: checked against qemu-img's own answer for a fully allocated qcow2 of that size.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { qcow2Overhead } from '../../activities/repository/formats/clvm';

const MiB = 2 ** 20;

describe('qcow2Overhead', () => {
  it.each([1 * MiB, 64 * MiB, 1000 * MiB + 512, 10 * 1024 * MiB, 4 * 1024 * 1024 * MiB])('covers a fully allocated qcow2 of %i bytes', (size) => {
    const out = execFileSync('qemu-img', ['measure', '-O', 'qcow2', '--size', String(size)], { encoding: 'utf8' });
    const fullyAllocated = Number(/fully allocated size: (\d+)/.exec(out)![1]);
    expect(size + qcow2Overhead(size)).toBeGreaterThanOrEqual(fullyAllocated);
  });
});
