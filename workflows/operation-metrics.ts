/**
 * A workflow interceptor (bundled with the workflows, registered by the host worker) that tells
 * the worker how each operation ended: completed, cancelled, or failed with its API code, with
 * the operation's own search attributes as labels. It only calls a sink, which the SDK skips
 * while replaying, so it adds no command and no history event: recorded histories replay the same.
 */
import { ContinueAsNew, proxySinks, Sinks, workflowInfo } from '@temporalio/workflow';
import type { WorkflowExecuteInput, WorkflowInboundCallsInterceptor, WorkflowInterceptorsFactory, Next } from '@temporalio/workflow';
import { codeOf, isCancellation } from '../api/failures';
import { DiskflowHost, DiskflowRepo } from '../api/search-attributes';

export interface OperationEnded {
  operationType: string;
  repository: string;
  host: string;
  outcome: 'completed' | 'cancelled' | 'failed';
  /** The API error code of a failure; 'UNCODED' for a failure that carries none. */
  code: string | null;
}

export interface OperationSinks extends Sinks {
  diskflowOperations: { ended(operation: OperationEnded): void };
}

const { diskflowOperations } = proxySinks<OperationSinks>();

function report(outcome: OperationEnded['outcome'], code: string | null): void {
  const info = workflowInfo();
  diskflowOperations.ended({
    operationType: info.workflowType,
    repository: info.typedSearchAttributes.get(DiskflowRepo) ?? '',
    host: info.typedSearchAttributes.get(DiskflowHost) ?? '',
    outcome,
    code,
  });
}

class OperationOutcome implements WorkflowInboundCallsInterceptor {
  async execute(input: WorkflowExecuteInput, next: Next<WorkflowInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    try {
      const result = await next(input);
      report('completed', null);
      return result;
    } catch (error) {
      if (error instanceof ContinueAsNew) throw error;
      if (isCancellation(error)) report('cancelled', null);
      else report('failed', codeOf(error) ?? 'UNCODED');
      throw error;
    }
  }
}

export const interceptors: WorkflowInterceptorsFactory = () => ({ inbound: [new OperationOutcome()] });
