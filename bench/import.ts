/**
 * bench/import: importImage end to end (call to usable) of a dense multi-GiB qcow2, from a local
 * file and from a 127.0.0.1 HTTP server (qemu's curl driver), each against a bare `qemu-img
 * convert` of the same source to the same place with the same flags, alternating, several
 * rounds; and a sparse source (40 GiB virtual, 1 GiB of data) against a dense one holding the
 * same 1 GiB. Goals: within 1.10x of bare qemu-img; the sparse import within 1.2x of the dense.
 *
 *   npm run bench:import -- [--data-gib 3] [--rounds 3] [--dir /var/tmp]
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { sourceBlockdev } from '../activities/imports/source';
import { serveFiles } from '../test/harness/http-files';
import { withOneHost } from './one-host';
import { describeMachine, describeStorage } from './machine';
import { arg, median, seconds } from './measure';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

/** A qcow2 file of `virtual` bytes with data in `extents` (qemu-io, at most 1 GiB a request). */
function makeSource(path: string, virtual: number, extents: { offset: number; length: number }[]): void {
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path, String(virtual)]);
  const commands: string[] = [];
  for (const [i, e] of extents.entries()) {
    for (let at = e.offset; at < e.offset + e.length; at += GiB) {
      commands.push('-c', `write -P 0x${(0x10 + (i % 200)).toString(16)} ${at} ${Math.min(GiB, e.offset + e.length - at)}`);
    }
  }
  execFileSync('qemu-io', ['-f', 'qcow2', ...commands, path], { stdio: 'ignore' });
}

async function main(): Promise<void> {
  const dataGiB = Number(arg('data-gib', '3'));
  const rounds = Number(arg('rounds', '3'));
  await withOneHost('bench-import', arg('dir', '/var/tmp'), async ({ scratch, client, localRepository }) => {
    const repoPath = await localRepository('dst');
    const sources = join(scratch, 'sources');
    execFileSync('mkdir', ['-p', sources]);
    const server = await serveFiles(sources);
    try {
      // Waits for the import's workflow rather than polling its status (polling spends the cores qemu-img needs).
      const diskflowImport = async (location: string) => {
        let id = '';
        const s = await seconds(async () => {
          const requestId = randomUUID();
          id = await client.importImage('dst', location, {}, { requestId });
          await client.waitForOperation(`importImage:${requestId}`);
        });
        if ((await client.getImageStatus('dst', id)).status === 'broken') throw new Error(`import ${id} ended broken`);
        await client.removeImage('dst', id);
        return s;
      };
      // The same qemu-img convert the import runs, whole: the target in the repository's file system, O_DIRECT writes.
      // Asynchronously: the HTTP server answering it runs in this process.
      const bareConvert = (source: string[]) =>
        seconds(async () => {
          const target = join(repoPath, 'bare.qcow2');
          await promisify(execFile)('qemu-img', ['convert', '-t', 'none', '-W', ...source, '-O', 'qcow2', target]);
          rmSync(target, { force: true });
        });

      const dense = join(sources, 'dense.qcow2');
      makeSource(dense, dataGiB * GiB, [{ offset: 0, length: dataGiB * GiB }]);
      const url = server.url('dense.qcow2');
      const times = { bareFile: [] as number[], file: [] as number[], bareHttp: [] as number[], http: [] as number[] };
      for (let round = 0; round < rounds; round++) {
        times.bareFile.push(await bareConvert(['-f', 'qcow2', dense]));
        times.file.push(await diskflowImport(dense));
        times.bareHttp.push(await bareConvert([`json:${JSON.stringify(sourceBlockdev(url, 'qcow2'))}`]));
        times.http.push(await diskflowImport(url));
      }
      rmSync(dense, { force: true });

      const spread = Array.from({ length: 16 }, (_, i) => ({ offset: i * (40 / 16) * GiB, length: 64 * MiB }));
      const sparse = join(sources, 'sparse.qcow2');
      const packed = join(sources, 'packed.qcow2');
      makeSource(sparse, 40 * GiB, spread);
      makeSource(packed, GiB, [{ offset: 0, length: GiB }]);
      const sparseTimes: number[] = [];
      const packedTimes: number[] = [];
      for (let round = 0; round < rounds; round++) {
        packedTimes.push(await diskflowImport(packed));
        sparseTimes.push(await diskflowImport(sparse));
      }

      const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)])) as Record<keyof typeof times, number>;
      const rate = (s: number) => `${((dataGiB * 1024) / s).toFixed(0)} MiB/s`;
      process.stdout.write(
        [
          `bench/import: importImage end to end (call to usable) into localfs, median of ${rounds} rounds`,
          describeMachine({ storage: describeStorage(scratch) }),
          `dense ${dataGiB} GiB qcow2, local file: bare qemu-img convert ${m.bareFile.toFixed(2)} s (${rate(m.bareFile)}); diskflow importImage ${m.file.toFixed(2)} s; ratio ${(m.file / m.bareFile).toFixed(2)} (goal <= 1.10)`,
          `dense ${dataGiB} GiB qcow2, http://127.0.0.1 (curl driver): bare qemu-img convert ${m.bareHttp.toFixed(2)} s (${rate(m.bareHttp)}); diskflow importImage ${m.http.toFixed(2)} s; ratio ${(m.http / m.bareHttp).toFixed(2)} (goal <= 1.10)`,
          `sparse: 40 GiB virtual with 1 GiB of data ${median(sparseTimes).toFixed(2)} s; 1 GiB image with the same data ${median(packedTimes).toFixed(2)} s; ratio ${(median(sparseTimes) / median(packedTimes)).toFixed(2)} (goal <= 1.2)`,
        ].join('\n') + '\n',
      );
    } finally {
      await server.close();
    }
  });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
