/**
 * updateImage where image writes are compare-and-swaps on the generation (a clvm host that is
 * not the SRM sends them there): a write that lost to another writer is made again over the
 * record as it is now, so neither update is lost. Records on a real localfs repository; the
 * swap is the SRM's rule (activities/srm/forwarding-repository.ts, swapImage) applied in front of it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createImage, readImage, updateImage } from '../../activities/images/image-store';
import { newImageRecord } from '../../activities/images/lifecycle';
import { localfs } from '../../activities/repository/formats/localfs';
import { RecordConflict, Repository } from '../../activities/repository/repository';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

async function repository(): Promise<Repository> {
  const path = mkdtempSync(join(tmpdir(), 'swap-'));
  dirs.push(path);
  const host = { hostId: 'h', home: path, homeId: '00000000-0000-4000-8000-000000000001' };
  await localfs.init({ path }, host);
  return localfs.connect({ path }, host);
}

/** The repository as a host that is not the SRM sees it: image writes swap on the generation. */
function swapping(repo: Repository): Repository {
  return new Proxy(repo, {
    get(target, name, receiver) {
      if (name !== 'writeRecord') {
        const value = Reflect.get(target, name, receiver) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      }
      return async (kind: 'image' | 'volume', id: string, value: { generation: number }) => {
        const current = (await target.readRecord(kind, id)) as { generation: number } | null;
        if (kind === 'image' && current?.generation !== value.generation - 1) throw new RecordConflict(kind, id);
        await target.writeRecord(kind, id, value);
      };
    },
  });
}

const record = () =>
  newImageRecord({
    imageId: '00000000-0000-4000-8000-000000000001',
    kind: 'virtual-disk',
    size: 1 << 20,
    userData: {},
    strategy: 'space',
    volumeId: '00000000-0000-4000-8000-000000000002',
    operationId: 'op',
    operationType: 'createVirtualDisk',
    hostId: 'h',
    claim: false,
    pending: null,
  });

describe('updateImage over compare-and-swap writes', () => {
  it('a write that lost to another writer is reapplied over the newer record: both updates kept', async () => {
    const repo = await repository();
    const image = record();
    await createImage(repo, image);
    let calls = 0;
    const written = await updateImage(swapping(repo), image.imageId, async (img) => {
      calls++;
      // Another host's write lands between this read and this write (only the first time).
      if (calls === 1) await repo.writeRecord('image', img.imageId, { ...img, generation: img.generation + 1, userData: { rival: 1 } });
      return { ...img, userData: { ...img.userData, mine: 1 } };
    });
    expect(calls).toBe(2);
    expect(written).toMatchObject({ generation: 3, userData: { rival: 1, mine: 1 } });
    expect(await readImage(repo, image.imageId)).toMatchObject({ generation: 3, userData: { rival: 1, mine: 1 } });
  });

  it('gives up (RecordConflict) after a bounded number of lost swaps, leaving the other writer\'s record', async () => {
    const repo = await repository();
    const image = record();
    await createImage(repo, image);
    let calls = 0;
    const update = updateImage(swapping(repo), image.imageId, async (img) => {
      calls++;
      await repo.writeRecord('image', img.imageId, { ...img, generation: img.generation + 1, userData: { rival: calls } });
      return { ...img, userData: { mine: 1 } };
    });
    await expect(update).rejects.toBeInstanceOf(RecordConflict);
    expect(calls).toBe(20);
    expect(await readImage(repo, image.imageId)).toMatchObject({ generation: 21, userData: { rival: 20 } });
  });
});
