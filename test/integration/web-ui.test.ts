/**
 * The Temporal Web UI of `diskflow dev`, the operators' main tool, driven in a real browser
 * (Debian's chromium through playwright-core): find a running copy by its DiskflowImage search
 * attribute, read its progress with the `progress` query, cancel it from the UI; the image is
 * left broken with lastError saying so, and a mend fix completes it with the right content.
 *
 * Skipped, saying so, where there is no Chromium: scripts/bootstrap.sh installs Debian's for
 * `npm test` (DISKFLOW_CHROMIUM points at another build).
 */
import { existsSync } from 'node:fs';
import { chromium, Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OperationProgress } from '../../api/progress';
import { StorageClient } from '../../client/storage-client';
import { diskflow } from '../harness/cli';
import { Model, sameContent, writeImage } from '../harness/content';
import { startDev, stopAllDevs } from '../harness/dev';
import { freePort } from '../harness/ports';
import { removeTempDirs, tempDir } from '../harness/repositories';
import { eventually } from '../harness/wait';

const CHROMIUM = process.env.DISKFLOW_CHROMIUM || '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const SKIPPED = `skipped: no Chromium at ${CHROMIUM} (scripts/bootstrap.sh installs Debian's chromium for npm test; DISKFLOW_CHROMIUM names another)`;
if (!hasChromium) process.stderr.write(`web-ui.test.ts ${SKIPPED}\n`);

const MiB = 2 ** 20;
const HOST = 'ui-host';
let browser: Browser;
let client: StorageClient;
let ui: string;
let cli: Record<string, string>;

beforeAll(async () => {
  if (!hasChromium) return;
  const [port, uiPort] = [await freePort(), await freePort()];
  ui = `http://localhost:${uiPort}`;
  const env = {
    DISKFLOW_HOME: tempDir('ui-home'),
    DISKFLOW_DEV_PORT: String(port),
    DISKFLOW_UI_PORT: String(uiPort),
    DISKFLOW_METRICS_ADDRESS: 'off',
    DISKFLOW_HOST_ID: HOST,
    // A copy of 96 MiB lasts about 30 s: long enough to find and cancel it by hand, even on a
    // busy machine where the UI takes seconds to answer.
    DISKFLOW_COPY_RATE_LIMIT: '3M',
    DISKFLOW_COPY_CHUNK: '8M',
    DISKFLOW_PROGRESS_INTERVAL_MS: '300',
  };
  cli = { TEMPORAL_ADDRESS: `127.0.0.1:${port}`, DISKFLOW_HOST_ID: HOST };
  [browser] = await Promise.all([
    // Debian's build and the flags it needs here (no sandbox as root, no GPU, no phoning home).
    chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] }),
    startDev(env),
  ]);
  client = await StorageClient.connect({ address: cli.TEMPORAL_ADDRESS, hostId: HOST });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await client?.close();
  await stopAllDevs();
  removeTempDirs();
});

/** The workflows page, filtered as an operator types it into the query box. */
async function findByImage(page: Page, imageId: string): Promise<void> {
  await page.goto(`${ui}/namespaces/default/workflows`);
  await page.getByTestId('toggle-manual-query').click();
  const query = page.getByTestId('workflow-manual-search-input');
  await query.fill(`DiskflowImage = "${imageId}"`);
  await query.press('Enter');
}

/** Runs the `progress` query from the Queries tab ("Run Query" the first time, then "Refresh Query") and reads what it shows. */
async function queryProgress(page: Page): Promise<OperationProgress> {
  const answered = page.waitForResponse((r) => r.url().includes('/query/progress'));
  await page.getByRole('button', { name: /^(Run|Refresh) Query$/ }).click();
  await answered;
  await page.waitForTimeout(200);
  const shown = page.locator('.cm-content').filter({ hasText: '"state"' });
  await shown.waitFor();
  return JSON.parse(await shown.innerText()) as OperationProgress;
}

describe.skipIf(!hasChromium)(hasChromium ? 'the Web UI, in a real browser' : `the Web UI (${SKIPPED})`, () => {
  it('finds a running copy by DiskflowImage, shows its progress, cancels it; the image is broken with lastError, and a mend completes it', async () => {
    const source = await client.createVirtualDisk('default', 128 * MiB);
    await eventually(() => client.getImageStatus('default', source), (s) => s.status === 'optimized');
    const model = Model.blank(128 * MiB).write({ pattern: 0xc4, offset: 0, length: 96 * MiB });
    await writeImage(client, 'default', source, { pattern: 0xc4, offset: 0, length: 96 * MiB });
    const copy = await client.copyImage('default', source);
    await eventually(() => client.getImageStatus('default', copy), (s) => s.status === 'broken' && s.percentComplete > 0, 30_000);

    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await findByImage(page, copy);
    const row = page.getByRole('link', { name: /^copyImage:/ });
    await row.waitFor();
    expect(await row.count()).toBe(1);
    await Promise.all([page.waitForURL(/\/workflows\/copyImage/), row.click()]);
    await page.getByText(/^running$/i).first().waitFor();

    // The progress query, from the Queries tab: where the copy is, in stage and bytes.
    await page.getByTestId('queries-tab').click();
    const progress = await queryProgress(page);
    expect(progress).toMatchObject({ state: 'fixing', step: { imageId: copy, stage: { current: 1, total: 2 }, hostId: HOST, totalBytes: 96 * MiB } });
    expect(progress.step!.doneBytes).toBeGreaterThan(0);
    expect(progress.step!.percentComplete).toBeGreaterThan(0);
    expect(progress.step!.percentComplete).toBeLessThan(100);

    // More Actions > Request Cancellation > Confirm.
    await page.getByRole('button', { name: 'More Actions' }).click();
    await page.getByRole('menuitem', { name: 'Request Cancellation' }).filter({ visible: true }).first().click();
    await page.getByTestId('confirm-modal-button').filter({ visible: true }).click();
    await page.getByText(/^canceled$/i).first().waitFor({ timeout: 20_000 });

    const stopped = await eventually(() => client.getImageStatus('default', copy), (s) => s.lastError?.includes('cancelled') ?? false, 20_000);
    expect(stopped.status).toBe('broken');
    expect(stopped.percentComplete).toBeLessThan(100);
    await page.close();

    const fixed = await diskflow(['repo', 'fix', 'default', '--type', 'mend'], cli);
    expect(fixed.code).toBe(0);
    expect(fixed.stdout).toContain('done   mend');
    expect(await client.getImageStatus('default', copy)).toMatchObject({ status: 'optimized', lastError: null });
    expect(await sameContent(client, 'default', copy, model)).toBe(true);
  }, 150_000);
});
