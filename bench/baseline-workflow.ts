/**
 * The bare Temporal shape of a diskflow create, with no diskflow in it: one workflow started
 * with an update (Update-With-Start), one activity that writes and fsyncs a small file on the
 * host's queue, the update answered after it.
 * bench/create-latency runs it side by side with createVirtualDisk, one at a time, sustained and
 * in a burst, in one run: its figures are what Temporal and the machine cost, the ceiling for
 * diskflow on this machine.
 */
import { condition, defineUpdate, proxyActivities, setHandler, allHandlersFinished } from '@temporalio/workflow';

export interface BaselineActivities {
  /** Writes a small file and fsyncs it (a record write). */
  persist(): Promise<void>;
}

export const baselinePersisted = defineUpdate<string>('persisted');

export async function baselineCreate(): Promise<string> {
  let done = false;
  setHandler(baselinePersisted, async () => {
    await condition(() => done);
    return 'ok';
  });
  const host = proxyActivities<BaselineActivities>({ taskQueue: 'baseline.host', startToCloseTimeout: '1 minute' });
  await host.persist();
  done = true;
  await condition(allHandlersFinished);
  return 'ok';
}
