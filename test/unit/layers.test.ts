/** The layer rule (eslint.config.mjs, LAYERS): a folder importing one above or beside it fails lint. */
import { ESLint } from 'eslint';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(__dirname, '..', '..');
const eslint = new ESLint({ cwd: ROOT });

async function layerErrors(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: join(ROOT, file) });
  return result.messages.filter((m) => m.ruleId === 'diskflow/layers').map((m) => m.message);
}

describe('layers lint rule', () => {
  it('refuses an import from a folder above: workers/ importing client/, client/ importing workers/ or cli/', async () => {
    expect(await layerErrors('workers/x.ts', "import { StorageClient } from '../client/storage-client';\nexport { StorageClient };\n")).toHaveLength(1);
    expect(await layerErrors('client/x.ts', "export { runWorker } from '../workers/worker-process';\n")).toHaveLength(1);
    expect(await layerErrors('client/x.ts', "export async function f() { return import('../cli/parse'); }\n")).toHaveLength(1);
    expect(await layerErrors('api/x.ts', "export { parseSize } from '../config/size';\n")).toHaveLength(1);
  });

  it('refuses a value import of activities/ from workflows/, allows a type import', async () => {
    expect(await layerErrors('workflows/x.ts', "import { makeActivities } from '../activities';\nexport { makeActivities };\n")).toHaveLength(1);
    expect(await layerErrors('workflows/x.ts', "import type { Activities } from '../activities';\nexport type { Activities };\n")).toEqual([]);
  });

  it('allows imports down the layers and within a folder', async () => {
    expect(await layerErrors('cli/x.ts', "import { StorageClient } from '../client/storage-client';\nimport { runWorker } from '../workers/worker-process';\nexport { StorageClient, runWorker };\n")).toEqual([]);
    expect(await layerErrors('workers/metrics/x.ts', "import { stallAfterMs } from '../../config/environment';\nimport { hostSettings } from '../settings';\nexport { stallAfterMs, hostSettings };\n")).toEqual([]);
    expect(await layerErrors('test/x.ts', "import { program } from '../cli/main';\nexport { program };\n")).toEqual([]);
  });
});
