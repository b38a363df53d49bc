/**
 * Steps of getting images in and out that run on the caller's host: measuring what a copy or an
 * import needs (measureImage), and exporting one instant of an image into a file there
 * (holdForExport, then exportImage, then releaseExport). An export joins its image's readers
 * (lifecycle.claimForCopy) for as long as it runs: no VM is let at a disk being exported, one
 * prepared for a VM is refused with IMAGE_IN_USE, and nothing changes its chain meanwhile.
 */
import { activityInfo, Context, getClient, heartbeat } from '@temporalio/activity';
import { link, rm, stat } from 'node:fs/promises';
import { DiskflowError } from '../../api/errors';
import type { Measurement } from '../../api/operations';
import { PROGRESS_SIGNAL, StepProgress } from '../../api/progress';
import type { Strategy } from '../../api/values';
import type { ActivityDeps } from '../deps';
import { locateImage, LookupOptions } from '../host/lookup';
import { repositoryRef, RepositoryRef } from '../host/repositories';
import { readChain, readImage, requireImage } from '../images/image-store';
import { claimForCopy, copySourceAfter, releaseCopySource } from '../images/lifecycle';
import type { VolumeRecord } from '../images/records';
import { run } from '../process';
import { progressParser } from '../qemu/qemu-img';
import { chainBlockdev, measureChain } from './measure';
import { DeclaredFormat, jsonSpec, measureSpec, probeSource, sourceBlockdev } from './source';

export interface MeasureStep {
  repoId: string;
  source: { imageId: string } | { location: string };
  strategy: Strategy;
  format: DeclaredFormat;
  lookup: LookupOptions;
}

export interface ExportStep {
  repoId: string;
  imageId: string;
  operationId: string;
}

export interface ExportRun extends ExportStep {
  path: string;
  format: 'qcow2' | 'raw';
  compress: boolean;
}

/** How often an export's progress goes to its workflow. */
const SIGNAL_EVERY_MS = 1000;

export function createImportExportActivities(deps: ActivityDeps) {
  const { connections, hostId, operations } = deps;
  return {
    async measureImage(input: MeasureStep): Promise<Measurement> {
      const target = connections.byRepoId(input.repoId);
      const performance = input.strategy === 'performance';
      const targetFormat = performance ? 'raw' : 'qcow2';
      let room;
      let virtualSize;
      let sourceFormat;
      if ('imageId' in input.source) {
        const located = await locateImage(connections, input.source.imageId, input.lookup, input.repoId);
        virtualSize = located.image.size;
        room = await measureChain(located.repo, located.image.volumeId, targetFormat, virtualSize, performance);
        sourceFormat = (await readChain(located.repo, located.image.volumeId))[0].format;
      } else {
        const probed = await probeSource(input.source.location, input.format);
        virtualSize = probed.virtualSize;
        sourceFormat = probed.format;
        room = await measureSpec(sourceBlockdev(input.source.location, probed.format), targetFormat, virtualSize, performance);
      }
      const freeBytes = await target.freeBytes();
      return { ...room, freeBytes, fits: room.requiredBytes <= freeBytes, virtualSize, sourceFormat, targetFormat };
    },

    /** The export's image joins its readers (refused while prepared for a VM, busy or broken). */
    async holdForExport(input: ExportStep): Promise<RepositoryRef> {
      const repo = connections.byRepoId(input.repoId);
      await requireImage(repo, input.imageId);
      await claimForCopy(repo, input.imageId, { operationId: input.operationId, hostId }, operations);
      return repositoryRef(deps, repo);
    },

    async releaseExport(input: ExportStep): Promise<void> {
      await releaseCopySource(connections.byRepoId(input.repoId), input.imageId, input.operationId);
    },

    /**
     * Converts the image's chain (opened as its records say, no header names followed) into a
     * temporary file beside `path`, checks the image did not change meanwhile, and links it to
     * `path` (which must not exist: an export never replaces a file).
     */
    async exportImage(input: ExportRun): Promise<{ path: string; bytes: number }> {
      const repo = connections.byRepoId(input.repoId);
      const signal = Context.current().cancellationSignal;
      const image = await claimForCopy(repo, input.imageId, { operationId: input.operationId, hostId }, operations);
      if (await exists(input.path)) throw new DiskflowError('INVALID_ARGUMENT', `path: ${input.path} exists already; an export makes a new file`);
      const temp = `${input.path}.diskflow-export-${input.operationId.replace(/[^A-Za-z0-9._-]/g, '_').slice(-64)}`;
      const chain = await readChain(repo, image.volumeId);
      const paths: { path: string; volume: VolumeRecord }[] = [];
      const report = progressTo();
      try {
        for (const volume of [...chain].reverse()) paths.unshift({ path: await repo.activate(volume.volumeId, volume.format), volume });
        const args = ['convert', '-p', '-O', input.format];
        if (input.compress && input.format === 'qcow2') args.push('-c');
        if (input.format === 'qcow2') args.push('-o', 'compat=1.1');
        await rm(temp, { force: true });
        args.push(jsonSpec(await chainBlockdev(paths)), temp);
        await run('qemu-img', args, { signal, onStdout: progressParser((fraction) => report(input.imageId, 100 * fraction, image.size)) });
        await run('sync', ['-f', temp], { signal }).catch(() => undefined);
        // One instant: the image's content did not move while it was read.
        const after = copySourceAfter(await readImage(repo, input.imageId), input.imageId, input.operationId);
        if (after.contentEpoch !== image.contentEpoch || after.volumeId !== image.volumeId) {
          throw new DiskflowError('STORAGE_ERROR', `image ${input.imageId} changed while it was exported; the export runs again`);
        }
        await link(temp, input.path).catch((error: NodeJS.ErrnoException) => {
          if (error.code === 'EEXIST') throw new DiskflowError('INVALID_ARGUMENT', `path: ${input.path} exists already; an export makes a new file`);
          throw error;
        });
        report(input.imageId, 100, image.size, true);
        return { path: input.path, bytes: (await stat(input.path)).size };
      } finally {
        await rm(temp, { force: true }).catch(() => undefined);
        for (const volume of chain) await repo.deactivate(volume.volumeId).catch(() => undefined);
      }
    },
  };

  /** Heartbeats the export's progress, and sends it to its workflow now and then (the `progress` query). */
  function progressTo() {
    let last = 0;
    return (imageId: string, percent: number, size: number, force = false) => {
      const progress: StepProgress = {
        imageId,
        stage: { current: 1, total: 1 },
        percentComplete: Math.max(0, Math.min(100, Math.floor(percent))),
        doneBytes: Math.floor((size * percent) / 100),
        totalBytes: size,
        hostId,
        at: new Date().toISOString(),
      };
      heartbeat(progress);
      if (!force && Date.now() - last < SIGNAL_EVERY_MS) return;
      last = Date.now();
      const { workflowExecution } = activityInfo();
      if (!workflowExecution) return;
      void getClient().workflow.getHandle(workflowExecution.workflowId, workflowExecution.runId).signal(PROGRESS_SIGNAL, progress).catch(() => undefined);
    };
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
