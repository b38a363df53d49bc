/**
 * Every recorded history (test/histories/, written by scripts/record-histories.ts) replays
 * against the workflow code as it is now. A change that would break workflows already running
 * in a cluster fails here.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { WORKFLOW_CONTRACTS } from '../api/operations';
import { droppedOperationSinks } from '../workers/metrics/worker-metrics';
import { PRELOADED_WORKFLOW_MODULES } from '../workers/workflow-bundle';

const HISTORIES = join(__dirname, 'histories');
const files = readdirSync(HISTORIES).filter((f) => f.endsWith('.json')).sort();

describe('recorded histories replay against today\'s workflow code', () => {
  it('every workflow type has at least one recorded history', () => {
    const recorded = new Set(files.map((f) => f.split('.')[0]));
    expect(Object.keys(WORKFLOW_CONTRACTS).filter((type) => !recorded.has(type))).toEqual([]);
  });

  it(
    'all histories replay without nondeterminism',
    async () => {
      const histories = files.map((file) => ({ workflowId: file, history: JSON.parse(readFileSync(join(HISTORIES, file), 'utf8')) }));
      const failures: string[] = [];
      // With the workflow interceptors the host worker runs: they must not change what a workflow does.
      const options = {
        workflowsPath: join(__dirname, '..', 'workflows', 'index.ts'),
        bundlerOptions: { preloadModules: PRELOADED_WORKFLOW_MODULES },
        interceptors: { workflowModules: [join(__dirname, '..', 'workflows', 'operation-metrics.ts')] },
        sinks: droppedOperationSinks,
      };
      for await (const result of Worker.runReplayHistories(options, histories)) {
        if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
      }
      expect(failures).toEqual([]);
      expect(histories.length).toBeGreaterThan(0);
    },
    120_000,
  );
});
