/**
 * JSON Schemas of every workflow's input and output, generated from the zod schemas the code
 * validates with, so the two cannot drift: `npm run schemas` writes them under schemas/, and a
 * test fails when the committed files differ from what the code would generate.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { CALL_DESCRIPTIONS, PERSISTED_UPDATE, WORKFLOW_CONTRACTS } from '../api/operations';
import { WORKFLOW_TASK_QUEUE } from '../api/task-queues';
import { PROJECT_ROOT } from '../workers/project-root';

export const SCHEMAS_DIR = join(PROJECT_ROOT, 'schemas');

/** File name → content, for every file under schemas/. */
export function renderJsonSchemas(): Record<string, string> {
  const files: Record<string, string> = {};
  const index: Record<string, unknown> = {};
  for (const [type, contract] of Object.entries(WORKFLOW_CONTRACTS)) {
    const input = z.toJSONSchema(contract.input, { io: 'input', unrepresentable: 'any' });
    const output = z.toJSONSchema(contract.output, { io: 'output', unrepresentable: 'any' });
    const description = (CALL_DESCRIPTIONS as Record<string, string>)[type];
    files[`${type}.input.json`] = JSON.stringify({ title: `${type} input`, ...(description ? { description } : {}), ...input }, null, 2) + '\n';
    files[`${type}.output.json`] = JSON.stringify({ title: `${type} output`, ...output }, null, 2) + '\n';
    index[type] = { input: `${type}.input.json`, output: `${type}.output.json` };
  }
  files['index.json'] =
    JSON.stringify(
      {
        taskQueue: WORKFLOW_TASK_QUEUE,
        persistedUpdate: PERSISTED_UPDATE,
        note: 'Start a workflow of one of these types on taskQueue with one argument matching its input schema; see docs/ENGINES.md.',
        workflows: index,
      },
      null,
      2,
    ) + '\n';
  return files;
}

if (require.main === module) {
  mkdirSync(SCHEMAS_DIR, { recursive: true });
  const files = renderJsonSchemas();
  for (const [name, content] of Object.entries(files)) writeFileSync(join(SCHEMAS_DIR, name), content);
  process.stdout.write(`wrote ${Object.keys(files).length} files to ${SCHEMAS_DIR}\n`);
}
