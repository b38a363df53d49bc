/**
 * A copy job's `requiredBytes` (what the copy's call measured) comes back from storage and from
 * the persist step's input: a value diskflow never writes is refused with a code, and the
 * record stays as it was. Records on a real localfs repository.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkActivityInput } from '../../activities/activity-defaults';
import { newCopyJob } from '../../activities/images/copy-job';
import { createImage, readImage } from '../../activities/images/image-store';
import { newImageRecord } from '../../activities/images/lifecycle';
import { localfs } from '../../activities/repository/formats/localfs';
import type { Repository } from '../../activities/repository/repository';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

const SOURCE = { repoUuid: '00000000-0000-4000-8000-000000000003', imageId: '00000000-0000-4000-8000-000000000004', contentEpoch: 0 };
const HOSTILE = [-1, 1.5, 'lots', Number.MAX_SAFE_INTEGER + 2, {}];

async function repository(): Promise<{ repo: Repository; path: string }> {
  const path = mkdtempSync(join(tmpdir(), 'copy-job-'));
  dirs.push(path);
  const host = { hostId: 'h', home: path, homeId: '00000000-0000-4000-8000-000000000001' };
  await localfs.init({ path }, host);
  return { repo: await localfs.connect({ path }, host), path };
}

const copyRecord = (requiredBytes: number | null) =>
  newImageRecord({
    imageId: '00000000-0000-4000-8000-000000000001',
    kind: 'virtual-disk',
    size: 1 << 20,
    userData: {},
    strategy: 'space',
    volumeId: '00000000-0000-4000-8000-000000000002',
    operationId: 'op',
    operationType: 'copyImage',
    hostId: 'h',
    claim: false,
    pending: { step: 'copy', job: newCopyJob(SOURCE, 'space', '00000000-0000-4000-8000-000000000002', null, null, requiredBytes) },
  });

describe("a copy job's requiredBytes", () => {
  it('as diskflow writes it (a measure, or null) reads back; a record written before the field reads as null', async () => {
    const { repo } = await repository();
    const image = copyRecord(3 << 20);
    await createImage(repo, image);
    expect((await readImage(repo, image.imageId))?.pending).toMatchObject({ step: 'copy', job: { requiredBytes: 3 << 20 } });
    const { requiredBytes: _, ...older } = (image.pending as { job: Record<string, unknown> }).job;
    await repo.writeRecord('image', image.imageId, { ...image, pending: { step: 'copy', job: older } });
    expect((await readImage(repo, image.imageId))?.pending).toMatchObject({ step: 'copy', job: { requiredBytes: null } });
  });

  it.each(HOSTILE)('stored as %j, the record is refused with STORAGE_ERROR and left as it was', async (value) => {
    const { repo, path } = await repository();
    const image = copyRecord(null);
    await repo.writeRecord('image', image.imageId, { ...image, pending: { step: 'copy', job: { ...(image.pending as { job: object }).job, requiredBytes: value } } });
    const file = join(path, 'images', `${image.imageId}.json`);
    const before = readFileSync(file, 'utf8');
    await expect(readImage(repo, image.imageId)).rejects.toMatchObject({ code: 'STORAGE_ERROR', message: expect.stringContaining('requiredBytes') });
    expect(readFileSync(file, 'utf8')).toBe(before);
  });

  it.each(HOSTILE)("as %j in the persist step's input, the step is refused with INVALID_ARGUMENT", (value) => {
    const step = (requiredBytes: unknown) => ({
      repoUuid: SOURCE.repoUuid,
      step: {
        op: 'copy-image',
        input: {
          imageId: '00000000-0000-4000-8000-000000000001',
          operationId: 'op',
          operationType: 'copyImage',
          hostId: 'h',
          source: { ...SOURCE, kind: 'virtual-disk', size: 1 << 20, userData: {}, strategy: 'space', volumeId: '00000000-0000-4000-8000-000000000005' },
          kind: 'virtual-disk',
          userData: {},
          strategy: 'space',
          autoFix: true,
          requiredBytes,
        },
      },
    });
    expect(() => checkActivityInput('persist', [step(3 << 20)])).not.toThrow();
    // The step is a union of every operation's persist input: its issue names the step, not the field.
    expect(() => checkActivityInput('persist', [step(value)])).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('persist input.step') }));
  });
});
