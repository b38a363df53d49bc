/** The flags every command that changes an image takes: the options of its API call. */
import { Command, Option } from 'commander';
import { parseHint, parseJsonObject, parseList } from '../parse';

export interface ImageFlags {
  autoFix: boolean;
  strategy?: string;
  requestId?: string;
  userData?: string;
  participating?: string[];
  hint?: Record<string, string>;
}

export function withImageFlags(command: Command, flags: { strategy?: boolean; lookup?: boolean; userData?: boolean } = {}): Command {
  command.option('--no-auto-fix', 'persist only; leave the fix for later (the object stays broken or uncleaned)');
  command.option('--request-id <id>', 'idempotency key: the same request twice has one effect');
  if (flags.strategy) command.addOption(new Option('--strategy <strategy>', 'what to value when both ways exist').choices(['space', 'performance']));
  if (flags.userData) command.option('--user-data <json>', 'a JSON object kept with the image');
  if (flags.lookup) {
    command.option('--participating <repoIds>', 'look for existing images only in these repositories (R1,R2)', parseList);
    command.option('--hint <image=repo>', 'look for IMAGE only in REPO, repeatable', parseHint);
  }
  return command;
}

/** The API `options` object from the flags given; absent flags stay absent, so defaults apply. */
export function callOptions(flags: ImageFlags): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries({
      autoFix: flags.autoFix === false ? false : undefined,
      strategy: flags.strategy,
      requestId: flags.requestId,
      participatingRepositories: flags.participating,
      imageHints: flags.hint,
    }).filter(([, v]) => v !== undefined),
  );
}

export function userDataOf(flags: ImageFlags): Record<string, unknown> {
  return flags.userData === undefined ? {} : parseJsonObject(flags.userData, '--user-data');
}
