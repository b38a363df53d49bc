/** The `diskflow` command line (API.md, "Command line"). */
import { Command, CommanderError } from 'commander';
import { DiskflowError } from '../api/errors';
import { clusterCommand } from './commands/cluster';
import { diskCommand, imageCommand, snapshotCommand } from './commands/images';
import { devCommand, workerCommand } from './commands/processes';
import { repoCommand } from './commands/repo';
import { reportFailure } from './output';

export function program(): Command {
  const program = new Command('diskflow')
    .description('durable VM disk image operations on shared storage, on Temporal')
    .option('--json', 'print the API\'s return value as JSON')
    .showHelpAfterError()
    .exitOverride();
  for (const command of [devCommand(), workerCommand(), repoCommand(), diskCommand(), snapshotCommand(), imageCommand(), clusterCommand()]) {
    program.addCommand(command);
  }
  // Every command: --json anywhere on the line, and usage errors reported by main() with a code.
  const configure = (command: Command) => {
    if (command !== program) command.option('--json', 'print the API\'s return value as JSON');
    command.exitOverride().configureOutput({ outputError: () => undefined });
    command.commands.forEach(configure);
  };
  configure(program);
  return program;
}

async function main(argv: string[]): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.exitCode === 0) return;
      // Usage errors are bad input like any other: same code, same exit status.
      reportFailure(new DiskflowError('INVALID_ARGUMENT', error.message.replace(/^error: /, '')));
      return;
    }
    reportFailure(error);
  }
}

if (require.main === module) void main(process.argv);
export { main };
