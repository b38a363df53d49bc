/** `diskflow worker`: one host's worker against any Temporal server (TEMPORAL_ADDRESS, ...). */
import type { TemporalSettings } from '../client/config';
import { HostWorker } from './host-worker';
import { createLogger, installTemporalLogging } from './logger';
import { onStopSignal } from './signals';

export async function runWorker(options: { hostId: string; home: string; temporal: TemporalSettings }): Promise<void> {
  const logger = createLogger({ base: { hostId: options.hostId } });
  installTemporalLogging(logger);
  const worker = await HostWorker.start({ ...options, logger });
  onStopSignal(() => worker.shutdown());
  await worker.run();
}
