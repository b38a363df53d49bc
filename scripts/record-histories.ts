/**
 * Records one workflow history per workflow type and outcome into test/histories/, against a
 * fresh dev server and a real host worker. The replay test replays every file there on every
 * run, so a change to workflow code that would break running workflows fails CI.
 *
 * Existing files are kept (they are the past that new code must still replay); only missing
 * ones are written. Run after adding a workflow type or a new path through one:
 *   npm run build && node dist/scripts/record-histories.js
 *
 * srmMetadataStep needs a clvm repository with its SRM on another host: its history is
 * recorded by test/integration/srm-clvm.test.ts instead.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { StorageClient } from '../client/storage-client';
import { withOneHost } from '../bench/one-host';
import { PROJECT_ROOT } from '../workers/project-root';

const HISTORIES = join(PROJECT_ROOT, 'test', 'histories');
const HOST = 'recorder';

type Scenario = [name: string, run: (client: StorageClient, ctx: { repo: string; path: string; scratch: string }) => Promise<unknown>];

const waitUsable = async (client: StorageClient, repo: string, imageId: string) => {
  for (let i = 0; i < 100; i++) {
    if ((await client.getImageStatus(repo, imageId)).status !== 'broken') return;
    await new Promise((r) => setTimeout(r, 100));
  }
};

const scenarios: Scenario[] = [
  ['init-ok', (c, { scratch }) => c.initStorageRepository('localfs-1.0', { path: mkdtempSync(join(scratch, 'repo-')) })],
  ['init-not-empty', (c, { path }) => c.initStorageRepository('localfs-1.0', { path })],
  [
    'connect-ok',
    async (c, { scratch }) => {
      const fresh = mkdtempSync(join(scratch, 'repo-'));
      await c.initStorageRepository('localfs-1.0', { path: fresh });
      await c.connectStorageRepository('rec-2', 'localfs-1.0', { path: fresh });
    },
  ],
  ['connect-in-use', (c, { repo, path }) => c.connectStorageRepository(repo, 'localfs-1.0', { path })],
  ['constraints-ok', (c, { repo }) => c.getStorageRepositoryConstraints(repo)],
  // localfs needs no SRM: starting one is refused, stopping one is a no-op.
  ['srm-start-not-needed', (c, { repo }) => c.startRepositoryManager(repo)],
  ['srm-stop-ok', (c, { repo }) => c.stopRepositoryManager(repo)],
  ['create-space', async (c, { repo }) => waitUsable(c, repo, await c.createVirtualDisk(repo, 1 << 20))],
  ['create-performance', async (c, { repo }) => waitUsable(c, repo, await c.createVirtualDisk(repo, 1 << 20, null, { a: 1 }, { strategy: 'performance' }))],
  ['create-no-autofix', (c, { repo }) => c.createVirtualDisk(repo, 1 << 20, null, {}, { autoFix: false })],
  ['create-no-space', (c, { repo }) => c.createVirtualDisk(repo, 2 ** 50, null, {}, { strategy: 'performance' })],
  ['create-repo-not-connected', (c) => c.createVirtualDisk('missing', 1 << 20)],
  [
    'prepare-remove-in-use-teardown-remove',
    async (c, { repo }) => {
      const id = await c.createVirtualDisk(repo, 1 << 20);
      await waitUsable(c, repo, id);
      await c.getImageStatus(repo, id);
      await c.listImages(repo);
      await c.prepareImage(repo, id);
      await c.removeImage(repo, id).catch(() => undefined);
      await c.teardownImage(repo, id);
      await c.removeImage(repo, id);
      await c.getImageStatus(repo, id).catch(() => undefined);
    },
  ],
  ['remove-no-autofix', async (c, { repo }) => c.removeImage(repo, await c.createVirtualDisk(repo, 1 << 20, null, {}, { autoFix: false }), { autoFix: false })],
  [
    'snapshot-then-disk-from-it',
    async (c, { repo }) => {
      const disk = await c.createVirtualDisk(repo, 1 << 20);
      await waitUsable(c, repo, disk);
      const snapshot = await c.createSnapshot(repo, disk, { tag: 'x' });
      await waitUsable(c, repo, disk);
      await waitUsable(c, repo, await c.createVirtualDisk(repo, 2 << 20, snapshot, {}, { strategy: 'performance' }));
      await c.createSnapshot(repo, snapshot).catch(() => undefined);
    },
  ],
  [
    'copy-disk-and-snapshot',
    async (c, { repo }) => {
      const disk = await c.createVirtualDisk(repo, 1 << 20);
      await waitUsable(c, repo, disk);
      await waitUsable(c, repo, await c.copyImage(repo, disk, null, {}, { strategy: 'performance' }));
      const snapshot = await c.createSnapshot(repo, disk);
      await c.copyImage(repo, snapshot);
      await c.copyImage(repo, disk, snapshot).catch(() => undefined);
    },
  ],
  [
    'check-and-fix',
    async (c, { repo }) => {
      const disk = await c.createVirtualDisk(repo, 1 << 20, null, {}, { autoFix: false });
      const gone = await c.createVirtualDisk(repo, 1 << 20);
      await waitUsable(c, repo, gone);
      await c.removeImage(repo, gone, { autoFix: false });
      const snapshot = await c.createSnapshot(repo, gone).catch(() => null);
      void snapshot;
      for (const fix of await c.checkStorageRepository(repo)) {
        const { operationId } = await c.fixStorageRepository(repo, fix);
        await c.waitForOperation(operationId).catch(() => undefined);
      }
      const [first] = await c.checkStorageRepository(repo);
      if (first) await c.fixStorageRepository(repo, { ...first, data: `${first.data}x` }).catch(() => undefined);
      void disk;
    },
  ],
  [
    'optimize-and-merge',
    async (c, { repo }) => {
      const disk = await c.createVirtualDisk(repo, 1 << 20);
      await waitUsable(c, repo, disk);
      const snapshot = await c.createSnapshot(repo, disk);
      const fast = await c.createVirtualDisk(repo, 1 << 20, snapshot, {}, { strategy: 'performance' });
      await waitUsable(c, repo, fast);
      await waitUsable(c, repo, disk);
      await c.removeImage(repo, snapshot);
      await c.removeImage(repo, fast);
      for (const fix of (await c.checkStorageRepository(repo)).filter((f) => f.type === 'merge' || f.type === 'optimize')) {
        const { operationId } = await c.fixStorageRepository(repo, fix);
        await c.waitForOperation(operationId).catch(() => undefined);
      }
    },
  ],
  [
    // The engine chose a host that is not there: the fix is refused before anything is claimed.
    'fix-on-missing-host',
    async (c, { repo }) => {
      await c.createVirtualDisk(repo, 1 << 20, null, {}, { autoFix: false });
      const [fix] = (await c.checkStorageRepository(repo)).filter((f) => f.type === 'mend');
      await c.fixStorageRepository(repo, fix, { hostId: 'no-such-host' });
    },
  ],
  [
    'incremental-copy',
    async (c, { repo }) => {
      const disk = await c.createVirtualDisk(repo, 1 << 20);
      await waitUsable(c, repo, disk);
      const first = await c.copyImage(repo, disk, null, {}, { kind: 'snapshot' });
      await waitUsable(c, repo, first);
      await waitUsable(c, repo, await c.copyImage(repo, disk, first, {}, { kind: 'snapshot' }));
      await c.copyImage(repo, disk, disk).catch(() => undefined);
    },
  ],
  [
    // Optimize and merge leave their old volumes to a clean step on the object manager.
    'fix-then-clean-left-behind',
    async (c, { repo }) => {
      const disk = await c.createVirtualDisk(repo, 1 << 20);
      await waitUsable(c, repo, disk);
      const snapshot = await c.createSnapshot(repo, disk);
      const fast = await c.createVirtualDisk(repo, 1 << 20, snapshot, {}, { strategy: 'performance' });
      await waitUsable(c, repo, fast);
      await waitUsable(c, repo, disk);
      await c.removeImage(repo, snapshot);
      for (const fix of (await c.checkStorageRepository(repo)).filter((f) => f.type === 'optimize')) {
        await c.waitForOperation((await c.fixStorageRepository(repo, fix)).operationId).catch(() => undefined);
      }
      for (const fix of (await c.checkStorageRepository(repo)).filter((f) => f.type === 'merge')) {
        await c.waitForOperation((await c.fixStorageRepository(repo, fix)).operationId).catch(() => undefined);
      }
    },
  ],
  [
    // A disk prepared for a VM: snapshot, copy and removal are refused; a fenced host's mark is released by the engine.
    'in-use-refused-then-fenced-teardown',
    async (c, { repo }) => {
      const disk = await c.createVirtualDisk(repo, 1 << 20);
      await waitUsable(c, repo, disk);
      await c.prepareImage(repo, disk);
      await c.createSnapshot(repo, disk).catch(() => undefined);
      await c.copyImage(repo, disk).catch(() => undefined);
      await c.teardownImage(repo, disk, { fencedHostId: HOST });
      await c.teardownImage(repo, disk);
    },
  ],
  [
    // Two disks at once on a snapshot of another repository: the second waits for the first's copy of it.
    'disks-on-a-snapshot-being-copied-in',
    async (c, { repo, scratch }) => {
      const other = mkdtempSync(join(scratch, 'repo-'));
      await c.initStorageRepository('localfs-1.0', { path: other });
      await c.connectStorageRepository('rec-other', 'localfs-1.0', { path: other });
      const disk = await c.createVirtualDisk('rec-other', 1 << 20);
      await waitUsable(c, 'rec-other', disk);
      const snapshot = await c.createSnapshot('rec-other', disk);
      const made = await Promise.all([c.createVirtualDisk(repo, 1 << 20, snapshot), c.createVirtualDisk(repo, 1 << 20, snapshot)]);
      for (const id of made) await waitUsable(c, repo, id);
    },
  ],
  [
    // A disk served to its VM: snapshot, copy, merge and optimize run live, by its daemon.
    'served-disk-live-operations',
    async (c, { repo }) => {
      const source = await c.createVirtualDisk(repo, 1 << 20);
      await waitUsable(c, repo, source);
      const base = await c.createSnapshot(repo, source);
      await waitUsable(c, repo, source);
      const disk = await c.createVirtualDisk(repo, 1 << 20, base, {}, { strategy: 'performance' });
      await waitUsable(c, repo, disk);
      await c.prepareImage(repo, disk, { serve: 'nbd' });
      const snapshot = await c.createSnapshot(repo, disk);
      await waitUsable(c, repo, snapshot);
      await waitUsable(c, repo, await c.copyImage(repo, disk, null, {}, { bandwidth: 64 << 20 }));
      await c.removeImage(repo, snapshot);
      for (const type of ['merge', 'optimize']) {
        for (const fix of (await c.checkStorageRepository(repo)).filter((f) => f.type === type && f.imageIds.includes(disk))) {
          await c.waitForOperation((await c.fixStorageRepository(repo, fix)).operationId).catch(() => undefined);
        }
      }
      await c.teardownImage(repo, disk);
    },
  ],
  [
    'resize-offline-then-live',
    async (c, { repo }) => {
      const disk = await c.createVirtualDisk(repo, 1 << 20);
      await waitUsable(c, repo, disk);
      await c.resizeVirtualDisk(repo, disk, 1 << 19).catch(() => undefined);
      await c.resizeVirtualDisk(repo, disk, 2 << 20, { requestId: 'rec-resize-offline' });
      await c.waitForOperation('resizeVirtualDisk:rec-resize-offline');
      await c.prepareImage(repo, disk, { serve: 'fuse' });
      await c.resizeVirtualDisk(repo, disk, 4 << 20, { requestId: 'rec-resize-live' });
      await c.waitForOperation('resizeVirtualDisk:rec-resize-live');
      await c.teardownImage(repo, disk);
    },
  ],
  [
    'serve-backup-stop-idle-cancel',
    async (c, { repo }) => {
      const disk = await c.createVirtualDisk(repo, 1 << 20);
      await waitUsable(c, repo, disk);
      const copy = await c.copyImage(repo, disk, null, {}, { kind: 'snapshot' });
      await waitUsable(c, repo, copy);
      await c.serveBackup(repo, disk, disk).catch(() => undefined);
      await c.serveBackup(repo, disk, copy);
      await c.stopBackupExport(repo, disk);
      const idle = await c.serveBackup(repo, disk, null, { idleTimeoutSeconds: 1 });
      await c.waitForOperation(idle.operationId);
      const cancelled = await c.serveBackup(repo, disk);
      await c.temporal.workflow.getHandle(cancelled.operationId).cancel();
      await c.waitForOperation(cancelled.operationId).catch(() => undefined);
    },
  ],
  [
    'import-export-measure',
    async (c, { repo, scratch }) => {
      const file = join(scratch, 'source.qcow2');
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', file, String(1 << 20)]);
      const id = await c.importImage(repo, file);
      await waitUsable(c, repo, id);
      await c.measureImage(repo, { imageId: id });
      await c.waitForOperation((await c.exportImage(repo, id, join(scratch, 'exported.qcow2'))).operationId);
      await c.importImage(repo, file, {}, { sha256: '0'.repeat(64) });
      const hostile = join(scratch, 'hostile.qcow2');
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', '/etc/hostname', '-F', 'raw', hostile, String(1 << 20)]);
      await c.importImage(repo, hostile).catch(() => undefined);
    },
  ],
  ['disconnect-ok', (c, { repo }) => c.disconnectStorageRepository(repo)],
];

async function main(): Promise<void> {
  mkdirSync(HISTORIES, { recursive: true });
  await withOneHost('rec', tmpdir(), async ({ scratch, client, localRepository }) => {
    const seen = new Set<string>();
    const newWorkflows = async () => {
      const found: { id: string; type: string; outcome: string }[] = [];
      for await (const wf of client.temporal.workflow.list()) {
        if (!seen.has(wf.workflowId) && wf.status.name !== 'RUNNING') {
          found.push({ id: wf.workflowId, type: wf.type, outcome: wf.status.name.toLowerCase() });
        }
      }
      return found;
    };
    const path = await localRepository('rec');
    for (const wf of await newWorkflows()) seen.add(wf.id);
    let written = 0;
    for (const [name, run] of scenarios) {
      await run(client, { repo: 'rec', path, scratch }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 1500));
      for (const wf of await newWorkflows()) {
        seen.add(wf.id);
        // One history per workflow type, scenario and outcome: more of the same adds nothing.
        const file = join(HISTORIES, `${wf.type}.${name}.${wf.outcome}.json`);
        if (existsSync(file)) continue;
        const history = await client.temporal.workflow.getHandle(wf.id).fetchHistory();
        writeFileSync(file, historyToJSON(history) + '\n');
        written++;
      }
    }
    process.stdout.write(`recorded ${written} new histories in ${HISTORIES}\n`);
  }, { hostId: HOST });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
