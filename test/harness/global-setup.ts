/** One real Temporal dev server for the whole test run, stopped when the run ends, pass or fail. */
import type { TestProject } from 'vitest/node';
import { installTemporalLogging, createLogger } from '../../workers/logger';
import { startDevServer, DevServer } from '../../workers/temporal-server';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
  }
}

let server: DevServer | undefined;

export async function setup(project: TestProject): Promise<void> {
  installTemporalLogging(createLogger({ level: 'warn', destination: '/dev/null' }));
  server = await startDevServer();
  project.provide('temporalAddress', server.address);
}

export async function teardown(): Promise<void> {
  await server?.stop();
}
