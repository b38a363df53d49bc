/**
 * bench/check: checkStorageRepository on a repository of 10,000 images, as a user calls it
 * (client -> workflow -> the host's worker), with the worker's memory read from /proc.
 * Goals: under 2 s per check and under 200 MB of worker memory.
 *
 * The repository is written directly (records and sparse volume files, as diskflow lays them
 * out): making 10,000 images through the API would take most of an hour and measure creation,
 * not the check. The mix follows a long-lived repository: mostly standalone disks, snapshots
 * with disks on them, removed images (some whose snapshot still carries a disk: merges),
 * broken images, degraded overlays, and leftovers of crashed operations.
 *
 *   npm run build && node dist/bench/check.js [--images 10000] [--rounds 5] [--dir /var/tmp]
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { ImageRecord, VolumeRecord } from '../activities/images/records';
import type { Fix } from '../api/image-status';
import { StorageClient } from '../client/storage-client';
import { PROJECT_ROOT } from '../workers/project-root';
import { startDevServer } from '../workers/temporal-server';
import { describeMachine, percentile } from './machine';
import { arg } from './measure';

const MiB = 2 ** 20;
const DATA = Buffer.alloc(64 * 1024, 1);

/**
 * The start of a qcow2 file as qemu-img writes it (version 3, 64 KiB clusters, no extensions
 * but the end marker, then the backing file name), followed by filler: a check reads every
 * complete qcow2 volume's header (docs/ARCHITECTURE.md, "Storage is untrusted").
 */
function qcow2Head(size: number, backing: string | null): Buffer {
  const head = Buffer.from(DATA);
  head.fill(0, 0, 4096);
  head.writeUInt32BE(0x514649fb, 0); // magic
  head.writeUInt32BE(3, 4); // version
  if (backing) {
    head.writeBigUInt64BE(112n, 8); // backing file name offset: after the header and the end extension
    head.writeUInt32BE(Buffer.byteLength(backing), 16);
    head.write(backing, 112, 'latin1');
  }
  head.writeUInt32BE(16, 20); // cluster bits
  head.writeBigUInt64BE(BigInt(size), 24);
  head.writeUInt32BE(4, 96); // refcount order
  head.writeUInt32BE(104, 100); // header length; the end extension (zeros) follows at 104
  return head;
}
/** Kernel-reported memory of a process, in MiB: resident now and its high-water mark. */
function memoryOf(pid: number): { rss: number; peak: number; anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kib('VmRSS') / 1024, peak: kib('VmHWM') / 1024, anon: kib('RssAnon') / 1024, file: kib('RssFile') / 1024 };
}

/** Lays out `count` images in a file repository, the way diskflow's records describe them. */
export function populate(root: string, count: number): Record<string, number> {
  const now = new Date().toISOString();
  const mix: Record<string, number> = { disk: 0, snapshot: 0, 'disk on snapshot': 0, removed: 0, 'removed snapshot under one disk': 0, broken: 0, degraded: 0, 'orphan volume': 0, 'stray temporary file': 0 };
  const volume = (format: 'raw' | 'qcow2', parentId: string | null, size: number): string => {
    const volumeId = randomUUID();
    const record: VolumeRecord = { schema: 'diskflow.volume/1', volumeId, format, parentId, size, legal: true, createdAt: now, createdBy: 'bench' };
    writeFileSync(join(root, 'volumes', `${volumeId}.json`), JSON.stringify(record, null, 1) + '\n');
    // Small images: 64 KiB each (the check reads metadata, sizes and qcow2 headers, not contents).
    writeFileSync(join(root, 'volumes', `${volumeId}.${format}`), format === 'qcow2' ? qcow2Head(size, parentId && `${parentId}.qcow2`) : DATA);
    return volumeId;
  };
  const image = (kind: ImageRecord['kind'], volumeId: string, size: number, extra: Partial<ImageRecord> = {}): string => {
    const imageId = randomUUID();
    const record: ImageRecord = {
      schema: 'diskflow.image/1', imageId, kind, size, userData: { vm: `vm-${imageId.slice(0, 4)}`, disk: 0 }, strategy: 'space', volumeId,
      generation: 3, contentEpoch: 0, chainEpoch: 0, status: 'optimized', pending: null, optimizing: null, resizing: null, backupExport: null, changeTracking: null, incremental: null, removed: null, operation: null, readers: {}, prepared: {}, served: null,
      hostId: 'bench', stage: null, percentComplete: -1, lastError: null, createdAt: now, createdBy: 'bench', updatedAt: now, ...extra,
    };
    writeFileSync(join(root, 'images', `${imageId}.json`), JSON.stringify(record, null, 1) + '\n');
    return imageId;
  };
  const size = 64 * MiB;
  let made = 0;
  const add = (what: string, images: number) => ((mix[what] += 1), (made += images));
  for (let round = 0; made < count; round++) {
    const roll = round % 20;
    if (roll < 10) {
      image('virtual-disk', volume('qcow2', null, size), size);
      add('disk', 1);
    } else if (roll < 13) {
      // A template: one snapshot with two disks made from it.
      const base = volume('qcow2', null, size);
      image('snapshot', base, size);
      add('snapshot', 1);
      for (let i = 0; i < 2 && made < count; i++) {
        image('virtual-disk', volume('qcow2', base, size), size);
        add('disk on snapshot', 1);
      }
    } else if (roll < 15) {
      image('virtual-disk', volume('raw', null, size), size, { removed: { at: now, operationId: 'bench' } });
      add('removed', 1);
    } else if (roll === 15) {
      const base = volume('qcow2', null, size);
      image('snapshot', base, size, { removed: { at: now, operationId: 'bench' } });
      image('virtual-disk', volume('qcow2', base, size), size);
      add('removed snapshot under one disk', 2);
    } else if (roll === 16) {
      image('virtual-disk', randomUUID(), size, { status: 'broken', pending: { step: 'create-volume', format: 'qcow2', preallocate: false, parentId: null, then: 'optimized' } });
      add('broken', 1);
    } else if (roll === 17) {
      const base = volume('qcow2', null, size);
      image('snapshot', base, size);
      image('virtual-disk', volume('qcow2', base, size), size, { strategy: 'performance', status: 'degraded' });
      add('degraded', 2);
    } else {
      image('virtual-disk', volume('qcow2', null, size), size);
      add('disk', 1);
      if (roll === 18) {
        volume('qcow2', null, size);
        mix['orphan volume'] += 1;
      } else {
        writeFileSync(join(root, 'tmp', `${randomUUID()}.json.${randomUUID()}.tmp`), 'x');
        mix['stray temporary file'] += 1;
      }
    }
  }
  execFileSync('sync');
  return mix;
}

/** A real `diskflow worker` process, so its memory is the worker's alone. */
async function startWorker(home: string, address: string): Promise<ChildProcess> {
  const child = spawn(join(PROJECT_ROOT, 'bin', 'diskflow'), ['worker', '--host-id', 'bench'], {
    env: { ...process.env, TEMPORAL_ADDRESS: address, DISKFLOW_HOME: home, DISKFLOW_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`worker exited with ${code}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => line.includes('host worker started') && resolve());
  });
  return child;
}

async function main(): Promise<void> {
  const count = Number(arg('images', '10000'));
  const rounds = Number(arg('rounds', '5'));
  const scratch = mkdtempSync(join(arg('dir', '/var/tmp'), 'bench-check-'));
  const server = await startDevServer();
  const worker = await startWorker(join(scratch, 'home'), server.address);
  const client = await StorageClient.connect({ address: server.address, hostId: 'bench' });
  try {
    const path = join(scratch, 'repo');
    mkdirSync(path);
    // Connect waits for the worker: it is the first call its host queue answers.
    await client.initStorageRepository('localfs-1.0', { path });
    await client.connectStorageRepository('big', 'localfs-1.0', { path });
    const idle = memoryOf(worker.pid!);
    const populateStart = Date.now();
    const mix = populate(path, count);
    const populateSeconds = (Date.now() - populateStart) / 1000;

    const times: number[] = [];
    let fixes: Fix[] = [];
    for (let round = 0; round < rounds; round++) {
      const start = process.hrtime.bigint();
      fixes = await client.checkStorageRepository('big');
      times.push(Number(process.hrtime.bigint() - start) / 1e9);
    }
    const after = memoryOf(worker.pid!);
    const byType = fixes.reduce<Record<string, number>>((n, f) => ((n[f.type] = (n[f.type] ?? 0) + 1), n), {});
    const sorted = [...times].sort((a, b) => a - b);
    process.stdout.write(
      [
        `bench/check: checkStorageRepository through the client on a localfs repository of ${count} images, ${rounds} rounds`,
        describeMachine({ repository: `${path} (written in ${populateSeconds.toFixed(1)} s)` }),
        `mix: ${Object.entries(mix).map(([k, v]) => `${v} ${k}`).join(', ')}`,
        `fixes found: ${Object.entries(byType).map(([k, v]) => `${v} ${k}`).join(', ')} (${(JSON.stringify(fixes).length / 2 ** 20).toFixed(1)} MiB as JSON)`,
        `check time: median ${percentile(sorted, 50).toFixed(2)} s, slowest ${sorted[sorted.length - 1].toFixed(2)} s, first (cold) ${times[0].toFixed(2)} s (goal: median <= 1 s: ${percentile(sorted, 50) <= 1 ? 'met' : 'NOT met'})`,
        `worker memory: ${idle.rss.toFixed(0)} MiB resident before, peak ${after.peak.toFixed(0)} MiB = ${((after.peak * 2 ** 20) / 1e6).toFixed(0)} MB (goal <= 200 MB: ${(after.peak * 2 ** 20) / 1e6 <= 200 ? 'met' : 'NOT met'}), ${after.rss.toFixed(0)} MiB after (${after.anon.toFixed(0)} MiB own, ${after.file.toFixed(0)} MiB mapped files such as the Temporal core library)`,
      ].join('\n') + '\n',
    );
  } finally {
    await client.close();
    worker.kill('SIGTERM');
    await new Promise((resolve) => worker.once('exit', resolve));
    await server.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}

if (require.main === module) main().catch((error) => {
  console.error(error);
  process.exit(1);
});
