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

/** Whether the runtime is set up yet, and with which SDK metrics. */
let installed: { sdkMetrics: SdkMetricsOptions | undefined } | undefined;

/** The SDK's own Prometheus exporter (workers/metrics/): where it listens, and the host on every series. */
export interface SdkMetricsOptions {
  bindAddress: string;
  hostId: string;
}

/**
 * Routes the Temporal SDK's logs (workers, workflows, activities) into `logger`, and with
 * `sdkMetrics` has the SDK export its metrics. Must run before anything touches the SDK's
 * runtime (a dev server, a worker); later calls keep the first logger.
 */
export function installTemporalLogging(logger: Logger, sdkMetrics?: SdkMetricsOptions): void {
  if (installed) {
    if (sdkMetrics && installed.sdkMetrics?.bindAddress !== sdkMetrics.bindAddress) {
      throw new Error('the Temporal runtime was set up before its metrics were asked for');
    }
    return;
  }
  installed = { sdkMetrics };
  try {
    Runtime.install({
      telemetryOptions: {
        // Core (Rust) logs are forwarded too, instead of going straight to the console.
        logging: { forward: {}, filter: makeTelemetryFilterString({ core: 'WARN' }) },
        ...(sdkMetrics && {
          metrics: {
            // Prometheus conventions: counters end in _total, durations are seconds with the unit in the name.
            prometheus: { bindAddress: sdkMetrics.bindAddress, countersTotalSuffix: true, unitSuffix: true, useSecondsForDurations: true },
            globalTags: { host: sdkMetrics.hostId },
          },
        }),
      },
      logger: new DefaultLogger('WARN', (entry) => {
        logger[PINO_LEVEL[entry.level]]({ ...entry.meta, temporal: true }, entry.message);
      }),
    });
  } catch (error) {
    if ((error as Error).name !== 'IllegalStateError') throw error;
    if (sdkMetrics) throw new Error('the Temporal runtime was set up before its metrics were asked for');
  }
}
