/** `diskflow cluster check|setup`: what an existing Temporal cluster needs for diskflow, and registering it. */
import { Command } from 'commander';
import Table from 'cli-table3';
import { DiskflowError } from '../../api/errors';
import type { ClusterReport } from '../../client/cluster';
import { temporalSettings } from '../../config/environment';
import { printJson, reportFailure } from '../output';
import type { GlobalOptions } from '../run';

function printReport(report: ClusterReport): void {
  process.stdout.write(`Temporal at ${report.address}, namespace ${report.namespace}${report.serverVersion ? `, server ${report.serverVersion}` : ''}\n`);
  const table = new Table({ head: ['', 'requirement', 'found', 'to fix'], wordWrap: true, colWidths: [10, 34, 50, 50], ...(process.stdout.isTTY ? {} : { style: { head: [], border: [] } }) });
  for (const r of report.requirements) table.push([r.ok ? 'ok' : r.required ? 'MISSING' : 'optional', r.name, r.detail, r.ok ? '' : (r.fix ?? '')]);
  process.stdout.write(table.toString() + '\n');
  process.stdout.write('Not visible to a client: the history task readers\' rate limit (docs/DEPLOYING.md, "Dynamic config").\n');
}

/** Connection failures in an operator's words: where, and with which security settings. */
function connectionFailure(error: unknown): DiskflowError {
  const settings = temporalSettings();
  const security = settings.apiKey ? 'TLS with an API key' : settings.tls ? 'TLS' : 'no TLS';
  const message = error instanceof Error ? error.message : String(error);
  return new DiskflowError('STORAGE_ERROR', `cannot use Temporal at ${settings.address} (namespace ${settings.namespace}, ${security}): ${message}`);
}

function finish(report: ClusterReport, json: boolean, extra: Record<string, unknown> = {}): void {
  if (json) printJson({ ...extra, ...report });
  else printReport(report);
  if (!report.ready) {
    const missing = report.requirements.filter((r) => r.required && !r.ok).map((r) => r.name);
    process.stderr.write(`cluster not ready for diskflow: missing ${missing.join(', ')}\n`);
    process.exitCode = 1;
  }
}

export function clusterCommand(): Command {
  const cluster = new Command('cluster').description('what the Temporal cluster at TEMPORAL_ADDRESS needs for diskflow (exit 1 while a requirement is missing)');
  cluster
    .command('check')
    .description('tell whether the namespace, diskflow\'s search attributes and the server features diskflow needs are there')
    .action(async (_o: unknown, command: Command) => {
      const json = !!command.optsWithGlobals<GlobalOptions>().json;
      try {
        const { checkCluster } = await import('../../client/cluster');
        finish(await checkCluster(temporalSettings()), json);
      } catch (error) {
        reportFailure(connectionFailure(error));
      }
    });
  cluster
    .command('setup')
    .description('register the namespace (if missing) and diskflow\'s search attributes through the operator API; then check')
    .option('--retention-days <days>', 'retention of a namespace setup creates', '7')
    .action(async (o: { retentionDays: string }, command: Command) => {
      const json = !!command.optsWithGlobals<GlobalOptions>().json;
      const retentionDays = Number(o.retentionDays);
      if (!Number.isInteger(retentionDays) || retentionDays < 1) {
        reportFailure(new DiskflowError('INVALID_ARGUMENT', `--retention-days must be a whole number of days, not ${o.retentionDays}`));
        return;
      }
      try {
        const { setupCluster } = await import('../../client/cluster');
        const { changed, report } = await setupCluster(temporalSettings(), { retentionDays });
        if (!json) process.stdout.write(changed.length ? changed.map((c) => `${c}\n`).join('') : 'nothing to register\n');
        finish(report, json, { changed });
      } catch (error) {
        reportFailure(connectionFailure(error));
      }
    });
  return cluster;
}
