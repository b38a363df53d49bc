/** `diskflow repo ...`: repositories and this host's connections to them. */
import { Command } from 'commander';
import type { RepoFormat } from '../../api/formats';
import { parseParam } from '../parse';
import { withClient } from '../run';
import { fixCommands } from './fixes';

const say = (text: string) => () => process.stdout.write(`${text}\n`);

export function repoCommand(): Command {
  const repo = new Command('repo').description('repositories: create, connect, inspect');

  repo
    .command('init <format>')
    .description('create a new repository (writes its header; refuses a non-empty target)')
    .option('--param <key=value>', 'connection parameter (JSON value where one parses), repeatable', parseParam, {})
    .option('--host <hostId>', 'the host that reaches the storage (default: this host)')
    .action(
      withClient(
        async (client, format: string, o: { param: Record<string, unknown>; host?: string }) => {
          await client.initStorageRepository(format as RepoFormat, o.param, { hostId: o.host });
          return null;
        },
        (_r, format) => say(`initialised a ${format} repository`)(),
      ),
    );

  repo
    .command('connect <repoId> <format>')
    .description('connect a repository on a host under the handle repoId')
    .option('--param <key=value>', 'connection parameter (JSON value where one parses), repeatable', parseParam, {})
    .option('--host <hostId>', 'the host to connect it on (default: this host)')
    .action(
      withClient(
        async (client, repoId: string, format: string, o: { param: Record<string, unknown>; host?: string }) => {
          await client.connectStorageRepository(repoId, format as RepoFormat, o.param, { hostId: o.host });
          return null;
        },
        (_r, repoId) => say(`connected ${repoId}`)(),
      ),
    );

  repo
    .command('disconnect <repoId>')
    .description('disconnect a repository from a host')
    .option('--host <hostId>', 'the host to disconnect it from (default: this host)')
    .action(
      withClient(
        async (client, repoId: string, o: { host?: string }) => {
          await client.disconnectStorageRepository(repoId, { hostId: o.host });
          return null;
        },
        (_r, repoId) => say(`disconnected ${repoId}`)(),
      ),
    );

  repo
    .command('constraints <repoId>')
    .description('whether the repository needs an SRM, and which host holds the role')
    .action(
      withClient(
        (client, repoId: string) => client.getStorageRepositoryConstraints(repoId),
        (c) => say(`needs SRM: ${c.needsSrm ? 'yes' : 'no'}${c.needsSrm ? `\nSRM host: ${c.srmHostId ?? 'none elected'}` : ''}`)(),
      ),
    );

  const srm = repo.command('srm').description("the repository's SRM (formats that need one, clvm-1.0)");
  for (const [verb, description] of [
    ['start', 'make a host the SRM of the repository (fails with SRM_CONFLICT while another host is)'],
    ['stop', 'the host gives the SRM role up'],
  ] as const) {
    srm
      .command(`${verb} <repoId>`)
      .description(description)
      .option('--host <hostId>', 'the host (default: this host)')
      .action(
        withClient(
          async (client, repoId: string, o: { host?: string }) => {
            if (verb === 'start') await client.startRepositoryManager(repoId, { hostId: o.host });
            else await client.stopRepositoryManager(repoId, { hostId: o.host });
            return null;
          },
          (_r, repoId) => say(verb === 'start' ? `SRM of ${repoId} started` : `SRM of ${repoId} stopped`)(),
        ),
      );
  }

  fixCommands(repo);
  return repo;
}
