/** activities/fixes/analysis.ts: which fixes one scan of a repository calls for. */
import { describe, expect, it } from 'vitest';
import { analyse, AnalysisOptions } from '../../activities/fixes/analysis';
import type { RepositoryScan } from '../../activities/fixes/scan';
import type { ImageRecord, VolumeRecord } from '../../activities/images/records';

const REPO = '00000000-0000-4000-8000-00000000000a';
const OTHER_REPO = '00000000-0000-4000-8000-00000000000b';
const MiB = 2 ** 20;
const T = '2026-01-01T00:00:00.000Z';
let n = 0;
const id = () => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`;

function volume(volumeId: string, parentId: string | null = null, legal = true): VolumeRecord {
  return { schema: 'diskflow.volume/1', volumeId, format: 'qcow2', parentId, size: MiB, legal, createdAt: T, createdBy: 'op' };
}

function image(volumeId: string, fields: Partial<ImageRecord> = {}): ImageRecord {
  return {
    schema: 'diskflow.image/1', imageId: id(), kind: 'virtual-disk', size: MiB, userData: {}, strategy: 'space', volumeId,
    generation: 3, contentEpoch: 0, chainEpoch: 0, status: 'optimized', pending: null, optimizing: null, changeTracking: null,
    incremental: null, resizing: null, backupExport: null, removed: null, operation: null, readers: {}, prepared: {}, served: null, hostId: null, stage: null,
    percentComplete: 100, lastError: null, createdAt: T, createdBy: 'op', updatedAt: T, ...fields,
  };
}

/** A scan of these images and volumes, every recorded volume stored (allocatedBytes 1 MiB each) plus `extra` stored ones. */
function scan(images: ImageRecord[], volumes: VolumeRecord[], extra: { stored?: string[]; strays?: RepositoryScan['strayFiles']; foreign?: [string, string][] } = {}): RepositoryScan {
  const stored = [...volumes.map((v) => v.volumeId), ...(extra.stored ?? [])];
  return {
    repoUuid: REPO,
    images,
    volumes: new Map(volumes.map((v) => [v.volumeId, v])),
    stored: new Map(stored.map((volumeId) => [volumeId, { volumeId, allocatedBytes: MiB }])),
    strayFiles: extra.strays ?? [],
    foreign: new Map(extra.foreign ?? []),
  };
}

const options = (fields: Partial<AnalysisOptions> = {}): AnalysisOptions => ({ running: new Set(), maxChainLength: 8, strayAgeMs: 60_000, ...fields });
const removed = { at: T, operationId: 'remove-op' };

describe('fix analysis', () => {
  it('a healthy repository needs nothing', () => {
    const v = id();
    expect(analyse(scan([image(v)], [volume(v)]), options())).toEqual([]);
  });

  it('a removed image: clean the volumes no other image needs, and only those', () => {
    const base = id();
    const top = id();
    const snapshot = image(base, { kind: 'snapshot', removed });
    const lone = image(top, { removed });
    // The disk on the snapshot still needs its volume; nothing needs the lone removed disk's.
    const disk = image(id());
    const fixes = analyse(scan([snapshot, lone, disk], [volume(base), volume(top), volume(disk.volumeId, base)]), options());
    const cleans = fixes.filter((f) => f.type === 'clean');
    expect(cleans).toEqual([
      expect.objectContaining({ plan: expect.objectContaining({ action: 'removed-image', imageId: snapshot.imageId, volumes: [], images: { [snapshot.imageId]: 3 } }), bytes: 0 }),
      expect.objectContaining({ plan: expect.objectContaining({ action: 'removed-image', imageId: lone.imageId, volumes: [top] }), bytes: MiB }),
    ]);
    expect(cleans[0].description).toMatch(/^forget removed image/);
  });

  it('orphans: stored volumes no record needs, and temporary files older than the stray age', () => {
    const v = id();
    const orphan = id();
    const strays = [{ name: 'old.tmp', ageMs: 120_000, bytes: 10 }, { name: 'writing.tmp', ageMs: 1_000, bytes: 10 }];
    const [fix] = analyse(scan([image(v)], [volume(v)], { stored: [orphan], strays }), options());
    expect(fix).toMatchObject({ type: 'clean', imageIds: [], plan: { action: 'orphans', volumes: [orphan], strays: ['old.tmp'] }, bytes: MiB + 10 });
  });

  it('a broken image: mend, unless a running operation is working on it', () => {
    const v = id();
    const pending = { step: 'create-volume' as const, format: 'qcow2' as const, preallocate: false, parentId: null, then: 'optimized' as const };
    const broken = image(v, { status: 'broken', pending });
    expect(analyse(scan([broken], [volume(v, null, false)]), options())).toEqual([
      expect.objectContaining({ type: 'mend', imageIds: [broken.imageId], plan: expect.objectContaining({ type: 'mend', copyFrom: null }) }),
    ]);
    const claimed = { ...broken, operation: { id: 'op-running', type: 'createVirtualDisk', startedAt: T } };
    expect(analyse(scan([claimed], [volume(v, null, false)]), options({ running: new Set(['op-running']) }))).toEqual([]);
    // A claim by an operation that is gone does not stop the mend.
    expect(analyse(scan([claimed], [volume(v, null, false)]), options())).toHaveLength(1);
  });

  it('a pending copy names its source repository when it is another one (its mend runs on a host with both)', () => {
    const v = id();
    const copy = (repoUuid: string) => ({
      step: 'copy' as const,
      job: { source: { repoUuid, imageId: id(), contentEpoch: 0 }, volumeId: v, format: 'qcow2' as const, preallocate: false, copiedUpTo: 0, totalBytes: 4 * MiB, doneBytes: MiB, attempt: null, base: null, bandwidth: null, requiredBytes: null },
    });
    const [across] = analyse(scan([image(v, { status: 'broken', pending: copy(OTHER_REPO) })], [volume(v, null, false)]), options());
    expect(across).toMatchObject({ plan: { type: 'mend', copyFrom: OTHER_REPO }, bytes: 3 * MiB });
    expect(across.description).toMatch(/25% done/);
    const [within] = analyse(scan([image(v, { status: 'broken', pending: copy(REPO) })], [volume(v, null, false)]), options());
    expect(within.plan).toMatchObject({ copyFrom: null });
  });

  it('optimize: a degraded image is flattened to its strategy\'s format; a chain over the limit is collapsed', () => {
    const base = id();
    const top = id();
    const snapshot = image(base, { kind: 'snapshot' });
    const degraded = image(top, { status: 'degraded', strategy: 'performance' });
    const fixes = analyse(scan([snapshot, degraded], [volume(base), volume(top, base)]), options());
    expect(fixes).toEqual([expect.objectContaining({ type: 'optimize', plan: expect.objectContaining({ imageId: degraded.imageId, reason: 'flatten', format: 'raw' }), bytes: 2 * MiB })]);

    const chain = [id(), id(), id()];
    const long = image(chain[2]);
    const volumes = [volume(chain[0]), volume(chain[1], chain[0]), volume(chain[2], chain[1])];
    // Each volume of the chain also held by a snapshot, so no merge is possible either way.
    const snapshots = [image(chain[0], { kind: 'snapshot' }), image(chain[1], { kind: 'snapshot' })];
    expect(analyse(scan([long, ...snapshots], volumes), options({ maxChainLength: 3 }))).toEqual([]);
    expect(analyse(scan([long, ...snapshots], volumes), options({ maxChainLength: 2 }))).toEqual([
      expect.objectContaining({ type: 'optimize', plan: expect.objectContaining({ imageId: long.imageId, reason: 'collapse', format: 'qcow2' }) }),
    ]);
  });

  it('merge: two adjacent volumes only one image needs (its snapshot in between removed and cleaned)', () => {
    const lower = id();
    const upper = id();
    const disk = image(upper);
    const [fix] = analyse(scan([disk], [volume(lower), volume(upper, lower)]), options());
    expect(fix).toMatchObject({ type: 'merge', plan: { imageId: disk.imageId, upper, lower }, bytes: MiB });
    // Not while the lower volume is still someone else's.
    expect(analyse(scan([disk, image(lower, { kind: 'snapshot' })], [volume(lower), volume(upper, lower)]), options())).toEqual([]);
  });

  it('an image needing a volume that is not what its records say is offered no fix that opens it', () => {
    const lower = id();
    const upper = id();
    const disk = image(upper, { status: 'degraded' });
    const fixes = analyse(scan([disk], [volume(lower), volume(upper, lower)], { foreign: [[lower, 'backing file outside its chain']] }), options());
    expect(fixes).toEqual([expect.objectContaining({ type: 'mend', imageIds: [disk.imageId], bytes: 0 })]);
    expect(fixes[0].description).toMatch(/cannot be used: volume \S+ is not what its records say \(backing file outside its chain\)/);
  });

  it('a served disk whose daemon is gone: mend on the host that served it', () => {
    const v = id();
    const served = { hostId: 'h2', mode: 'nbd' as const, address: 'nbd+unix:///x', since: T, lost: { at: T, why: 'daemon exited' }, live: null };
    const disk = image(v, { served, prepared: { h2: T } });
    expect(analyse(scan([disk], [volume(v)]), options())).toEqual([
      expect.objectContaining({ type: 'mend', plan: expect.objectContaining({ imageId: disk.imageId, onHost: 'h2' }), description: expect.stringMatching(/serve image .* again on h2/) }),
    ]);
  });
});
