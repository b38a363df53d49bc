/**
 * bench/copy: copyImage end to end (call to usable) against a bare `qemu-img convert -t none
 * -T none -W` of the same image, side by side in one run; and a sparse image (40 GiB virtual,
 * 1 GiB of data) against an image holding the same 1 GiB of data in 1 GiB. Goals: at most 1.10
 * of bare qemu-img; the sparse copy within 1.2x of the 1 GiB one.
 *
 *   npm run build && node dist/bench/copy.js [--data-gib 4] [--rounds 3] [--dir /var/tmp]
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describeMachine, describeStorage } from './machine';
import { arg, median, seconds } from './measure';
import { withOneHost } from './one-host';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
/** Writes `pattern` over [offset, offset+length) in requests qemu-io accepts (at most 1 GiB each). */
function fill(path: string, format: string, extents: { offset: number; length: number }[]): void {
  const commands: string[] = [];
  for (const [i, e] of extents.entries()) {
    for (let at = e.offset; at < e.offset + e.length; at += GiB) {
      commands.push('-c', `write -P 0x${(0x10 + (i % 200)).toString(16)} ${at} ${Math.min(GiB, e.offset + e.length - at)}`);
    }
  }
  execFileSync('qemu-io', ['-f', format, ...commands, path], { stdio: 'ignore' });
}

async function main(): Promise<void> {
  const dataGiB = Number(arg('data-gib', '4'));
  const rounds = Number(arg('rounds', '3'));
  await withOneHost('bench-copy', arg('dir', '/var/tmp'), async ({ scratch, client, localRepository }) => {
    await localRepository('src');
    await localRepository('dst');
    const usable = async (repo: string, id: string) => {
      while ((await client.getImageStatus(repo, id)).status === 'broken') await new Promise((r) => setTimeout(r, 50));
    };
    const makeDisk = async (virtual: number, extents: { offset: number; length: number }[]) => {
      const id = await client.createVirtualDisk('src', virtual);
      await usable('src', id);
      const { path, format } = await client.prepareImage('src', id);
      fill(path, format, extents);
      await client.teardownImage('src', id);
      return { id, path, format };
    };
    // Waits for the copy's workflow rather than polling its status: polling would spend the
    // cores that qemu-img needs, which a bare qemu-img run does not pay.
    const diskflowCopy = async (id: string) => {
      let copy = '';
      const s = await seconds(async () => {
        const requestId = randomUUID();
        copy = await client.copyImage('dst', id, null, {}, { requestId });
        await client.waitForOperation(`copyImage:${requestId}`);
      });
      if ((await client.getImageStatus('dst', copy)).status === 'broken') throw new Error(`copy ${copy} ended broken`);
      await client.removeImage('dst', copy);
      return s;
    };

    // 1. A dense multi-GiB image: diskflow against bare qemu-img, alternating, several rounds.
    const dense = await makeDisk(dataGiB * GiB, [{ offset: 0, length: dataGiB * GiB }]);
    const bare: number[] = [];
    const ours: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const target = join(scratch, 'bare.qcow2');
      bare.push(await seconds(() => execFileSync('qemu-img', ['convert', '-t', 'none', '-T', 'none', '-W', '-f', 'qcow2', '-O', 'qcow2', dense.path, target])));
      rmSync(target, { force: true });
      ours.push(await diskflowCopy(dense.id));
    }
    await client.removeImage('src', dense.id);

    // 2. Sparse: 1 GiB of data spread over 40 GiB, against the same 1 GiB packed in a 1 GiB disk.
    const spread = Array.from({ length: 16 }, (_, i) => ({ offset: i * (40 / 16) * GiB, length: 64 * MiB }));
    const sparse = await makeDisk(40 * GiB, spread);
    const packed = await makeDisk(GiB, [{ offset: 0, length: GiB }]);
    const sparseTimes: number[] = [];
    const packedTimes: number[] = [];
    for (let round = 0; round < rounds; round++) {
      packedTimes.push(await diskflowCopy(packed.id));
      sparseTimes.push(await diskflowCopy(sparse.id));
    }

    // 3. What diskflow adds whatever the size: a 1 MiB copy is all persist, dispatch and checks.
    const tiny = await makeDisk(MiB, [{ offset: 0, length: MiB }]);
    const tinyTimes: number[] = [];
    for (let round = 0; round < rounds; round++) tinyTimes.push(await diskflowCopy(tiny.id));

    const b = median(bare);
    const o = median(ours);
    process.stdout.write(
      [
        `bench/copy: copyImage end to end (call to usable), localfs to localfs on one file system, median of ${rounds} rounds`,
        describeMachine({ storage: describeStorage(scratch) }),
        `dense ${dataGiB} GiB: bare qemu-img convert -t none -T none -W ${b.toFixed(2)} s (${((dataGiB * 1024) / b).toFixed(0)} MiB/s); diskflow copyImage ${o.toFixed(2)} s; ratio ${(o / b).toFixed(2)} (goal <= 1.10); first copy, before the host knows its pace: ratio ${(ours[0] / bare[0]).toFixed(2)}`,
        `fixed cost of a copy (1 MiB image, call to usable): ${(median(tinyTimes) * 1000).toFixed(0)} ms`,
        `sparse: 40 GiB virtual with 1 GiB of data ${median(sparseTimes).toFixed(2)} s; 1 GiB disk with the same data ${median(packedTimes).toFixed(2)} s; ratio ${(median(sparseTimes) / median(packedTimes)).toFixed(2)} (goal <= 1.2)`,
      ].join('\n') + '\n',
    );
  });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
