/** Structured logs (pino). The Temporal runtime's own logs go through the same logger. */
import pino, { Logger } from 'pino';
import { DefaultLogger, LogLevel, makeTelemetryFilterString, Runtime } from '@temporalio/worker';

export type { Logger };

export function createLogger(options: { destination?: string; level?: string; base?: Record<string, unknown> } = {}): Logger {
  const level = options.level ?? process.env.DISKFLOW_LOG_LEVEL ?? 'info';
  const destination = options.destination ? pino.destination({ dest: options.destination, mkdir: true, sync: true }) : pino.destination(1);
  return pino({ level, base: options.base }, destination);
}

const PINO_LEVEL: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

let installed = false;

/**
 * Routes the Temporal SDK's logs (workers, workflows, activities) into `logger`. Must run before
 * anything touches the SDK's runtime (a dev server, a worker); later calls keep the first logger.
 */
export function installTemporalLogging(logger: Logger): void {
  if (installed) return;
  installed = true;
  try {
    Runtime.install({
      // Core (Rust) logs are forwarded too, instead of going straight to the console.
      telemetryOptions: { logging: { forward: {}, filter: makeTelemetryFilterString({ core: 'WARN' }) } },
      logger: new DefaultLogger('WARN', (entry) => {
        logger[PINO_LEVEL[entry.level]]({ ...entry.meta, temporal: true }, entry.message);
      }),
    });
  } catch (error) {
    if ((error as Error).name !== 'IllegalStateError') throw error;
  }
}
