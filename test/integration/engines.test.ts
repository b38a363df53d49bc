/**
 * An engine in another language starts workflows directly, by type, task queue and JSON input
 * (docs/ENGINES.md). Here the engine is the `temporal` CLI itself.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WORKFLOW_TASK_QUEUE } from '../../api/task-queues';
import { diskflowJson, temporalCli } from '../harness/cli';
import { startHost, stopAllHosts } from '../harness/hosts';
import { localRepository, removeTempDirs } from '../harness/repositories';
import { clientFor } from '../harness/hosts';
import { eventually } from '../harness/wait';
import { Hold, within } from '../harness/holds';

const temporal = temporalCli;
// Armed on the host for every test; it holds mends only inside hold.during().
const mendHold = new Hold('mend.start');

beforeAll(async () => {
  await startHost('engine-host', mendHold.env);
  const client = await clientFor('engine-host');
  await localRepository(client, 'engine');
  await client.close();
});

afterAll(async () => {
  await stopAllHosts();
  removeTempDirs();
});

describe('engines in other languages', () => {
  it('`temporal workflow start` with the documented type, queue and JSON input creates a disk', async () => {
    const workflowId = `engine-start-${Date.now()}`;
    const input = JSON.stringify({ hostId: 'engine-host', targetRepoId: 'engine', size: 8 * 2 ** 20, userData: { from: 'cli' } });
    await temporal(['workflow', 'start', '--type', 'createVirtualDisk', '--task-queue', WORKFLOW_TASK_QUEUE, '--workflow-id', workflowId, '--input', input]);
    const result = JSON.parse(await temporal(['workflow', 'result', '--workflow-id', workflowId, '--output', 'json']));
    const imageId = result.result.imageId as string;
    expect(imageId).toMatch(/^[0-9a-f-]{36}$/);
    const status = await eventually(
      () => diskflowJson<{ status: string; userData: unknown }>(['image', 'status', 'engine', imageId], { DISKFLOW_HOST_ID: 'engine-host' }),
      (s) => s.status === 'optimized',
    );
    expect(status.userData).toEqual({ from: 'cli' });
  });

  it('Update-With-Start on the `persisted` update returns the id as soon as the disk is persisted', async () => {
    const workflowId = `engine-uws-${Date.now()}`;
    const input = JSON.stringify({ hostId: 'engine-host', targetRepoId: 'engine', size: 2 ** 20 });
    const status = (imageId: string) => diskflowJson<{ status: string }>(['image', 'status', 'engine', imageId], { DISKFLOW_HOST_ID: 'engine-host' });
    // The mend (autoFix) waits at its start while held: an update answered only at the end would not return.
    const imageId = await mendHold.during(async () => {
      const out = await within(
        temporal([
          'workflow', 'execute-update-with-start', '--update-name', 'persisted', '--workflow-id', workflowId,
          '--type', 'createVirtualDisk', '--task-queue', WORKFLOW_TASK_QUEUE, '--id-conflict-policy', 'UseExisting',
          '--input', input, '--output', 'json',
        ]),
        20_000,
        'the persisted update answering while the mend is held',
      );
      const imageId = (JSON.parse(out).updateResult ?? JSON.parse(out).result).imageId as string;
      expect((await status(imageId)).status).toBe('broken');
      const running = JSON.parse(await temporal(['workflow', 'describe', '--workflow-id', workflowId, '--output', 'json']));
      expect(running.workflowExecutionInfo.status).toMatch(/RUNNING/);
      return imageId;
    });
    // The fix was pending, not absent: released, it runs.
    await eventually(() => status(imageId), (s) => s.status === 'optimized');
  });
});
