/**
 * `diskflow cluster check|setup` against clusters an operator may bring: a dev server started
 * without diskflow's flags (no search attributes), one with Workflow Update turned off (as an
 * older or stricter server has it), a namespace that does not exist yet, a TLS setting the
 * server does not speak; and the test run's own server, set up as `diskflow dev` sets it up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterReport, Requirement } from '../../client/cluster';
import { diskflow } from '../harness/cli';
import { startBareServer, BareServer } from '../harness/bare-server';

let bare: BareServer;
let strict: BareServer;

beforeAll(async () => {
  [bare, strict] = await Promise.all([
    startBareServer(),
    startBareServer(['frontend.enableUpdateWorkflowExecution=false', 'frontend.enableExecuteMultiOperation=false']),
  ]);
}, 120_000);

afterAll(async () => {
  await Promise.all([bare?.stop(), strict?.stop()]);
});

const SEARCH_ATTRIBUTES = ['DiskflowRepo', 'DiskflowImage', 'DiskflowOperation', 'DiskflowHost'].map((n) => `search attribute ${n}`);

async function cluster(command: 'check' | 'setup', address: string, env: Record<string, string> = {}) {
  const result = await diskflow(['cluster', command, '--json'], { TEMPORAL_ADDRESS: address, ...env });
  const report = result.stdout ? (JSON.parse(result.stdout) as ClusterReport & { changed?: string[] }) : null;
  const item = (name: string): Requirement | undefined => report?.requirements.find((r) => r.name === name);
  const missing = report?.requirements.filter((r) => r.required && !r.ok).map((r) => r.name) ?? [];
  return { ...result, report, item, missing };
}

describe('diskflow cluster check and setup', () => {
  it('against a dev server without diskflow\'s flags, check names the missing search attributes and exits 1', async () => {
    const check = await cluster('check', bare.address);
    expect(check.code).toBe(1);
    expect(check.missing).toEqual(SEARCH_ATTRIBUTES);
    expect(check.item('search attribute DiskflowImage')).toMatchObject({ detail: 'not registered', fix: 'diskflow cluster setup' });
    expect(check.item('namespace default')?.ok).toBe(true);
    expect(check.item('Update-With-Start')?.ok).toBe(true);
    expect(check.report!.serverVersion).toMatch(/^\d+\.\d+/);
    expect(check.stderr).toContain('missing search attribute DiskflowRepo');
  });

  it('setup registers the search attributes through the operator API; check then passes', async () => {
    const setup = await cluster('setup', bare.address);
    expect(setup.code).toBe(0);
    expect(setup.report!.changed!.join('\n')).toContain('registered search attributes DiskflowRepo (Keyword)');
    const check = await cluster('check', bare.address);
    expect(check.code).toBe(0);
    expect(check.missing).toEqual([]);
    for (const name of SEARCH_ATTRIBUTES) expect(check.item(name)).toMatchObject({ ok: true, detail: 'Keyword' });
    // A second setup has nothing left to do.
    expect((await cluster('setup', bare.address)).report!.changed).toEqual([]);
  });

  it('names a namespace that does not exist, and setup creates it with the search attributes', async () => {
    const env = { TEMPORAL_NAMESPACE: 'diskflow-ops' };
    const check = await cluster('check', bare.address, env);
    expect(check.code).toBe(1);
    expect(check.missing).toEqual(['namespace diskflow-ops']);
    const setup = await cluster('setup', bare.address, env);
    expect(setup.code).toBe(0);
    expect(setup.report!.changed).toEqual([
      'registered namespace diskflow-ops (retention 7 days)',
      `registered search attributes ${['DiskflowRepo', 'DiskflowImage', 'DiskflowOperation', 'DiskflowHost'].map((n) => `${n} (Keyword)`).join(', ')}`,
    ]);
    expect((await cluster('check', bare.address, env)).code).toBe(0);
  }, 90_000);

  it('against a server with Workflow Update off, check names Update and Update-With-Start with the config that turns them on; setup cannot', async () => {
    const check = await cluster('check', strict.address);
    expect(check.missing).toEqual([...SEARCH_ATTRIBUTES, 'Workflow Update', 'Update-With-Start']);
    expect(check.item('Workflow Update')!.detail).toMatch(/disabled/i);
    expect(check.item('Workflow Update')!.fix).toContain('frontend.enableUpdateWorkflowExecution=true');
    expect(check.item('Update-With-Start')!.detail).toMatch(/disabled/i);
    const setup = await cluster('setup', strict.address);
    expect(setup.code).toBe(1);
    expect(setup.missing).toEqual(['Workflow Update', 'Update-With-Start']);
    expect(setup.stderr).toContain('missing Workflow Update, Update-With-Start');
  });

  it('a TLS setting the server does not speak fails with where and how it connected', async () => {
    const [tls, keyed] = await Promise.all([
      diskflow(['cluster', 'check'], { TEMPORAL_ADDRESS: bare.address, TEMPORAL_TLS: 'true' }),
      diskflow(['cluster', 'check'], { TEMPORAL_ADDRESS: bare.address, TEMPORAL_API_KEY: 'not-a-real-key' }),
    ]);
    expect(tls.code).toBe(1);
    expect(tls.stderr).toContain(`STORAGE_ERROR: cannot use Temporal at ${bare.address} (namespace default, TLS)`);
    expect(keyed.code).toBe(1);
    expect(keyed.stderr).toContain('(namespace default, TLS with an API key)');
  });

  it('the test run\'s server, started as `diskflow dev` starts it, has all diskflow needs', async () => {
    const check = await diskflow(['cluster', 'check']);
    expect(check.code).toBe(0);
    expect(check.stdout).toMatch(/ok\s+.\s*workflow pause/);
  });
});
