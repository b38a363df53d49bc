/** `diskflow worker`: one host's worker against any Temporal server (TEMPORAL_ADDRESS, ...). */
import type { TemporalSettings } from '../config/environment';
import { HostWorker } from './host-worker';
import { createLogger, installTemporalLogging } from './logger';
import { metricsSettings } from './metrics/settings';
import { onStopSignal } from './signals';

export async function runWorker(options: { hostId: string; home: string; temporal: TemporalSettings }): Promise<void> {
  const logger = createLogger({ base: { hostId: options.hostId } });
  // DISKFLOW_METRICS_ADDRESS: Prometheus metrics, off unless set.
  const metrics = await metricsSettings();
  installTemporalLogging(logger, metrics ? { bindAddress: metrics.sdkBindAddress, hostId: options.hostId } : undefined);
  const worker = await HostWorker.start({ ...options, logger, metrics });
  onStopSignal(() => worker.shutdown());
  await worker.run();
}
