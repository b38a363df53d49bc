/**
 * bench/incremental: the backup of a disk of a few GiB (dense data) with 1% of its clusters
 * changed since its last backup, copied incrementally (copyImage with the last backup as base,
 * dirty bitmap), against a full copy of the same disk in the same run. Figures: bytes the
 * incremental copy wrote against the bytes changed (goal <= 1.1x, plus qcow2 metadata), and its
 * time against the full copy's (goal <= 10%). The content-compare fallback is timed once too.
 * Then where each copy's time goes (bench/breakdown.ts), from their histories.
 *
 *   npm run build && node dist/bench/incremental.js [--disk-gib 4] [--rounds 3] [--dir /var/tmp]
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describeBreakdown, OperationTrace, traceOperation, WorkTally, workNow } from './breakdown';
import { describeMachine, describeStorage } from './machine';
import { arg, median, removeToTheEnd, seconds } from './measure';
import { withOneHost } from './one-host';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const CLUSTER = 64 * 1024;
/** A small deterministic generator, so every run changes the same clusters. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/** Bytes a qcow2 volume holds itself (depth 0 of `qemu-img map`). */
function ownBytes(path: string): number {
  const map = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', '-U', path], { encoding: 'utf8' })) as { length: number; depth: number; present: boolean }[];
  return map.filter((e) => e.depth === 0 && e.present).reduce((sum, e) => sum + e.length, 0);
}

async function main(): Promise<void> {
  const diskGiB = Number(arg('disk-gib', '4'));
  const rounds = Number(arg('rounds', '3'));
  const size = diskGiB * GiB;
  await withOneHost('bench-incremental', arg('dir', '/var/tmp'), async ({ scratch, client, localRepository }) => {
    const repoPaths: Record<string, string> = { src: await localRepository('src'), dst: await localRepository('dst') };
    const record = (repo: string, id: string) => JSON.parse(execFileSync('cat', [join(repoPaths[repo], 'images', `${id}.json`)], { encoding: 'utf8' }));
    const volumeFile = (repo: string, id: string) => join(repoPaths[repo], 'volumes', `${record(repo, id).volumeId}.qcow2`);
    const disk = await client.createVirtualDisk('src', size);
    while ((await client.getImageStatus('src', disk)).status === 'broken') await new Promise((r) => setTimeout(r, 50));

    /** Writes as the VM: `commands` of qemu-io through prepare/teardown. */
    const vmWrites = async (commands: string[]) => {
      const { path, format } = await client.prepareImage('src', disk);
      for (let i = 0; i < commands.length; i += 2000) {
        execFileSync('qemu-io', ['-f', format, ...commands.slice(i, i + 2000).flatMap((c) => ['-c', c]), path], { stdio: 'ignore' });
      }
      await client.teardownImage('src', disk);
      // A stopped VM's writes are on the storage: neither copy is timed flushing them.
      execFileSync('sync');
    };
    await vmWrites(Array.from({ length: Math.ceil(size / GiB) }, (_, i) => `write -P 0x${(0x10 + i).toString(16)} ${i * GiB} ${Math.min(GiB, size - i * GiB)}`));

    /** A copy, timed from the call to the end of its workflow (usable). */
    const traces: Record<string, { traces: OperationTrace[]; work: WorkTally }> = {};
    const copy = async (base: string | null, kind: 'snapshot' | 'virtual-disk') => {
      let id = '';
      const requestId = randomUUID();
      const before = workNow();
      const s = await seconds(async () => {
        id = await client.copyImage('dst', disk, base, {}, { requestId, kind });
        await client.waitForOperation(`copyImage:${requestId}`);
      });
      const of = (traces[base ? 'incremental' : 'full'] ??= { traces: [], work: new WorkTally() });
      of.work.add(before);
      of.traces.push(await traceOperation(client.temporal, `copyImage:${requestId}`));
      if ((await client.getImageStatus('dst', id)).status === 'broken') throw new Error(`copy ${id} ended broken`);
      return { id, s };
    };
    const next = random(42);
    /** Changes 1% of the disk's clusters, at random, as the VM would between two backups. */
    const changeOnePercent = async (round: number) => {
      const clusters = new Set<number>();
      const count = Math.round((size / CLUSTER) * 0.01);
      while (clusters.size < count) clusters.add(Math.floor(next() * (size / CLUSTER)));
      await vmWrites([...clusters].map((c) => `write -P 0x${(0xa0 + round).toString(16)} ${c * CLUSTER} ${CLUSTER}`));
      return count * CLUSTER;
    };

    let last = (await copy(null, 'snapshot')).id;
    const full: number[] = [];
    const incremental: number[] = [];
    const written: number[] = [];
    const fileGrowth: number[] = [];
    let changed = 0;
    for (let round = 0; round < rounds; round++) {
      changed = await changeOnePercent(round);
      // The full copy of the same disk, same state, same run: what a backup costs without a base.
      const whole = await copy(null, 'virtual-disk');
      full.push(whole.s);
      // The incremental copy is timed on a quiet repository, as the full copy was.
      await removeToTheEnd(client, 'dst', whole.id);
      const inc = await copy(last, 'snapshot');
      incremental.push(inc.s);
      if (record('dst', inc.id).incremental?.method !== 'bitmap') throw new Error('the incremental copy did not use the dirty bitmap');
      written.push(ownBytes(volumeFile('dst', inc.id)));
      fileGrowth.push(statSync(volumeFile('dst', inc.id)).blocks * 512);
      last = inc.id;
    }
    // The fallback: the bitmap is gone, content is compared (reads both in full).
    changed = await changeOnePercent(rounds);
    execFileSync('qemu-img', ['bitmap', '--remove', '-f', 'qcow2', volumeFile('src', disk), record('dst', last).changeTracking.bitmap]);
    const fallback = await copy(last, 'snapshot');
    const fallbackWritten = ownBytes(volumeFile('dst', fallback.id));

    const f = median(full);
    const i = median(incremental);
    const w = median(written);
    process.stdout.write(
      [
        `bench/incremental: a ${diskGiB} GiB disk, dense, with 1% of its 64 KiB clusters changed (random) since its last backup; call to usable, localfs to localfs, median of ${rounds} rounds`,
        describeMachine({ storage: describeStorage(scratch) }),
        `changed: ${(changed / MiB).toFixed(1)} MiB; incremental copy wrote ${(w / MiB).toFixed(1)} MiB of data (${(w / changed).toFixed(2)}x, goal <= 1.10x: ${w / changed <= 1.1 ? 'met' : 'NOT met'}) in a ${(median(fileGrowth) / MiB).toFixed(1)} MiB file (data + qcow2 metadata)`,
        `time: full copy ${f.toFixed(2)} s; incremental copy (dirty bitmap) ${i.toFixed(2)} s; ratio ${((100 * i) / f).toFixed(1)}% (goal <= 10%: ${i / f <= 0.1 ? 'met' : 'NOT met'})`,
        `fallback without a bitmap (content compare): ${fallback.s.toFixed(2)} s, wrote ${(fallbackWritten / MiB).toFixed(1)} MiB (${(fallbackWritten / changed).toFixed(2)}x)`,
        describeBreakdown('where an incremental copy goes (the rounds, and the fallback)', traces.incremental.traces, traces.incremental.work),
        describeBreakdown('where a full copy goes (the first backup, and the rounds)', traces.full.traces, traces.full.work),
      ].join('\n') + '\n',
    );
  });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
