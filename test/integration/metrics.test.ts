/**
 * A host worker's Prometheus metrics, scraped as Prometheus does while it works: a copy moving
 * bytes, a copy whose qemu-img stops moving (SIGSTOP: storage that hangs), and steps that wait
 * because no host can take them. The host copies at a limited rate, so a copy lasts seconds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StorageClient } from '../../client/storage-client';
import { diskflow } from '../harness/cli';
import { Model, sameContent, writeImage } from '../harness/content';
import { clientFor, startHost, stopAllHosts } from '../harness/hosts';
import { scrape } from '../harness/metrics';
import { freePort } from '../harness/ports';
import { imageRecord, qemuProcessesFor } from '../harness/records';
import { localRepository, removeTempDirs } from '../harness/repositories';
import { eventually } from '../harness/wait';

const MiB = 2 ** 20;
const SIZE = 128 * MiB;
const DATA = 96 * MiB;
const HOST = 'metrics-host';
let url: string;
let client: StorageClient;
let dstPath: string;
let source: string;
const model = Model.blank(SIZE);
const stopped: number[] = [];

beforeAll(async () => {
  url = `http://127.0.0.1:${await freePort()}/metrics`;
  await startHost(HOST, {
    DISKFLOW_METRICS_ADDRESS: url.slice('http://'.length, -'/metrics'.length),
    DISKFLOW_COPY_CHUNK: '16M',
    DISKFLOW_COPY_RATE_LIMIT: '24M',
    DISKFLOW_PROGRESS_INTERVAL_MS: '300',
    DISKFLOW_STALL_AFTER: '3s',
    // One step of a repository at a time: a second one waits, for the waiting gauge.
    DISKFLOW_MAX_CONCURRENT_STEPS: '1',
  });
  client = await clientFor(HOST);
  await localRepository(client, 'src');
  dstPath = await localRepository(client, 'dst');
  source = await client.createVirtualDisk('src', SIZE);
  await eventually(() => client.getImageStatus('src', source), (s) => s.status === 'optimized');
  const writes = [0, 1, 2].map((i) => ({ pattern: 0xb0 + i, offset: i * 40 * MiB, length: 32 * MiB }));
  await writeImage(client, 'src', source, ...writes);
  model.write(...writes);
}, 120_000);

afterAll(async () => {
  // A test that failed half-way must not leave a stopped qemu-img behind.
  for (const pid of stopped) {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // gone already
    }
  }
  await client?.close();
  await stopAllHosts();
  removeTempDirs();
});

const copying = (copy: string, above = 0) =>
  eventually(() => client.getImageStatus('dst', copy), (s) => s.status === 'broken' && s.stage?.current === 1 && s.percentComplete > above, 30_000);
const copyLabels = { operation_type: 'copyImage', step: 'mendImage', repository: 'dst', host: HOST };
const bytesLabels = { operation_type: 'copyImage', repository: 'dst', host: HOST };

describe('a host worker\'s metrics', () => {
  it('during a copy: the bytes-moved counter rises and the copy is in progress; after it, the counter holds its data and the operation counts completed', async () => {
    const before = await scrape(url);
    const copy = await client.copyImage('dst', source);
    await copying(copy, 5);
    // The image census is kept up to a second (CENSUS_MAX_AGE_MS): a copy that got this far
    // within a second of `before` is counted at the next census, while it still runs.
    const first = await eventually(
      () => scrape(url),
      (m) => m.sum('diskflow_images', { repository: 'dst', status: 'broken' }) === 1,
      3_000,
    );
    expect(first.sum('diskflow_steps_in_progress', copyLabels)).toBe(1);
    expect(first.sum('diskflow_images', { repository: 'dst', status: 'broken' })).toBe(1);
    await new Promise((r) => setTimeout(r, 1500));
    const second = await scrape(url);
    expect(second.sum('diskflow_bytes_moved_total', bytesLabels)).toBeGreaterThan(first.sum('diskflow_bytes_moved_total', bytesLabels));
    expect(first.sum('diskflow_bytes_moved_total', bytesLabels)).toBeGreaterThan(before.sum('diskflow_bytes_moved_total', bytesLabels));

    await eventually(() => client.getImageStatus('dst', copy), (s) => s.status === 'optimized', 60_000);
    const after = await eventually(
      () => scrape(url),
      (m) => m.sum('diskflow_operations_total', { operation_type: 'copyImage', outcome: 'completed', repository: 'dst' }) === before.sum('diskflow_operations_total', { operation_type: 'copyImage', outcome: 'completed', repository: 'dst' }) + 1,
    );
    expect(after.sum('diskflow_steps_in_progress', copyLabels)).toBe(0);
    // Every byte of the copy's data, less at most what moved before its first progress report.
    const moved = after.sum('diskflow_bytes_moved_total', bytesLabels) - before.sum('diskflow_bytes_moved_total', bytesLabels);
    expect(moved).toBeLessThanOrEqual(DATA);
    expect(moved).toBeGreaterThan(0.9 * DATA);
    expect(after.sum('diskflow_steps_total', { ...copyLabels, outcome: 'completed' })).toBeGreaterThanOrEqual(1);
    // The Temporal SDK's own metrics come from the same endpoint, with the host on them.
    expect(after.select('temporal_activity_execution_latency_seconds_count', { activity_type: 'mendImage', host: HOST }).length).toBeGreaterThan(0);
    expect(after.sum('diskflow_stall_threshold_seconds', { host: HOST })).toBe(3);
  }, 90_000);

  it('a copy whose qemu-img stops moving counts as stalled after DISKFLOW_STALL_AFTER and `repo check` lists it; moving again, it is not, and ends correct', async () => {
    const copy = await client.copyImage('dst', source);
    await copying(copy, 10);
    const volumeId = imageRecord(dstPath, copy).volumeId;
    const pids = qemuProcessesFor(volumeId).map((line) => Number(line.trim().split(/\s+/)[0]));
    expect(pids.length).toBeGreaterThan(0);
    for (const pid of pids) {
      process.kill(pid, 'SIGSTOP');
      stopped.push(pid);
    }
    const stalled = await eventually(() => scrape(url), (m) => m.sum('diskflow_operations_stalled', copyLabels) === 1, 15_000);
    expect(stalled.sum('diskflow_steps_in_progress', copyLabels)).toBe(1);

    const check = await diskflow(['repo', 'check', 'dst', '--stalled-after', '3s'], { DISKFLOW_HOST_ID: HOST });
    expect(check.code).toBe(0);
    expect(check.stdout).toMatch(/stalled: 1 operation with no progress for 3 s or more/);
    expect(check.stdout).toContain(copy);
    expect(check.stdout).toMatch(/mendImage on metrics-host@\S+ made no progress, at stage 1\/2 \d+%/);
    // --json: stdout stays the API's answer, the stalled operation is told on stderr.
    const json = await diskflow(['repo', 'check', 'dst', '--stalled-after', '3s', '--json'], { DISKFLOW_HOST_ID: HOST });
    expect(Array.isArray(JSON.parse(json.stdout))).toBe(true);
    expect(json.stderr).toContain(`image ${copy}`);
    // A longer threshold does not list it.
    expect((await diskflow(['repo', 'check', 'dst', '--stalled-after', '10m'], { DISKFLOW_HOST_ID: HOST })).stdout).not.toContain('stalled');

    for (const pid of stopped.splice(0)) process.kill(pid, 'SIGCONT');
    await eventually(() => scrape(url), (m) => m.sum('diskflow_operations_stalled', copyLabels) === 0, 15_000);
    await eventually(() => client.getImageStatus('dst', copy), (s) => s.status === 'optimized', 60_000);
    expect(await sameContent(client, 'dst', copy, model)).toBe(true);
    expect((await diskflow(['repo', 'check', 'dst', '--stalled-after', '3s'], { DISKFLOW_HOST_ID: HOST })).stdout).not.toContain('stalled');
  }, 120_000);

  it('a step no host can take yet counts as waiting, and `repo check` lists it once it waited the stall time', async () => {
    // A copy inside dst holds the one slot of dst on this host (its qemu-img stopped, so it keeps
    // holding it); a new disk's mend then waits for a host with a free slot.
    const inside = await client.copyImage('dst', (await client.listImages('dst')).find((i) => i.status === 'optimized')!.imageId);
    await copying(inside, 5);
    for (const line of qemuProcessesFor(imageRecord(dstPath, inside).volumeId)) {
      const pid = Number(line.trim().split(/\s+/)[0]);
      process.kill(pid, 'SIGSTOP');
      stopped.push(pid);
    }
    const disk = await client.createVirtualDisk('dst', MiB);
    const waiting = await eventually(() => scrape(url), (m) => m.sum('diskflow_steps_waiting', { repository: 'dst', queue: 'repository' }) >= 1, 15_000);
    expect(waiting.select('diskflow_steps_waiting_oldest_seconds', { repository: 'dst', queue: 'repository' }).length).toBe(1);
    await eventually(() => scrape(url), (m) => m.sum('diskflow_steps_waiting_oldest_seconds', { repository: 'dst', queue: 'repository' }) > 1, 15_000);
    const check = await eventually(
      () => diskflow(['repo', 'check', 'dst', '--stalled-after', '3s'], { DISKFLOW_HOST_ID: HOST }),
      (c) => c.stdout.includes(disk),
      15_000,
    );
    expect(check.stdout).toMatch(/mendImage waits for a host with repository \S+ connected \(task queue diskflow\.repo\./);
    expect(check.stdout).toMatch(new RegExp(`createVirtualDisk:[0-9a-f-]{36}\\s.*${disk}`));

    for (const pid of stopped.splice(0)) process.kill(pid, 'SIGCONT');
    await eventually(() => client.getImageStatus('dst', disk), (s) => s.status === 'optimized', 60_000);
    await eventually(() => scrape(url), (m) => m.sum('diskflow_steps_waiting', { repository: 'dst', queue: 'repository' }) === 0, 15_000);
    await eventually(() => client.getImageStatus('dst', inside), (s) => s.status === 'optimized', 60_000);
  }, 120_000);
});
