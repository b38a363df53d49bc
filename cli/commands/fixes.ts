/** `diskflow repo check` and `diskflow repo fix`: what is left to do on a repository, and doing it. */
import { Command, Option } from 'commander';
import { Bar, Presets } from 'cli-progress';
import Table from 'cli-table3';
import { DiskflowError, invalidArgument } from '../../api/errors';
import { Fix, FixType } from '../../api/image-status';
import { parseInput } from '../../api/validation';
import { stallAfterMs } from '../../config/environment';
import type { StalledOperation } from '../../client/stalled-operations';
import type { StorageClient } from '../../client/storage-client';
import { formatBytes } from '../output';
import { parseJsonObject, parseSize } from '../parse';
import { withClient } from '../run';

interface FixOutcome {
  fix: Fix;
  operationId: string | null;
  outcome: 'done' | 'failed';
  error?: { code: string; message: string };
}

export function printFixes(fixes: Fix[]): void {
  if (!fixes.length) {
    process.stdout.write('nothing to do\n');
    return;
  }
  const table = new Table({ head: ['type', 'images', 'bytes', 'description'], colWidths: [10, 40, 12, 70], wordWrap: true, ...(process.stdout.isTTY ? {} : { style: { head: [], border: [] } }) });
  for (const f of fixes) table.push([f.type, f.imageIds.join('\n') || '-', formatBytes(f.bytes), f.description]);
  process.stdout.write(table.toString() + '\n');
}

function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** Beside the fixes: operations that made no progress for the stall time (on stdout, or stderr with --json). */
function printStalled(stalled: StalledOperation[], afterMs: number, json: boolean): void {
  if (!stalled.length) return;
  const out = json ? process.stderr : process.stdout;
  out.write(`stalled: ${stalled.length} operation${stalled.length === 1 ? '' : 's'} with no progress for ${formatDuration(afterMs)} or more (DISKFLOW_STALL_AFTER)\n`);
  if (json) {
    for (const s of stalled) out.write(`stalled ${s.operationId} image ${s.imageId ?? '-'} for ${formatDuration(s.stalledMs)}: ${s.reason}\n`);
    return;
  }
  // Unwrapped: an operator copies the operation id from here (temporal workflow describe -w ...).
  const table = new Table({ head: ['operation', 'image', 'for', 'why'], ...(process.stdout.isTTY ? {} : { style: { head: [], border: [] } }) });
  for (const s of stalled) table.push([s.operationId, s.imageId ?? '-', formatDuration(s.stalledMs), s.reason]);
  out.write(table.toString() + '\n');
}

function parseStallAfter(value: string | undefined): number {
  return stallAfterMs(value === undefined ? process.env : { DISKFLOW_STALL_AFTER: value });
}

const WAIT_WORTH_TELLING_MS = 3000;

/** Runs one fix to its end, drawing its progress on a terminal. */
async function runFix(client: StorageClient, repoId: string, fix: Fix, options: { hostId?: string; bandwidth?: number }): Promise<FixOutcome> {
  let operationId: string | null = null;
  const bar = process.stderr.isTTY ? new Bar({ format: ` ${fix.type} [{bar}] {percentage}% {state}`, stream: process.stderr }, Presets.shades_classic) : undefined;
  try {
    ({ operationId } = await client.fixStorageRepository(repoId, fix, options));
    bar?.start(100, 0, { state: '' });
    const done = client.waitForOperation(operationId);
    let finished = false;
    void done.then(
      () => (finished = true),
      () => (finished = true),
    );
    // A step is briefly "waiting" between being scheduled and a host reporting from it: only a
    // wait that lasts (no suitable host up) is worth a line without a terminal.
    let waitingSince = null as { what: string; at: number; told: boolean } | null;
    while (!finished) {
      const progress = await client.operationProgress(operationId);
      const waiting = progress?.waitingFor ? `waiting for ${progress.waitingFor}` : '';
      if (!waiting) waitingSince = null;
      else if (waitingSince?.what !== waiting) waitingSince = { what: waiting, at: Date.now(), told: false };
      if (bar) {
        if (waiting) bar.update({ state: waiting });
        else if (progress?.step) bar.update(Math.max(0, progress.step.percentComplete), { state: `stage ${progress.step.stage.current}/${progress.step.stage.total}${progress.state === 'paused' ? ' paused' : ''}` });
      } else if (waitingSince && !waitingSince.told && Date.now() - waitingSince.at >= WAIT_WORTH_TELLING_MS) {
        process.stderr.write(`${fix.type}: ${waiting}\n`);
        waitingSince.told = true;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    await done;
    bar?.update(100);
    return { fix, operationId, outcome: 'done' };
  } catch (error) {
    const e = error instanceof DiskflowError ? error : new DiskflowError('STORAGE_ERROR', String(error));
    return { fix, operationId, outcome: 'failed', error: { code: e.code, message: e.message } };
  } finally {
    bar?.stop();
  }
}

export function fixCommands(repo: Command): void {
  repo
    .command('check <repoId>')
    .description('list what is left to do on a repository: clean, optimize, merge and mend fixes, and operations that stalled')
    .option('--stalled-after <duration>', 'how long without progress counts as stalled (default DISKFLOW_STALL_AFTER, else 10m)')
    .action((repoId: string, o: { stalledAfter?: string }, command: Command) => {
      // --json keeps stdout the API's answer (Fix[]); the stalled operations then go to stderr.
      const json = !!command.optsWithGlobals<{ json?: boolean }>().json;
      let afterMs = 0;
      let stalled: StalledOperation[] = [];
      return withClient(
        async (client, _command: Command) => {
          afterMs = parseStallAfter(o.stalledAfter);
          let fixes: Fix[];
          [fixes, stalled] = await Promise.all([client.checkStorageRepository(repoId), client.stalledOperations(repoId, { afterMs })]);
          if (json) printStalled(stalled, afterMs, true);
          return fixes;
        },
        (fixes) => {
          printFixes(fixes);
          printStalled(stalled, afterMs, false);
        },
      )(command);
    });

  repo
    .command('fix <repoId> [fixJson]')
    .description('run one fix (the JSON of a fix from `repo check --json`), all fixes of a type, or all')
    .option('--all', 'run every fix the check returns')
    .addOption(new Option('--type <type>', 'run every fix of this type').choices(['clean', 'optimize', 'merge', 'mend']))
    .option('--host <hostId>', 'run the fixes\' I/O on this host')
    .option('--bandwidth <rate>', 'bytes per second each fix may move (e.g. 50M), to spare the storage and running VMs', (v) => parseSize(v, '--bandwidth'))
    .action(
      withClient(
        async (client, repoId: string, fixJson: string | undefined, o: { all?: boolean; type?: FixType; host?: string; bandwidth?: number }) => {
          const fixOptions = { ...(o.host ? { hostId: o.host } : {}), ...(o.bandwidth !== undefined ? { bandwidth: o.bandwidth } : {}) };
          const ways = [o.all, o.type, fixJson].filter(Boolean).length;
          if (ways !== 1) throw invalidArgument('give exactly one of --all, --type T, or a fix as JSON');
          const outcomes: FixOutcome[] = [];
          if (fixJson) {
            outcomes.push(await runFix(client, repoId, parseInput(Fix, parseJsonObject(fixJson, 'fix'), 'fix'), fixOptions));
          } else {
            // A check answers at most a few thousand fixes, the most urgent first, and fixes done
            // may make others possible: check again until it offers nothing not already tried, or
            // a whole round failed (a fix that fails again and again is reported, not looped on).
            const tried = new Set<string>();
            for (let progress = true; progress; ) {
              const fixes = (await client.checkStorageRepository(repoId)).filter((f) => (o.all || f.type === o.type) && !tried.has(f.data));
              progress = false;
              for (const fix of fixes) {
                tried.add(fix.data);
                const outcome = await runFix(client, repoId, fix, fixOptions);
                outcomes.push(outcome);
                progress ||= outcome.outcome === 'done';
              }
            }
          }
          if (outcomes.some((r) => r.outcome === 'failed')) process.exitCode = 1;
          return outcomes;
        },
        (outcomes) => {
          if (!outcomes.length) process.stdout.write('nothing to do\n');
          for (const r of outcomes) {
            const mark = r.outcome === 'done' ? 'done  ' : 'FAILED';
            process.stdout.write(`${mark} ${r.fix.type.padEnd(8)} ${r.fix.description}${r.operationId ? ` (${r.operationId})` : ''}\n`);
            if (r.error) process.stderr.write(`${r.error.code}: ${r.error.message}\n`);
          }
        },
      ),
    );
}
