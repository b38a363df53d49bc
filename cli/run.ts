/** Shared plumbing of CLI commands: one client per invocation, errors reported with their code. */
import { StorageClient } from '../client/storage-client';
import { printJson, reportFailure } from './output';

export interface GlobalOptions {
  json?: boolean;
}

/** Runs `body` with a connected client; prints its result as JSON with --json, else with `human`. */
export function withClient<A extends unknown[], R>(
  body: (client: StorageClient, ...args: A) => Promise<R>,
  human: (result: R, ...args: A) => void,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const command = args[args.length - 1] as { optsWithGlobals(): GlobalOptions };
    const json = !!command.optsWithGlobals().json;
    let client: StorageClient | undefined;
    try {
      client = await StorageClient.connect();
      const result = await body(client, ...args);
      if (json) printJson(result);
      else human(result, ...args);
    } catch (error) {
      reportFailure(error);
    } finally {
      await client?.close();
    }
  };
}
