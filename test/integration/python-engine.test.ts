/**
 * An engine in Python, with the official Temporal SDK from PyPI (temporalio, installed with
 * jsonschema by scripts/bootstrap.sh into .tools/python, not system-wide): the example of
 * docs/ENGINES.md, run as it stands there, creates a disk with Update-With-Start, waits for it,
 * copies it, reads the copy's status and an error code, validating every payload against schemas/.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageStatus } from '../../api/image-status';
import { clientFor, ROOT, startHost, stopAllHosts, testEnv } from '../harness/hosts';
import { localRepository, removeTempDirs } from '../harness/repositories';

const PYTHON_TOOLS = join(ROOT, '.tools', 'python');
const EXAMPLE = join(ROOT, 'docs', 'examples', 'python_engine.py');
const installed = existsSync(join(PYTHON_TOOLS, 'temporalio')) && existsSync(join(PYTHON_TOOLS, 'jsonschema'));
const SKIPPED = `skipped: temporalio and jsonschema are not in ${PYTHON_TOOLS} (scripts/bootstrap.sh --test installs them; npm test runs it)`;
if (!installed) process.stderr.write(`python-engine.test.ts ${SKIPPED}\n`);

const HOST = 'py-host';

beforeAll(async () => {
  if (!installed) return;
  await startHost(HOST);
  const client = await clientFor(HOST);
  await localRepository(client, 'py-disks');
  await localRepository(client, 'py-backups');
  await client.close();
}, 120_000);

afterAll(async () => {
  await stopAllHosts();
  removeTempDirs();
});

function python(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile('python3', args, { env: testEnv({ PYTHONPATH: PYTHON_TOOLS, PYTHONDONTWRITEBYTECODE: '1', DISKFLOW_HOST_ID: HOST, ...env }), timeout: 90_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    ),
  );
}

describe.skipIf(!installed)(installed ? 'an engine in Python' : `an engine in Python (${SKIPPED})`, () => {
  it('docs/ENGINES.md shows the example exactly as it is run here', () => {
    const engines = readFileSync(join(ROOT, 'docs', 'ENGINES.md'), 'utf8');
    expect(engines).toContain('```python\n' + readFileSync(EXAMPLE, 'utf8') + '```\n');
  });

  it('creates a disk with Update-With-Start, waits for it, copies it and reads its status, every payload valid against schemas/', async () => {
    const run = await python([EXAMPLE, 'py-disks', 'py-backups']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout) as { disk: string; copy: string; status: ImageStatus; missingImageCode: string };
    expect(out.copy).not.toBe(out.disk);
    expect(out.status).toMatchObject({ imageId: out.copy, repoId: 'py-backups', kind: 'virtual-disk', status: 'optimized', size: 8 * 2 ** 20, lastError: null });
    expect(out.missingImageCode).toBe('IMAGE_NOT_FOUND');
    // What the Python engine made, as diskflow's own client sees it.
    const client = await clientFor(HOST);
    try {
      expect(await client.getImageStatus('py-disks', out.disk)).toMatchObject({ status: 'optimized', userData: { vm: 'web-1' } });
    } finally {
      await client.close();
    }
  });

  it('a payload the schemas refuse is refused in Python before it is sent', async () => {
    // The same helper the example uses, given a negative size.
    const code = [
      'import sys, runpy',
      `engine = runpy.run_path(${JSON.stringify(EXAMPLE)})`,
      'try:',
      '    engine["checked"]("createVirtualDisk", "input", {"hostId": "h", "targetRepoId": "r", "size": -1})',
      'except Exception as e:',
      '    print(type(e).__name__); sys.exit(0)',
      'sys.exit(3)',
    ].join('\n');
    const run = await python(['-c', code]);
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toBe('ValidationError');
  });
});
