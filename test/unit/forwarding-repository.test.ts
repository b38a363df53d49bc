/**
 * The SRM forwarding decorator (activities/srm/forwarding-repository.ts) over a fake format that
 * logs what it is asked: where a metadata change is made (here on the SRM, sent elsewhere), the
 * local part a host that is not the SRM still makes itself, and the SRM's compare-and-swap.
 */
import { describe, expect, it } from 'vitest';
import type { HostContext, MetadataCall, Repository, SrmVolumeParts, VolumeSpec } from '../../activities/repository/repository';
import { RecordConflict } from '../../activities/repository/repository';
import { withSrmForwarding } from '../../activities/srm/forwarding-repository';

const spec: VolumeSpec = { volumeId: 'v1', format: 'qcow2', size: 1 << 20, parent: null, preallocate: false };

function fakeFormat(log: string[], records = new Map<string, unknown>(), parts = true): Repository {
  const srmParts: SrmVolumeParts = {
    allocateVolume: async (s) => void log.push(`allocate ${s.volumeId}`),
    extendVolume: async (id, bytes) => void log.push(`extend ${id} ${bytes}`),
    forgetHalfMade: async (id) => void log.push(`forget ${id}`),
    formatVolume: async (s) => void log.push(`format ${s.volumeId}`),
    unmap: async (id) => void log.push(`unmap ${id}`),
    capacity: async () => 100,
    remap: async (id) => void log.push(`remap ${id}`),
  };
  const format = {
    header: { schema: 'diskflow.repository/1', format: 'clvm-1.0', uuid: 'u', createdAt: 't' },
    location: 'fake',
    async readRecord(kind: string, id: string) {
      return records.get(`${kind}/${id}`) ?? null;
    },
    async writeRecord(kind: string, id: string, value: unknown) {
      log.push(`write ${kind}/${id}`);
      records.set(`${kind}/${id}`, value);
    },
    async createRecord(kind: string, id: string) {
      log.push(`create ${kind}/${id}`);
      return true;
    },
    async removeVolume(id: string) {
      log.push(`remove ${id}`);
    },
    withRecordLock: <T>(_kind: string, _id: string, fn: () => Promise<T>) => fn(),
    whoAmI() {
      return this === format;
    },
    ...(parts ? { srmParts } : {}),
  };
  return format as unknown as Repository;
}

function host(isSrm: boolean, sent: MetadataCall[], answer: unknown = null): HostContext {
  return {
    hostId: 'h',
    home: '/nonexistent',
    homeId: 'id',
    srm: { holds: () => isSrm, assertHolding: async () => undefined },
    metadataOnSrm: { forward: (_uuid, call) => (sent.push(call), Promise.resolve(answer)) },
  };
}

describe('SRM forwarding decorator', () => {
  it('on a host that is not the SRM: sends the LV to the SRM, formats it here', async () => {
    const log: string[] = [];
    const sent: MetadataCall[] = [];
    await withSrmForwarding(fakeFormat(log), host(false, sent)).createVolume(spec);
    expect(sent).toEqual([{ method: 'allocateVolume', spec }]);
    expect(log).toEqual(['forget v1', 'format v1']);
  });

  it('on the SRM: makes the change itself, sends nothing', async () => {
    const log: string[] = [];
    const sent: MetadataCall[] = [];
    const repo = withSrmForwarding(fakeFormat(log), host(true, sent));
    await repo.createVolume(spec);
    await repo.ensureCapacity('v1', 200);
    expect(sent).toEqual([]);
    expect(log).toEqual(['forget v1', 'allocate v1', 'format v1', 'extend v1 200', 'remap v1']);
  });

  it('a sent image write the SRM refused (false) is a RecordConflict here', async () => {
    const repo = withSrmForwarding(fakeFormat([]), host(false, [], false));
    await expect(repo.writeRecord('image', 'i', { generation: 2 })).rejects.toBeInstanceOf(RecordConflict);
  });

  it('on the SRM, a sent image write is made only over the generation its writer read', async () => {
    const log: string[] = [];
    const records = new Map<string, unknown>([['image/i', { generation: 3 }]]);
    const repo = withSrmForwarding(fakeFormat(log, records), host(true, []));
    expect(await repo.applyMetadata!({ method: 'writeRecord', kind: 'image', id: 'i', value: { generation: 3 } })).toBe(false);
    expect(log).toEqual([]);
    expect(await repo.applyMetadata!({ method: 'writeRecord', kind: 'image', id: 'i', value: { generation: 4 } })).toBe(true);
    expect(records.get('image/i')).toEqual({ generation: 4 });
  });

  it('passes everything else to the format, which runs as itself; formats without an SRM are not wrapped', async () => {
    const format = fakeFormat([]);
    const repo = withSrmForwarding(format, host(false, [])) as unknown as { whoAmI(): boolean; location: string };
    expect(repo.whoAmI()).toBe(true);
    expect(repo.location).toBe('fake');
    const plain = fakeFormat([], new Map(), false);
    expect(withSrmForwarding(plain, host(false, []))).toBe(plain);
  });
});
