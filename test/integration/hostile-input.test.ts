/**
 * Every workflow type diskflow registers, public and internal, started directly as an engine in
 * another language or an operator would: with the `temporal` CLI and with the Temporal client,
 * bypassing diskflow's client and its checks. Each hostile start fails promptly with its code
 * and leaves DISKFLOW_HOME and the repository exactly as they were.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WORKFLOW_CONTRACTS } from '../../api/operations';
import { SRM_METADATA_WORKFLOW } from '../../api/srm-metadata';
import { WORKFLOW_TASK_QUEUE } from '../../api/task-queues';
import type { StorageClient } from '../../client/storage-client';
import { temporalCli } from '../harness/cli';
import { clientFor, startHost, stopAllHosts, TestHost } from '../harness/hosts';
import { localRepository, removeTempDirs, tempDir, treeHash } from '../harness/repositories';
import { eventually } from '../harness/wait';

const HOST = 'hostile-host';
const MiB = 2 ** 20;
let host: TestHost;
let client: StorageClient;
let repoPath: string;
let emptyDir: string;
let disk: string;

beforeAll(async () => {
  host = await startHost(HOST);
  client = await clientFor(HOST);
  repoPath = await localRepository(client, 'hostile');
  emptyDir = tempDir('hostile-empty');
  disk = await client.createVirtualDisk('hostile', MiB);
  await eventually(() => client.getImageStatus('hostile', disk), (s) => s.status === 'optimized');
});

afterAll(async () => {
  await client?.close();
  await stopAllHosts();
  removeTempDirs();
});

type Code = 'INVALID_ARGUMENT' | 'FIX_INVALID';
const nest = (levels: number): unknown => {
  let value: unknown = 'deep';
  for (let i = 0; i < levels; i++) value = { v: value };
  return value;
};

/**
 * For each type: a start that the `temporal` CLI makes (JSON text as an operator types it, with
 * the key a JSON object can carry and a JS object cannot: `__proto__`), the code it must get, and
 * what the message must name.
 */
const viaCli: Record<string, [input: string, code: Code, names: string]> = {
  initStorageRepository: ['{"hostId":"hostile-host","repoFormat":"localfs-1.0","connectionParameters":{"path":"/tmp/../etc"}}', 'INVALID_ARGUMENT', 'connectionParameters.path'],
  connectStorageRepository: ['{"hostId":"hostile-host","repoId":"evil","repoFormat":"posixfs-1.0","connectionParameters":{"spec":"sshfs#root@x:/","vfsType":"fuse.sshfs"}}', 'INVALID_ARGUMENT', 'vfsType'],
  disconnectStorageRepository: ['{"hostId":"hostile-host","repoId":"hostile","__proto__":{"repoId":"x"}}', 'INVALID_ARGUMENT', 'input.__proto__'],
  getStorageRepositoryConstraints: ['{"hostId":"-h","repoId":"hostile"}', 'INVALID_ARGUMENT', 'input.hostId'],
  startRepositoryManager: ['{"hostId":"hostile-host","repoId":"../hostile"}', 'INVALID_ARGUMENT', 'input.repoId'],
  stopRepositoryManager: ['{"hostId":"hostile-host","repoId":"hostile","force":true}', 'INVALID_ARGUMENT', 'input'],
  createVirtualDisk: ['{"hostId":"hostile-host","targetRepoId":"hostile","size":1048576,"userData":{"vm":{"__proto__":{"admin":true}}}}', 'INVALID_ARGUMENT', 'input.userData.vm.__proto__'],
  createSnapshot: ['{"hostId":"hostile-host","targetRepoId":"hostile","baseVirtualDiskId":"../../etc/passwd"}', 'INVALID_ARGUMENT', 'input.baseVirtualDiskId'],
  copyImage: ['{"hostId":"hostile-host","targetRepoId":"hostile","imageId":"IMAGE","options":{"imageHints":{"__proto__":"hostile"}}}', 'INVALID_ARGUMENT', 'input.options.imageHints.__proto__'],
  removeImage: ['{"hostId":"hostile-host","repositoryId":"hostile","imageId":"IMAGE","options":{"constructor":{"prototype":1}}}', 'INVALID_ARGUMENT', 'input.options.constructor'],
  resizeVirtualDisk: ['{"hostId":"hostile-host","repositoryId":"hostile","imageId":"IMAGE","newSize":-1048576}', 'INVALID_ARGUMENT', 'input.newSize'],
  serveBackup: ['{"hostId":"hostile-host","repositoryId":"hostile","imageId":"IMAGE","since":"../../etc/passwd"}', 'INVALID_ARGUMENT', 'input.since'],
  importImage: ['{"hostId":"hostile-host","targetRepoId":"hostile","source":"file:///etc/shadow"}', 'INVALID_ARGUMENT', 'input.source'],
  exportImage: ['{"hostId":"hostile-host","repositoryId":"hostile","imageId":"IMAGE","path":"/tmp/../etc/cron.d/diskflow"}', 'INVALID_ARGUMENT', 'input.path'],
  measureImage: ['{"hostId":"hostile-host","targetRepoId":"hostile","source":{"location":"/srv/x","imageId":"IMAGE"}}', 'INVALID_ARGUMENT', 'input.source'],
  getImageStatus: ['{"hostId":"hostile-host","repositoryId":"hostile","imageId":"IMAGE/../../x"}', 'INVALID_ARGUMENT', 'input.imageId'],
  listImages: ['{"hostId":"hostile-host","repositoryId":""}', 'INVALID_ARGUMENT', 'input.repositoryId'],
  listImagesPage: ['{"hostId":"hostile-host","repositoryId":"hostile","after":"../../../etc"}', 'INVALID_ARGUMENT', 'input.after'],
  prepareImage: ['{"hostId":"hostile-host","repositoryId":"hostile","imageId":".."}', 'INVALID_ARGUMENT', 'input.imageId'],
  teardownImage: ['{"hostId":"hostile-host","repositoryId":"hostile","imageId":12}', 'INVALID_ARGUMENT', 'input.imageId'],
  checkStorageRepository: ['{"hostId":"hostile-host","repositoryId":"hostile","options":{"deep":true}}', 'INVALID_ARGUMENT', 'input.options'],
  fixStorageRepository: ['{"hostId":"hostile-host","repositoryId":"hostile","fix":{"type":"clean","imageIds":[],"description":"","bytes":0,"data":"e30.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!!"}}', 'FIX_INVALID', 'fix data'],
  [SRM_METADATA_WORKFLOW]: ['{"repoUuid":"REPO","call":{"method":"removeVolume","volumeId":"IMAGE"}}', 'INVALID_ARGUMENT', 'input.operationId'],
};

/** What the Temporal client sends (a JS value, as another SDK would): no input, the wrong kind, too deep. */
const viaClient: [what: string, args: unknown[], names: string][] = [
  ['no input at all', [], 'input'],
  ['null', [null], 'input'],
  ['an array', [[{ hostId: HOST }]], 'input'],
  ['a value nested 2000 deep', [{ hostId: HOST, repoId: 'hostile', repositoryId: 'hostile', targetRepoId: 'hostile', size: MiB, userData: nest(2000) }], 'nests deeper than'],
];

async function failureOf(workflowId: string): Promise<ApplicationFailure> {
  const failure = await client.temporal.workflow.getHandle(workflowId).result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(failure, workflowId).toBeInstanceOf(WorkflowFailedError);
  return (failure as WorkflowFailedError).cause as ApplicationFailure;
}

const state = () => treeHash(host.home, repoPath, emptyDir);
const types = [...Object.keys(WORKFLOW_CONTRACTS), SRM_METADATA_WORKFLOW];

describe('hostile starts of every workflow type fail with their code and change nothing', () => {
  it('every registered type has its hostile cases', () => {
    expect(Object.keys(viaCli).sort()).toEqual([...types].sort());
  });

  it.each(types)('%s started with the `temporal` CLI', async (type) => {
    const [text, code, names] = viaCli[type];
    const repoUuid = (JSON.parse(readFileSync(join(repoPath, 'diskflow-repository.json'), 'utf8')) as { uuid: string }).uuid;
    const input = text.replace(/IMAGE/g, disk).replace(/REPO/g, repoUuid);
    const before = state();
    const workflowId = `hostile-cli-${type}-${randomUUID()}`;
    const started = Date.now();
    await temporalCli(['workflow', 'start', '--type', type, '--task-queue', WORKFLOW_TASK_QUEUE, '--workflow-id', workflowId, '--input', input]);
    const cause = await failureOf(workflowId);
    expect(cause.type).toBe(code);
    expect(cause.message).toContain(names);
    // Refused at once, not left waiting for a host or an SRM.
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(state()).toBe(before);
  });

  it.each(types)('%s started with the Temporal client: no input, null, an array, 2000 levels deep', async (type) => {
    const before = state();
    for (const [what, args, names] of viaClient) {
      const workflowId = `hostile-client-${type}-${randomUUID()}`;
      await client.temporal.workflow.start(type, { taskQueue: WORKFLOW_TASK_QUEUE, workflowId, args, workflowExecutionTimeout: '1 minute' });
      const cause = await failureOf(workflowId);
      expect(cause.type, what).toBe('INVALID_ARGUMENT');
      expect(cause.message, what).toContain(names);
    }
    expect(state()).toBe(before);
  });
});
