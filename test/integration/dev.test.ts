/**
 * `diskflow dev`, the README's first command, as a user runs it: the embedded server and Web UI,
 * this host's worker, the default repository; Ctrl-C stops everything; the next start finds
 * the images made before.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { diskflowJson } from '../harness/cli';
import { DISKFLOW_BIN } from '../harness/hosts';
import { scrape } from '../harness/metrics';
import { freePort } from '../harness/ports';
import { removeTempDirs, tempDir } from '../harness/repositories';
import { eventually } from '../harness/wait';

const running = new Set<ChildProcess>();

interface Dev {
  child: ChildProcess;
  output: () => string;
}

async function startDev(env: Record<string, string>): Promise<Dev> {
  const child = spawn(process.execPath, [DISKFLOW_BIN, 'dev'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.on('exit', () => running.delete(child));
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  await eventually(async () => output, (o) => o.includes('Ctrl-C stops everything') || child.exitCode !== null, 90_000);
  if (child.exitCode !== null) throw new Error(`diskflow dev exited: ${output}`);
  return { child, output: () => output };
}

async function interrupt(dev: Dev): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => dev.child.once('exit', (code) => resolve(code)));
  dev.child.kill('SIGINT');
  return exited;
}

function temporalServersOn(port: number): number {
  const out = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
  return out.split('\n').filter((line) => line.includes('temporal') && line.includes('start-dev') && line.includes(`--port ${port}`)).length;
}

afterAll(async () => {
  for (const child of running) child.kill('SIGKILL');
  removeTempDirs();
});

describe('diskflow dev', () => {
  it(
    'runs the server, the Web UI, a worker and the default repository; stops on Ctrl-C; finds its images again',
    async () => {
      const port = await freePort();
      const uiPort = await freePort();
      const metricsAddress = `127.0.0.1:${await freePort()}`;
      const env = {
        DISKFLOW_HOME: tempDir('dev-home'),
        DISKFLOW_DEV_PORT: String(port),
        DISKFLOW_UI_PORT: String(uiPort),
        DISKFLOW_METRICS_ADDRESS: metricsAddress,
        DISKFLOW_HOST_ID: 'dev-host',
      };
      const cli = { ...env, TEMPORAL_ADDRESS: `127.0.0.1:${port}` };

      const first = await startDev(env);
      expect(first.output()).toContain(`Temporal UI   http://localhost:${uiPort}`);
      expect(first.output()).toContain('repository    default (localfs-1.0');
      expect(first.output()).toContain('npx diskflow disk create default 1G');
      expect(first.output()).toContain(`metrics       http://${metricsAddress}/metrics`);

      const imageId = await diskflowJson<string>(['disk', 'create', 'default', '1G'], cli);
      await eventually(() => diskflowJson<{ status: string }>(['image', 'status', 'default', imageId], cli), (s) => s.status === 'optimized');

      // The worker's metrics: the SDK's and diskflow's, the create counted once it is done.
      const metrics = await eventually(
        () => scrape(`http://${metricsAddress}/metrics`),
        (m) => m.sum('diskflow_operations_total', { operation_type: 'createVirtualDisk', outcome: 'completed', repository: 'default' }) === 1,
      );
      expect(metrics.select('temporal_worker_task_slots_available', { host: 'dev-host' }).length).toBeGreaterThan(0);
      expect(metrics.sum('diskflow_images', { repository: 'default', status: 'optimized' })).toBe(1);

      const page = await fetch(`http://localhost:${uiPort}/`);
      expect(page.status).toBe(200);
      const query = encodeURIComponent(`DiskflowImage = "${imageId}"`);
      const listed = await eventually(
        async () => (await (await fetch(`http://localhost:${uiPort}/api/v1/namespaces/default/workflows?query=${query}`)).json()) as { executions?: { type: { name: string } }[] },
        (body) => (body.executions ?? []).some((e) => e.type.name === 'createVirtualDisk'),
      );
      expect(listed.executions!.every((e) => ['createVirtualDisk', 'getImageStatus'].includes(e.type.name))).toBe(true);

      expect(await interrupt(first)).toBe(0);
      expect(first.output()).toContain('diskflow stopped');
      expect(temporalServersOn(port)).toBe(0);

      const second = await startDev(env);
      expect(second.output()).toContain('1 image');
      expect(await diskflowJson<{ imageId: string }>(['image', 'status', 'default', imageId], cli)).toMatchObject({ imageId, status: 'optimized' });
      expect(await interrupt(second)).toBe(0);
      expect(temporalServersOn(port)).toBe(0);
    },
    240_000,
  );
});
