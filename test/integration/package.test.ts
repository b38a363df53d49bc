/**
 * diskflow as an engine written in TypeScript gets it: `npm pack`, the tarball installed into a
 * scratch package, and `import { StorageClient } from 'diskflow/client'` from an ES module and
 * from CommonJS, type-checked (the types ship with it) and run against a real host worker.
 *
 * One `npm install` serves both: the scratch ES module package installs the tarball, and a
 * CommonJS package inside it resolves `diskflow` from there, as in any workspace.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientFor, ROOT, startHost, stopAllHosts, testEnv } from '../harness/hosts';
import { localRepository, removeTempDirs, tempDir } from '../harness/repositories';

const HOST = 'pack-host';
let scratch: string;

function run(command: string, args: string[], cwd: string, timeout = 120_000): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(command, args, { cwd, env: testEnv({ DISKFLOW_HOST_ID: HOST }), timeout, maxBuffer: 16 * 2 ** 20 }, (error, stdout, stderr) =>
      error ? reject(new Error(`${command} ${args.join(' ')} in ${cwd} failed: ${stderr}${stdout}`)) : resolve(stdout),
    ),
  );
}

// What an engine does: create a disk, wait for it, read its status, remove it, and see a
// removed image refused with its API code through the DiskflowError class it imported.
const engineScript = `
const client = await StorageClient.connect();
try {
  const imageId = await client.createVirtualDisk('packed', 2 ** 20, null, { by: MODULE_KIND });
  let status = await client.getImageStatus('packed', imageId);
  for (let i = 0; status.status !== 'optimized' && i < 200; i++) {
    await new Promise((r) => setTimeout(r, 100));
    status = await client.getImageStatus('packed', imageId);
  }
  await client.removeImage('packed', imageId);
  const gone = await client.getImageStatus('packed', imageId).then(() => null, (e) => e);
  console.log(JSON.stringify({ imageId, status, goneCode: gone?.code, goneIsDiskflowError: gone instanceof DiskflowError }));
} finally {
  await client.close();
}
`;

const typedUse = `
const client: StorageClient = await StorageClient.connect({ hostId: 'h' });
const status: ImageStatus = await client.getImageStatus('r', '00000000-0000-4000-8000-000000000000');
const size: number = status.size;
// @ts-expect-error: the types are real, so a wrong use of them is an error
const wrong: string = status.size;
export { size, wrong };
`;

beforeAll(async () => {
  await startHost(HOST);
  const client = await clientFor(HOST);
  await localRepository(client, 'packed');
  await client.close();

  scratch = tempDir('pack');
  await run('npm', ['pack', '--silent', '--pack-destination', scratch], ROOT);
  const tarball = readdirSync(scratch).find((f) => f.endsWith('.tgz'))!;
  const esm = join(scratch, 'esm-engine');
  mkdirSync(join(esm, 'cjs-engine'), { recursive: true });
  writeFileSync(join(esm, 'package.json'), JSON.stringify({ name: 'esm-engine', private: true, type: 'module' }));
  writeFileSync(join(esm, 'cjs-engine', 'package.json'), JSON.stringify({ name: 'cjs-engine', private: true, type: 'commonjs' }));
  // --prefer-offline: the dependencies come from npm's cache where `npm ci` already put them.
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', join(scratch, tarball)], esm, 300_000);

  writeFileSync(join(esm, 'engine.js'), `import { StorageClient, DiskflowError } from 'diskflow/client';\nconst MODULE_KIND = 'esm';\n${engineScript}`);
  writeFileSync(join(esm, 'cjs-engine', 'engine.js'), `const { StorageClient, DiskflowError } = require('diskflow/client');\nconst MODULE_KIND = 'cjs';\n(async () => {${engineScript}})().catch((e) => { console.error(e); process.exit(1); });\n`);
  writeFileSync(join(esm, 'typed.ts'), `import { StorageClient } from 'diskflow/client';\nimport type { ImageStatus } from 'diskflow/client';\n${typedUse}`);
  writeFileSync(join(esm, 'cjs-engine', 'typed.ts'), `import { StorageClient } from 'diskflow/client';\nimport type { ImageStatus } from 'diskflow/client';\nasync function main() {${typedUse.replace('export { size, wrong };', 'return [size, wrong];')}}\nexport { main };\n`);
}, 360_000);

afterAll(async () => {
  await stopAllHosts();
  removeTempDirs();
});

interface EngineRun {
  imageId: string;
  status: { status: string; size: number; userData: unknown };
  goneCode: string;
  goneIsDiskflowError: boolean;
}

// One run checks both files: under nodenext each is an ES module or CommonJS by its package.json.
const typeCheck = (dir: string) =>
  run(process.execPath, [
    join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
    '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022',
    '--skipLibCheck', '--typeRoots', join(ROOT, 'node_modules', '@types'), '--types', 'node',
    'typed.ts', join('cjs-engine', 'typed.ts'),
  ], dir);

describe('the packed package, installed', () => {
  it('`import { StorageClient } from \'diskflow/client\'` works from an ES module: create, status, remove', async () => {
    const out = JSON.parse(await run(process.execPath, ['engine.js'], join(scratch, 'esm-engine'))) as EngineRun;
    expect(out.status).toMatchObject({ status: 'optimized', size: 2 ** 20, userData: { by: 'esm' } });
    expect(out).toMatchObject({ goneCode: 'IMAGE_NOT_FOUND', goneIsDiskflowError: true });
  });

  it('`require(\'diskflow/client\')` works from CommonJS: create, status, remove', async () => {
    const out = JSON.parse(await run(process.execPath, ['engine.js'], join(scratch, 'esm-engine', 'cjs-engine'))) as EngineRun;
    expect(out.status).toMatchObject({ status: 'optimized', size: 2 ** 20, userData: { by: 'cjs' } });
    expect(out).toMatchObject({ goneCode: 'IMAGE_NOT_FOUND', goneIsDiskflowError: true });
  });

  it('ships its types: TypeScript checks a use of diskflow/client from an ES module and from CommonJS', async () => {
    await typeCheck(join(scratch, 'esm-engine'));
  });
});
