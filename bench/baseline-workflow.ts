/**
 * The bare Temporal shape of a diskflow create, with no diskflow in it: Update-With-Start, one
 * no-op activity on the host's queue, the update answered after it, then a no-op fix step on
 * another queue.
 * bench/create-latency runs it side by side with createVirtualDisk, so its figures separate
 * what Temporal and the machine cost from what diskflow adds.
 */
import { condition, defineUpdate, proxyActivities, setHandler, allHandlersFinished } from '@temporalio/workflow';

export interface BaselineActivities {
  noop(): Promise<void>;
}

export const baselinePersisted = defineUpdate<string>('persisted');

export async function baselineCreate(): Promise<string> {
  let done = false;
  setHandler(baselinePersisted, async () => {
    await condition(() => done);
    return 'ok';
  });
  const first = proxyActivities<BaselineActivities>({ taskQueue: 'baseline.host', startToCloseTimeout: '1 minute' });
  const second = proxyActivities<BaselineActivities>({ taskQueue: 'baseline.repo', startToCloseTimeout: '1 minute' });
  await first.noop();
  done = true;
  await second.noop();
  await condition(allHandlersFinished);
  return 'ok';
}
