/**
 * checkStorageRepository's reasoning, as a pure function of one scan: which fixes a repository
 * needs, what each will do in words, and how many bytes it moves or frees.
 *
 * - clean:    removed images' volumes no other image needs; volumes no image needs at all and
 *             temporary files (leftovers of crashed operations);
 * - mend:     broken images that no running operation is working on;
 * - optimize: degraded images (a thin overlay made for performance), chains longer than the
 *             limit, and optimizations that stopped half-way;
 * - merge:    two adjacent volumes of a chain that only one image needs (typically after the
 *             snapshot in between was removed): the upper is committed into the lower.
 *
 * An image that needs a volume which is not what its records say (scan.ts, `foreign`: a qcow2
 * header naming a backing file outside its chain, say) is offered no fix that would open it; a
 * mend is listed for it whose description says so, which only checks it again: diskflow cannot
 * know what the volume should hold.
 */
import type { ImageRecord } from '../images/records';
import type { PlannedFix } from './plans';
import { chainIn, neededBy, RepositoryScan, usersOfVolumes } from './scan';

export interface AnalysisOptions {
  /** Operations (workflow ids) still running: images they claim are not offered to fixes. */
  running: ReadonlySet<string>;
  /** Chains longer than this are collapsed by an optimize fix. */
  maxChainLength: number;
  /** Temporary files older than this are leftovers, not writes in progress. */
  strayAgeMs: number;
  /** Bytes free in the repository now: a copy that ran out of room is said not to fit. */
  freeBytes?: number;
}

const short = (id: string) => id.slice(0, 8);

export function analyse(scan: RepositoryScan, options: AnalysisOptions): PlannedFix[] {
  const fixes: PlannedFix[] = [];
  const allocated = (ids: Iterable<string>) => [...ids].reduce((sum, id) => sum + (scan.stored.get(id)?.allocatedBytes ?? 0), 0);
  const users = usersOfVolumes(scan);
  const busy = (image: ImageRecord) => !!image.operation && options.running.has(image.operation.id);
  const touches = (image: ImageRecord) => ({ images: { [image.imageId]: image.generation } });
  /**
   * Why a copy or import that stopped for want of room cannot be mended now (null: it can, or
   * nothing says it ran out): what it needs against what is free, and what its mend does.
   */
  const roomIssue = (image: ImageRecord, job: { format: 'raw' | 'qcow2'; volumeId: string; doneBytes: number }, left: number): string | null => {
    if (options.freeBytes === undefined || !/NO_SPACE|No space left|does not fit|needs \d+ bytes/.test(image.lastError ?? '')) return null;
    const held = scan.stored.get(job.volumeId)?.allocatedBytes ?? 0;
    // A lower bound (its data alone; the mend measures exactly before it writes): said only when even that cannot fit.
    const needed = job.format === 'raw' ? image.size : job.doneBytes + left;
    if (needed <= options.freeBytes + held) return null;
    return (
      `image ${image.imageId} cannot be mended now: its data needs at least ${needed} bytes and the repository has ${options.freeBytes} free${held ? ` (${held} more are held by its partial volume)` : ''}; ` +
      `${held ? 'running this fix gives its partial volume back and stops with NO_SPACE; ' : ''}free space (remove images, then clean) or remove the image`
    );
  };

  // clean: removed images
  const neededByAnyRecord = new Set<string>();
  for (const image of scan.images) {
    const needed = neededBy(scan, image);
    needed.forEach((id) => neededByAnyRecord.add(id));
    if (!image.removed) continue;
    const volumes = [...needed].filter((id) => !users.has(id) && (scan.stored.has(id) || scan.volumes.has(id)));
    fixes.push({
      plan: { type: 'clean', action: 'removed-image', imageId: image.imageId, volumes, ...touches(image) },
      type: 'clean',
      imageIds: [image.imageId],
      description: volumes.length
        ? `remove the ${volumes.length} volume${volumes.length === 1 ? '' : 's'} of removed image ${image.imageId} that no other image needs`
        : `forget removed image ${image.imageId} (every volume it had is still needed by other images)`,
      bytes: allocated(volumes),
    });
  }

  // clean: leftovers no record needs
  const orphans = [...new Set([...scan.stored.keys(), ...scan.volumes.keys()])].filter((id) => !neededByAnyRecord.has(id)).sort();
  const strays = scan.strayFiles.filter((f) => f.ageMs > options.strayAgeMs);
  if (orphans.length || strays.length) {
    fixes.push({
      plan: { type: 'clean', action: 'orphans', volumes: orphans, strays: strays.map((f) => f.name).sort(), images: {} },
      type: 'clean',
      imageIds: [],
      description: `remove ${orphans.length} volume${orphans.length === 1 ? '' : 's'} and ${strays.length} temporary file${strays.length === 1 ? '' : 's'} that no image needs (left by interrupted operations)`,
      bytes: allocated(orphans) + strays.reduce((sum, f) => sum + f.bytes, 0),
    });
  }

  const byId = new Map(scan.images.map((image) => [image.imageId, image]));
  /** The host serving an image to its VM, where its live fixes run. */
  const onHost = (image: ImageRecord) => (image.served ? { onHost: image.served.hostId } : {});

  for (const image of scan.images) {
    if (image.removed || busy(image)) continue;

    // Reported, never opened: an image needing a volume that is not what its records say.
    const untrusted = [...neededBy(scan, image)].find((id) => scan.foreign.has(id));
    if (untrusted) {
      fixes.push({
        plan: { type: 'mend', imageId: image.imageId, copyFrom: null, ...touches(image) },
        type: 'mend',
        imageIds: [image.imageId],
        description:
          `image ${image.imageId} cannot be used: volume ${untrusted} is not what its records say (${scan.foreign.get(untrusted)}); ` +
          'diskflow does not open it. Restore the image from a copy, or remove it; running this fix only checks it again',
        bytes: 0,
      });
      continue;
    }

    // mend: a served disk whose daemon is gone, or whose live step an operation left half-way
    const served = image.served;
    if (served && (served.lost || served.live)) {
      const description = served.lost
        ? `serve image ${image.imageId} again on ${served.hostId} (its daemon is gone: ${served.lost.why})${served.live ? `, settling its live ${served.live.kind} from its volumes` : ''}`
        : `settle the live ${served.live!.kind} of image ${image.imageId} that an operation left half-way on ${served.hostId}`;
      fixes.push({ plan: { type: 'mend', imageId: image.imageId, copyFrom: null, onHost: served.hostId, ...touches(image) }, type: 'mend', imageIds: [image.imageId], description, bytes: 0 });
      continue;
    }

    // mend: a resize persisted whose top volume has not grown yet (live, on the host serving it)
    if (image.resizing) {
      const description = `grow virtual disk ${image.imageId} from ${image.resizing.from} to ${image.size} bytes, as its resize asked${image.served ? ` (live, on ${image.served.hostId})` : ''}`;
      fixes.push({ plan: { type: 'mend', imageId: image.imageId, copyFrom: null, ...onHost(image), ...touches(image) }, type: 'mend', imageIds: [image.imageId], description, bytes: 0 });
      continue;
    }

    // mend: broken images
    if (image.pending?.step === 'live-snapshot') {
      const disk = byId.get(image.pending.diskId);
      // The disk's own mend settles its live step, this snapshot with it.
      if (!disk || busy(disk) || !disk.served || disk.served.live) continue;
      const description = `complete the live snapshot ${image.imageId} of disk ${disk.imageId} on ${disk.served.hostId}`;
      fixes.push({ plan: { type: 'mend', imageId: image.imageId, copyFrom: null, onHost: disk.served.hostId, ...touches(image) }, type: 'mend', imageIds: [image.imageId], description, bytes: 0 });
      continue;
    }
    if (image.pending?.step === 'import') {
      const job = image.pending.job;
      const left = Math.max(0, (job.totalBytes ?? image.size) - job.doneBytes);
      const room = roomIssue(image, job, left);
      const description = room ?? `complete the import into image ${image.imageId} of ${job.source.location} on ${job.onHost} from its persisted progress (${job.totalBytes ? Math.floor((100 * job.doneBytes) / job.totalBytes) : 0}% done)`;
      fixes.push({ plan: { type: 'mend', imageId: image.imageId, copyFrom: null, onHost: job.onHost, ...touches(image) }, type: 'mend', imageIds: [image.imageId], description, bytes: left });
      continue;
    }
    if (image.pending) {
      const work = image.pending;
      const room = work.step === 'copy' ? roomIssue(image, work.job, Math.max(0, (work.job.totalBytes ?? image.size) - work.job.doneBytes)) : null;
      const description = room ??
        (work.step === 'copy'
          ? `complete the copy into image ${image.imageId} from its persisted progress (${work.job.totalBytes ? Math.floor((100 * work.job.doneBytes) / work.job.totalBytes) : 0}% done)`
          : work.parentId
              ? `make the overlay of image ${image.imageId} on volume ${short(work.parentId)}`
              : `make the ${work.format} volume of image ${image.imageId}`);
      const bytes = work.step === 'copy' ? Math.max(0, (work.job.totalBytes ?? image.size) - work.job.doneBytes) : work.step === 'create-volume' && work.preallocate ? image.size : 0;
      const copyFrom = work.step === 'copy' && work.job.source.repoUuid !== scan.repoUuid ? work.job.source.repoUuid : null;
      fixes.push({ plan: { type: 'mend', imageId: image.imageId, copyFrom, ...touches(image) }, type: 'mend', imageIds: [image.imageId], description, bytes });
      continue;
    }

    const chain = chainIn(scan, image.volumeId);
    const performance = image.strategy === 'performance';

    // optimize: a stopped optimization, a degraded image, a chain over the limit
    let optimize: { reason: 'flatten' | 'collapse' | 'resume'; description: string } | undefined;
    if (image.optimizing) optimize = { reason: 'resume', description: `finish optimizing image ${image.imageId} from its persisted progress` };
    else if (image.status === 'degraded') optimize = { reason: 'flatten', description: `flatten image ${image.imageId} into a standalone ${performance ? 'raw' : 'qcow2'} volume (it was made for ${image.strategy})` };
    else if (chain.length > options.maxChainLength) {
      optimize = { reason: 'collapse', description: `collapse the ${chain.length}-volume chain of image ${image.imageId} into one volume (limit ${options.maxChainLength})` };
    }
    if (optimize) {
      fixes.push({
        plan: { type: 'optimize', imageId: image.imageId, reason: optimize.reason, format: performance ? 'raw' : 'qcow2', ...onHost(image), ...touches(image) },
        type: 'optimize',
        imageIds: [image.imageId],
        description: optimize.description,
        bytes: image.optimizing ? Math.max(0, (image.optimizing.totalBytes ?? image.size) - image.optimizing.doneBytes) : allocated(chain),
      });
      continue;
    }

    // merge: the first adjacent pair of the chain that only this image needs
    for (let i = 0; i + 1 < chain.length; i++) {
      const [upper, lower] = [chain[i], chain[i + 1]];
      const alone = (id: string) => users.get(id)?.length === 1 && scan.volumes.get(id)?.legal;
      if (!alone(upper) || !alone(lower)) continue;
      fixes.push({
        plan: { type: 'merge', imageId: image.imageId, upper, lower, ...onHost(image), ...touches(image) },
        type: 'merge',
        imageIds: [image.imageId],
        description: `fold volume ${short(upper)} into volume ${short(lower)} of image ${image.imageId}, which alone needs both`,
        bytes: allocated([upper]),
      });
      break;
    }
  }
  return fixes;
}
