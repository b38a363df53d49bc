/**
 * Workflow interceptors every diskflow worker registers (host-worker.ts, scripts/bundle-workflows.ts):
 * the input a workflow was started with is remembered (started-with.ts), so that the `persisted`
 * update can refuse a request that reuses its id with other arguments (persisted.ts).
 */
import type { WorkflowExecuteInput, WorkflowInboundCallsInterceptor, WorkflowInterceptorsFactory, Next } from '@temporalio/workflow';
import { rememberInput } from './started-with';

class RememberInput implements WorkflowInboundCallsInterceptor {
  execute(input: WorkflowExecuteInput, next: Next<WorkflowInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    rememberInput(input.args[0]);
    return next(input);
  }
}

export const interceptors: WorkflowInterceptorsFactory = () => ({ inbound: [new RememberInput()] });
