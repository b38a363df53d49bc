/**
 * A copy of a served disk, while its VM writes: `blockdev-backup` in the daemon serving it, from
 * the node the VM writes into the copy's new volume. The backup's copy-before-write keeps the
 * instant the job starts: the copy is of that instant, whatever the VM writes meanwhile. A full
 * copy reads everything (`sync: full`); an incremental one only the clusters the base's dirty
 * bitmap marks (`sync: bitmap`, left as it is). The copy's own bitmap, from which the next
 * incremental copy reads, is added in the same transaction as the backup starts, so it counts
 * every write after that instant and none before.
 *
 * The job belongs to the daemon: a step that comes back after a crash finds it still running
 * (or ended) there and waits for it; otherwise the copy starts over into a fresh volume.
 */
import type { Bitmap } from '../qemu/bitmaps';
import type { Qmp } from '../qemu/qmp';
import type { VolumeFormat } from '../qemu/qemu-img';
import { jobState, runJob } from './block-jobs';
import { ServingDaemon } from './daemon';
import { namedNodes, nodeName, servedTop, volumeNode } from './graph';

export interface LiveBackup {
  home: string;
  imageId: string;
  /** The copy's volume, made and activated by the caller; written from its first cluster. */
  target: { volumeId: string; format: VolumeFormat; path: string; directIo: boolean };
  /** `bitmap`: only what this bitmap of the served node marks (an incremental copy). */
  sync: { mode: 'full' } | { mode: 'bitmap'; bitmap: string };
  /** The copy's own bitmap, added on the served node as the job starts (null: none, e.g. a raw top). */
  newBitmap: string | null;
  speed?: number;
  onProgress?: (done: number, total: number) => void;
}

const jobIdOf = (volumeId: string) => `copy-${volumeId.slice(0, 8)}`;

/** Whether a backup into this volume still runs, or ended unseen, in the daemon: then it is waited for, not started over. */
export async function liveBackupUnderway(home: string, imageId: string, volumeId: string): Promise<boolean> {
  return new ServingDaemon(home, imageId).withMonitor(async (qmp) => (await jobState(qmp, jobIdOf(volumeId))) !== null);
}

export async function liveBackup(backup: LiveBackup): Promise<void> {
  const daemon = new ServingDaemon(backup.home, backup.imageId);
  const jobId = jobIdOf(backup.target.volumeId);
  const target = nodeName(backup.target.volumeId);
  await daemon.withMonitor(async (qmp) => {
    const top = await servedTop(qmp);
    const start = async () => {
      if ((await namedNodes(qmp)).has(target)) await qmp.execute('blockdev-del', { 'node-name': target });
      await qmp.execute('blockdev-add', await volumeNode(backup.target, null, { directIo: backup.target.directIo, readOnly: false }));
      const job: Record<string, unknown> = { 'job-id': jobId, device: top, target, 'auto-dismiss': false };
      if (backup.sync.mode === 'bitmap') Object.assign(job, { sync: 'bitmap', bitmap: backup.sync.bitmap, 'bitmap-mode': 'never' });
      else job.sync = 'full';
      if (backup.speed) job.speed = backup.speed;
      const actions: { type: string; data: Record<string, unknown> }[] = [];
      const present = (await servedBitmaps(qmp, top)).some((b) => b.name === backup.newBitmap);
      // Counted from the backup's instant: a bitmap left by an earlier attempt counted from an earlier one (a superset), and is kept.
      if (backup.newBitmap && !present) actions.push({ type: 'block-dirty-bitmap-add', data: { node: top, name: backup.newBitmap, persistent: true } });
      actions.push({ type: 'blockdev-backup', data: job });
      await qmp.execute('transaction', { actions });
    };
    await runJob(qmp, jobId, start, { onProgress: backup.onProgress });
    if ((await namedNodes(qmp)).has(target)) await qmp.execute('blockdev-del', { 'node-name': target });
  });
}

/** The dirty bitmaps of the served node, as the daemon keeps them (the file's copy is stale while it runs). */
async function servedBitmaps(qmp: Qmp, node: string): Promise<Bitmap[]> {
  const nodes = await qmp.execute<{ 'node-name': string; 'dirty-bitmaps'?: { name: string; granularity: number; recording: boolean; inconsistent?: boolean; persistent: boolean }[] }[]>(
    'query-named-block-nodes',
    { flat: true },
  );
  const bitmaps = nodes.find((n) => n['node-name'] === node)?.['dirty-bitmaps'] ?? [];
  return bitmaps
    .filter((b) => b.persistent)
    .map((b) => ({ name: b.name, granularity: b.granularity, flags: [...(b.recording ? ['auto'] : []), ...(b.inconsistent ? ['in-use'] : [])] }));
}

/** The bitmaps of a served disk's top volume, from its daemon. */
export async function listServedBitmaps(home: string, imageId: string): Promise<Bitmap[]> {
  return new ServingDaemon(home, imageId).withMonitor(async (qmp) => servedBitmaps(qmp, await servedTop(qmp)));
}

/** Drops a bitmap of the served top volume that no copy needs any more (best effort). */
export async function dropServedBitmap(home: string, imageId: string, bitmap: string): Promise<void> {
  await new ServingDaemon(home, imageId)
    .withMonitor(async (qmp) => qmp.execute('block-dirty-bitmap-remove', { node: await servedTop(qmp), name: bitmap }))
    .catch(() => undefined);
}
