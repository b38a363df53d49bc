/**
 * What a worker refuses to start with, and what dies with it: a fix key too weak to protect fix
 * data, a host id another live worker serves, and every tool it runs (qemu-img, dd) when it is
 * killed outright.
 */
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processAlive } from '../../activities/process';
import type { StorageClient } from '../../client/storage-client';
import { writeImage } from '../harness/content';
import { clientFor, ROOT, startHost, startHostExpectingExit, stopAllHosts, TestHost } from '../harness/hosts';
import { processesMatching } from '../harness/records';
import { localRepository, removeTempDirs } from '../harness/repositories';
import { eventually } from '../harness/wait';

const MiB = 2 ** 20;
let host: TestHost;
let client: StorageClient;
let repoPath: string;

beforeAll(async () => {
  // Slow copies (1 MiB/s), so one is surely under way when the worker is killed.
  host = await startHost('life-host', { DISKFLOW_COPY_RATE_LIMIT: '1M', DISKFLOW_COPY_CHUNK: '64M' });
  client = await clientFor('life-host');
  repoPath = await localRepository(client, 'life');
});

afterAll(async () => {
  await client?.close();
  await stopAllHosts();
  removeTempDirs();
});

/** Processes of `command` (its executable's name) whose command line mentions `text`. */
const processes = (command: string, text: string) => processesMatching(new RegExp(`^\\s*\\d+ \\S*\\b${command} `), text);

/** How long until no such process is left (ms), polling every 50 ms for at most `limitMs`. */
async function goneWithin(command: string, text: string, limitMs: number): Promise<number> {
  const start = Date.now();
  while (processes(command, text).length && Date.now() - start < limitMs + 1000) await new Promise((r) => setTimeout(r, 50));
  return Date.now() - start;
}

describe('a worker refuses to start', () => {
  it('with a fix key file that is empty: the message names the file', async () => {
    const { code, stderr, home } = await startHostExpectingExit('life-empty-key', {}, (dir) => writeFileSync(join(dir, 'fix.key'), ''));
    expect(code).not.toBe(0);
    expect(stderr).toContain(`${join(home, 'fix.key')} holds a fix key of 0 bytes; it must hold at least 32`);
  });

  it('with a DISKFLOW_FIX_KEY shorter than 32 bytes', async () => {
    const { code, stderr } = await startHostExpectingExit('life-short-key', { DISKFLOW_FIX_KEY: 'x' });
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/INVALID_ARGUMENT: DISKFLOW_FIX_KEY holds 1 bytes; it must hold at least 32/);
  });

  it('with a host id that a live worker elsewhere (another DISKFLOW_HOME) serves', async () => {
    const { code, stderr } = await startHostExpectingExit('life-host');
    expect(code).not.toBe(0);
    expect(stderr).toContain(`host id life-host is in use: worker life-host@`);
    expect(stderr).toContain(`pid ${host.process.pid} on this machine`);
    // The first worker goes on serving it.
    expect((await client.getStorageRepositoryConstraints('life')).needsSrm).toBe(false);
  });
});

/** The pids of the spawners (activities/spawner.ts) that the process `pid` started. */
function spawnersOf(pid: number): string[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid), '-f', 'spawner-process.js'], { encoding: 'utf8' }).trim().split('\n');
  } catch {
    return []; // pgrep: none
  }
}

describe('nothing a worker started outlives it', () => {
  it('a worker SIGKILLed mid-copy leaves no qemu-img running within 2 s', async () => {
    const disk = await client.createVirtualDisk('life', 32 * MiB);
    await eventually(() => client.getImageStatus('life', disk), (s) => s.status === 'optimized');
    await writeImage(client, 'life', disk, { pattern: 0x5a, offset: 0, length: 16 * MiB });
    await client.copyImage('life', disk);
    try {
      await eventually(async () => processes('qemu-img', repoPath), (found) => found.some((line) => line.includes(' convert ')), 30_000);
      await host.stop('SIGKILL');
      expect(await goneWithin('qemu-img', repoPath, 2000)).toBeLessThanOrEqual(2000);
    } finally {
      // Pass or fail, nothing of this test is left running.
      for (const line of processes('qemu-img', repoPath)) process.kill(Number(line.trim().split(/\s+/)[0]), 'SIGKILL');
    }
  });

  it('a spawner that dies fails the tools it was running, and the next tool starts a new one', async () => {
    const marker = String(10 ** 12 + process.pid + 1);
    const script = `
      const { run } = require(${JSON.stringify(join(ROOT, 'dist', 'activities', 'process.js'))});
      const { execFileSync } = require('node:child_process');
      const spawners = () => execFileSync('pgrep', ['-P', String(process.pid), '-f', 'spawner-process.js'], { encoding: 'utf8' }).trim();
      (async () => {
        const running = run('dd', ['if=/dev/zero', 'of=/dev/null', 'bs=1', 'count=${marker}']);
        await new Promise((r) => setTimeout(r, 500));
        const first = spawners();
        process.kill(Number(first), 'SIGKILL');
        const failure = await running.then(() => 'finished', (error) => error.code + ': ' + error.message);
        const next = await run('echo', ['again']);
        console.log(JSON.stringify({ failure, next: next.stdout.trim(), renewed: spawners() !== first }));
      })();`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    try {
      await new Promise((resolve) => child.on('exit', resolve));
      expect(JSON.parse(out)).toEqual({ failure: expect.stringMatching(/^STORAGE_ERROR: dd: the spawner process that ran it ended/), next: 'again', renewed: true });
      // Its tool died with it (pdeathsig), not left running unwatched.
      expect(await goneWithin('dd', marker, 2000)).toBeLessThanOrEqual(2000);
    } finally {
      child.kill('SIGKILL');
      for (const line of processes('dd', marker)) process.kill(Number(line.trim().split(/\s+/)[0]), 'SIGKILL');
    }
  });

  it('a dd a worker runs dies with it too', async () => {
    const marker = String(10 ** 12 + process.pid);
    const worker = spawn(process.execPath, ['-e', `require(${JSON.stringify(join(ROOT, 'dist', 'activities', 'process.js'))}).run('dd', ['if=/dev/zero', 'of=/dev/null', 'bs=1', 'count=${marker}'])`], { stdio: 'ignore' });
    try {
      await eventually(async () => processes('dd', marker), (found) => found.length === 1, 10_000);
      // The worker starts its tools through its spawner (activities/spawner.ts): that dies with it too.
      const [spawner] = spawnersOf(worker.pid!);
      expect(spawner).toMatch(/^\d+$/);
      worker.kill('SIGKILL');
      expect(await goneWithin('dd', marker, 2000)).toBeLessThanOrEqual(2000);
      expect(await eventually(async () => processAlive(Number(spawner)), (alive) => !alive, 2000)).toBe(false);
    } finally {
      worker.kill('SIGKILL');
      for (const line of processes('dd', marker)) process.kill(Number(line.trim().split(/\s+/)[0]), 'SIGKILL');
    }
  });
});
