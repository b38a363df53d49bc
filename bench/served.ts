/**
 * bench/served: a VM-like writer (`qemu-img bench -w`, 64 KiB requests, queue depth 16) on a disk
 * served by diskflow's block layer against the same writer on the disk's own file, side by side
 * in one run; and the writer through NBD while a live full backup and a live incremental backup
 * of the disk run, against the writer alone. Goals: NBD and vhost-user-blk within 0.8x of the
 * file; the writer slowed by less than 20% while a live backup runs.
 *
 * vhost-user-blk needs a VM (or libblkio) as its client: this machine has neither, so it is
 * served and listed, not measured.
 *
 *   npm run build && node dist/bench/served.js [--disk-gib 4] [--data-gib 2] [--writes 20000] [--rounds 3] [--dir /var/tmp]
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { describeMachine, describeStorage } from './machine';
import { arg, median, seconds } from './measure';
import { withOneHost } from './one-host';

const GiB = 2 ** 30;
const REQUEST = 64 * 1024;

interface Workload {
  /** Requests per pass, and the step between their offsets. */
  count: number;
  step: number;
  passes: number;
}

/** Every request a cluster nothing wrote since the backup began: each one pays copy-before-write. */
const freshClusters = (writes: number): Workload => ({ count: writes, step: REQUEST * 7, passes: 1 });
/** A working set of 256 MiB written over and over, as VMs mostly do: only its first pass pays. */
const workingSet = (writes: number): Workload => ({ count: 4096, step: REQUEST, passes: Math.max(1, Math.round(writes / 4096)) });

/** Seconds the writer takes for `workload` on `target` (of `format`), O_DIRECT where it applies. */
async function writer(target: string, format: string, workload: Workload, direct: boolean): Promise<number> {
  const args = ['bench', '-w', '-q', '-c', String(workload.count), '-d', '16', '-s', String(REQUEST), '-S', String(workload.step), '-f', format, ...(direct ? ['-t', 'none'] : []), target];
  return seconds(async () => {
    for (let pass = 0; pass < workload.passes; pass++) {
      await new Promise<void>((resolve, reject) => {
        const child = spawn('qemu-img', args, { stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (d) => (stderr += d));
        child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`qemu-img bench failed: ${stderr}`))));
      });
    }
  });
}

async function main(): Promise<void> {
  const diskGiB = Number(arg('disk-gib', '4'));
  const dataGiB = Number(arg('data-gib', '2'));
  const writes = Number(arg('writes', '20000'));
  const rounds = Number(arg('rounds', '3'));
  const dir = arg('dir', '/var/tmp');
  // A live backup shares the disk with its VM: a rate keeps it from taking all of it.
  const backupRate = Number(arg('backup-mibps', '0')) * 2 ** 20;
  const limit = backupRate ? { bandwidth: backupRate } : {};
  await withOneHost('bench-served', dir, async ({ client, localRepository }) => {
    const repoPath = await localRepository('vms');
    await localRepository('backups');
    const usable = async (repo: string, id: string) => {
      while ((await client.getImageStatus(repo, id)).status === 'broken') await new Promise((r) => setTimeout(r, 50));
    };
    const disk = await client.createVirtualDisk('vms', diskGiB * GiB);
    await usable('vms', disk);
    const plain = await client.prepareImage('vms', disk);
    for (let at = 0; at < dataGiB * GiB; at += GiB) execFileSync('qemu-io', ['-f', plain.format, '-c', `write -P 0x5a ${at} ${GiB}`, plain.path], { stdio: 'ignore' });
    // The writer on the file itself, as a VM opening the prepared path does.
    const file: number[] = [];
    for (let i = 0; i < rounds; i++) file.push(await writer(plain.path, plain.format, freshClusters(writes), true));
    await client.teardownImage('vms', disk);

    const served: Record<string, number[]> = {};
    for (const mode of ['nbd', 'fuse'] as const) {
      const { path } = await client.prepareImage('vms', disk, { serve: mode });
      served[mode] = [];
      for (let i = 0; i < rounds; i++) served[mode].push(await writer(path, 'raw', freshClusters(writes), mode === 'fuse'));
      await client.teardownImage('vms', disk);
    }
    const vhost = await client.prepareImage('vms', disk, { serve: 'vhost-user-blk' });
    await client.teardownImage('vms', disk);

    // The writer through NBD alone, then while live backups run: each workload, alone then during
    // a full and during an incremental backup (of what the workloads wrote since the full one).
    const { path: nbd } = await client.prepareImage('vms', disk, { serve: 'nbd' });
    const during = async (workload: Workload, start: (requestId: string) => Promise<string>): Promise<{ writer: number; backup: number }> => {
      const requestId = randomUUID();
      const backup = seconds(async () => {
        await start(requestId);
        await client.waitForOperation(`copyImage:${requestId}`);
      });
      const w = await writer(nbd, 'raw', workload, false);
      return { writer: w, backup: await backup };
    };
    const results: { name: string; alone: number; full: { writer: number; backup: number }; incremental: { writer: number; backup: number } }[] = [];
    for (const [name, workload] of [['fresh clusters', freshClusters(writes)], ['a 256 MiB working set', workingSet(writes)]] as const) {
      const alone: number[] = [];
      for (let i = 0; i < rounds; i++) alone.push(await writer(nbd, 'raw', workload, false));
      let base = '';
      const full = await during(workload, async (requestId) => (base = await client.copyImage('backups', disk, null, {}, { kind: 'snapshot', requestId, ...limit })));
      const incremental = await during(workload, (requestId) => client.copyImage('backups', disk, base, {}, { kind: 'snapshot', requestId, ...limit }));
      results.push({ name, alone: median(alone), full, incremental });
    }
    await client.teardownImage('vms', disk);

    const ratio = (a: number[], b: number[]) => (median(b) / median(a)).toFixed(2);
    const mbps = (s: number[]) => ((writes * REQUEST) / median(s) / 2 ** 20).toFixed(0);
    process.stdout.write(
      [
        `bench/served: a writer of ${writes} x 64 KiB requests (depth 16) on a ${diskGiB} GiB disk holding ${dataGiB} GiB, served by diskflow vs its own file`,
        describeMachine({ repository: describeStorage(repoPath) }),
        `file (qcow2, O_DIRECT): ${mbps(file)} MiB/s`,
        `nbd: ${mbps(served.nbd)} MiB/s; ratio to the file ${ratio(served.nbd, file)} (goal >= 0.80)`,
        `fuse: ${mbps(served.fuse)} MiB/s; ratio to the file ${ratio(served.fuse, file)}`,
        `vhost-user-blk: served at ${vhost.path}; not measured (its client is a VM or libblkio, neither on this machine)`,
        `live backups${backupRate ? ` at ${backupRate / 2 ** 20} MiB/s` : ' at full speed'}, the writer through NBD (goal: slowed by less than 20%):`,
        ...results.flatMap((r) => [
          `  ${r.name}: alone ${r.alone.toFixed(2)} s`,
          `    during a full backup: ${r.full.writer.toFixed(2)} s, slowdown ${(100 * (1 - r.alone / r.full.writer)).toFixed(0)}% (the backup took ${r.full.backup.toFixed(1)} s)`,
          `    during an incremental backup: ${r.incremental.writer.toFixed(2)} s, slowdown ${(100 * (1 - r.alone / r.incremental.writer)).toFixed(0)}% (the backup took ${r.incremental.backup.toFixed(1)} s)`,
        ]),
      ].join('\n') + '\n',
    );
  });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
