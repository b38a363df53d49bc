/**
 * `diskflow dev`, the README's first command, as a user runs it: the embedded server and Web UI,
 * this host's worker, the default repository; Ctrl-C stops everything; the next start finds
 * the images made before.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { diskflowJson } from '../harness/cli';
import { interrupt, startDev, stopAllDevs } from '../harness/dev';
import { scrape } from '../harness/metrics';
import { freePort } from '../harness/ports';
import { removeTempDirs, tempDir } from '../harness/repositories';
import { eventually } from '../harness/wait';

function temporalServersOn(port: number): number {
  const out = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
  return out.split('\n').filter((line) => line.includes('temporal') && line.includes('start-dev') && line.includes(`--port ${port}`)).length;
}

afterAll(async () => {
  await stopAllDevs();
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
