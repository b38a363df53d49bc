/**
 * `clvm-1.0`: an LVM volume group on block devices every host reaches (a SAN LUN). Only the
 * repository's SRM changes LVM metadata (lvcreate, lvextend, lvrename, lvremove) and records;
 * any host reads records and activates volumes. This module makes every change here, checking
 * the lease first (SRM_REQUIRED elsewhere); sending a change to the SRM from a host that is not
 * it is activities/srm/forwarding-repository.ts, around this one (its volume changes are split
 * for it: srmParts). Layout (docs/SRM.md, "clvm-1.0 on disk"):
 *
 *   VG tags            the header: diskflow.repository=1, diskflow.format=clvm-1.0,
 *                      diskflow.uuid=<uuid>, diskflow.created=<ISO time> (added last by init)
 *   LV diskflow_metadata   sector 0: the SRM lease; from 1 MiB: record slot pairs (metadata-slots.ts)
 *   LV <volumeId>      one volume (qcow2 or raw on the raw LV), tags diskflow.volume, diskflow.format=<f>
 *   LV _remove_me_<id> a volume being removed (renamed, then removed)
 */
import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { DiskflowError } from '../../../api/errors';
import { ClvmParams, FORMAT_TRAITS } from '../../../api/formats';
import { UUID_PATTERN } from '../../../api/values';
import { failpoint } from '../../failpoints';
import { run } from '../../process';
import { readQcow2Header } from '../../qemu/qcow2-header';
import * as qemuImg from '../../qemu/qemu-img';
import type { VolumeFormat } from '../../qemu/qemu-img';
import { Activation, LoopActivation, LvmActivation } from '../../volumes/activation';
import { readDirect, writeDirect } from '../../volumes/direct-io';
import { hasDeviceMapper, LvInfo, Lvm } from '../../volumes/lvm';
import { MetadataSlots, SLOT_SIZE } from '../../volumes/metadata-slots';
import { KeyedLock } from '../keyed-lock';
import { parseStoredJson, requireOwnId } from '../record-json';
import { parseHeader } from '../repository';
import { assertOpenable } from '../volume-check';
import type { HostContext, RecordKind, Repository, RepositoryDriver, RepositoryHeader, SrmVolumeParts, StoredVolume, VolumeSpec } from '../repository';

type Params = z.infer<typeof ClvmParams>;

const MiB = 1024 * 1024;
export const METADATA_LV = 'diskflow_metadata';
/** The lease sector sits at the start of the metadata LV; record slots start here. */
const SLOTS_OFFSET = MiB;
const REMOVE_ME = '_remove_me_';
const VOLUME_NAME = new RegExp(`^(_remove_me_)?(${UUID_PATTERN})$`);
const TAG = { repository: 'diskflow.repository=1', format: 'diskflow.format=clvm-1.0', volume: 'diskflow.volume' };

/** Tunables read at init and create time (tests use MiB-sized repositories). */
function sizing(env: NodeJS.ProcessEnv = process.env) {
  return {
    extentMiB: Number(env.DISKFLOW_CLVM_EXTENT_MB ?? 4),
    metadataMiB: Number(env.DISKFLOW_CLVM_METADATA_MB ?? 128),
    /** A thin qcow2 LV starts this big and grows (ensureCapacity) as a writer needs. */
    chunkBytes: Number(env.DISKFLOW_CLVM_CHUNK_MB ?? 1024) * MiB,
  };
}

/** What a qcow2 of `size` virtual bytes needs besides its data: header, L1/L2 and refcount tables. */
export function qcow2Overhead(size: number): number {
  return Math.ceil(size / 8192) * 2 + 2 * MiB;
}

const roundUp = (n: number, to: number) => Math.ceil(n / to) * to;

async function requireBlockDevice(device: string): Promise<void> {
  const info = await stat(device).catch(() => null);
  if (!info?.isBlockDevice()) throw new DiskflowError('INVALID_ARGUMENT', `connectionParameters.devices: ${device} is not a block device`);
}

async function requireEmpty(device: string): Promise<void> {
  // blkid exits 2 when it finds no signature (file system, LVM label, partition table).
  const probe = await run('blkid', ['-p', device], { okExitCodes: [2] }).catch((error: Error) => {
    throw new DiskflowError('INVALID_ARGUMENT', `connectionParameters.devices: ${device} cannot be probed: ${error.message}`);
  });
  if (probe.exitCode === 0) throw new DiskflowError('REPO_NOT_EMPTY', `${device} is not empty: ${probe.stdout.trim()}`);
  const head = await readDirect(device, 0, MiB);
  if (head.some((b) => b !== 0)) throw new DiskflowError('REPO_NOT_EMPTY', `${device} is not empty (its first MiB holds data)`);
}

function headerFromTags(tags: string[], vgName: string): RepositoryHeader | null {
  const value = (name: string) => tags.find((t) => t.startsWith(`diskflow.${name}=`))?.slice(name.length + 10);
  if (!tags.includes(TAG.repository)) return null;
  const format = value('format');
  if (format !== 'clvm-1.0') {
    throw new DiskflowError('INVALID_ARGUMENT', `repoFormat: volume group ${vgName} holds a ${format ?? 'unknown'} repository, not clvm-1.0`);
  }
  // Tags are storage like any other: the uuid names directories under DISKFLOW_HOME, so it is checked.
  return parseHeader({ schema: 'diskflow.repository/1', format: 'clvm-1.0', uuid: value('uuid'), createdAt: value('created') }, `volume group ${vgName}`);
}

/** Where an LV's first byte lies on its physical volume (the LV must be one extent range). */
async function lvOffset(lvm: Lvm, lv: LvInfo): Promise<{ device: string; offset: number }> {
  const [vg, peStarts] = await Promise.all([lvm.vg(), lvm.peStarts()]);
  const [segment] = lv.segments;
  return { device: segment.device, offset: peStarts.get(segment.device)! + segment.firstExtent * vg!.extentSize };
}

async function zero(device: string, offset: number, bytes: number): Promise<void> {
  const chunk = Buffer.alloc(Math.min(bytes, 4 * MiB));
  for (let at = 0; at < bytes; at += chunk.length) await writeDirect(device, offset + at, chunk.subarray(0, Math.min(chunk.length, bytes - at)));
}

export const clvm: RepositoryDriver<Params> = {
  format: 'clvm-1.0',

  async init({ devices, vgName }): Promise<RepositoryHeader> {
    for (const device of devices) await requireBlockDevice(device);
    for (const device of devices) await requireEmpty(device);
    const lvm = new Lvm(devices, vgName);
    if (await lvm.vg()) throw new DiskflowError('REPO_NOT_EMPTY', `volume group ${vgName} already exists`);
    const { extentMiB, metadataMiB } = sizing();
    await lvm.pvcreate(devices);
    await lvm.vgcreate(`${extentMiB}m`, []);
    await lvm.lvcreate(METADATA_LV, metadataMiB * MiB, []);
    const meta = (await lvm.lv(METADATA_LV))!;
    const { device, offset } = await lvOffset(lvm, meta);
    // Stale slots of an earlier life of these disks must not read as records.
    await zero(device, offset, meta.size);
    const header: RepositoryHeader = { schema: 'diskflow.repository/1', format: 'clvm-1.0', uuid: randomUUID(), createdAt: new Date().toISOString() };
    // The header goes last: a VG without it is not a repository.
    await lvm.vgAddTags([TAG.format, `diskflow.uuid=${header.uuid}`, `diskflow.created=${header.createdAt}`, TAG.repository]);
    return header;
  },

  async connect({ devices, vgName }, host): Promise<Repository> {
    for (const device of devices) await requireBlockDevice(device);
    const lvm = new Lvm(devices, vgName);
    const vg = await lvm.vg();
    if (!vg) throw new DiskflowError('INVALID_ARGUMENT', `connectionParameters: no volume group ${vgName} on ${devices.join(', ')}; run initStorageRepository first`);
    const header = headerFromTags(vg.tags, vgName);
    if (!header) throw new DiskflowError('INVALID_ARGUMENT', `connectionParameters.vgName: volume group ${vgName} is not a diskflow repository (no header tags)`);
    const meta = await lvm.lv(METADATA_LV);
    if (!meta) throw new DiskflowError('STORAGE_ERROR', `volume group ${vgName} has no ${METADATA_LV} LV`);
    const { device, offset } = await lvOffset(lvm, meta);
    return new ClvmRepository(header, lvm, host, { device, offset }, Math.floor((meta.size - SLOTS_OFFSET) / (2 * SLOT_SIZE)), vg.extentSize);
  },
};

export class ClvmRepository implements Repository {
  readonly traits = FORMAT_TRAITS['clvm-1.0'];
  readonly directIo = true;
  readonly location: string;
  readonly srmLease: { device: string; offset: number };
  private readonly slots: MetadataSlots;
  private readonly activation: Activation;
  private readonly locks = new KeyedLock();

  constructor(
    readonly header: RepositoryHeader,
    private readonly lvm: Lvm,
    private readonly host: HostContext,
    metadata: { device: string; offset: number },
    pairs: number,
    private readonly extentSize: number,
  ) {
    this.location = `clvm:${lvm.vgName} on ${lvm.devices.join(',')}`;
    this.srmLease = metadata;
    this.slots = new MetadataSlots(metadata.device, metadata.offset + SLOTS_OFFSET, pairs);
    const dir = join(host.home, 'clvm', header.uuid);
    this.activation = hasDeviceMapper()
      ? new LvmActivation(lvm, dir)
      : new LoopActivation(lvm, dir, async () => ({ peStarts: await lvm.peStarts(), extentSize }));
  }

  /** Every metadata change: only while this host holds the SRM lease. */
  private async asSrm(what: string): Promise<void> {
    if (!this.host.srm) throw new DiskflowError('SRM_REQUIRED', `${what}: host ${this.host.hostId} is not the SRM of ${this.location}`);
    await this.host.srm.assertHolding(this.header.uuid, what);
  }

  async readRecord(kind: RecordKind, id: string): Promise<unknown | null> {
    const body = await this.slots.read(kind, id);
    const what = `${kind} record ${id} in ${this.location}`;
    return body === null ? null : requireOwnId(kind, id, parseStoredJson(body, what), what);
  }

  async listRecords<T>(kind: RecordKind, parse: (raw: unknown) => T): Promise<T[]> {
    return (await this.slots.list(kind)).map(({ id, body }) => {
      const what = `${kind} record ${id} in ${this.location}`;
      return parse(requireOwnId(kind, id, parseStoredJson(body, what), what));
    });
  }

  async createRecord(kind: RecordKind, id: string, value: unknown): Promise<boolean> {
    await this.asSrm(`creating ${kind} record ${id}`);
    return this.slots.write(kind, id, JSON.stringify(value), 'create');
  }

  async writeRecord(kind: RecordKind, id: string, value: unknown): Promise<void> {
    await this.asSrm(`writing ${kind} record ${id}`);
    await this.slots.write(kind, id, JSON.stringify(value), 'replace');
  }

  async deleteRecord(kind: RecordKind, id: string): Promise<void> {
    await this.asSrm(`deleting ${kind} record ${id}`);
    await this.slots.remove(kind, id);
  }

  withRecordLock<T>(kind: RecordKind, id: string, fn: () => Promise<T>): Promise<T> {
    // Only the SRM writes records, and it is one process: a lock in memory serialises its writers.
    // Other hosts' image writes are compare-and-swaps there (srm/forwarding-repository.ts), checked under this lock.
    return this.locks.run(`${kind}/${id}`, fn);
  }

  async withChainsLock<T>(fn: () => Promise<T>): Promise<T> {
    // Only the SRM decides what is garbage and adds references: its lock is the only one there is.
    await this.asSrm('holding the chains lock');
    return this.locks.run('chains', fn);
  }

  private async requireLv(volumeId: string): Promise<LvInfo> {
    const lv = await this.lvm.lv(volumeId);
    if (!lv) throw new DiskflowError('STORAGE_ERROR', `volume ${volumeId} has no logical volume in ${this.location}`);
    return lv;
  }

  async createVolume(spec: VolumeSpec, signal?: AbortSignal): Promise<void> {
    await this.srmParts.forgetHalfMade(spec.volumeId);
    await this.srmParts.allocateVolume(spec, signal);
    await this.srmParts.formatVolume(spec, signal);
  }

  /** createVolume, removeVolume and ensureCapacity in their SRM and local parts (repository.ts). */
  readonly srmParts: SrmVolumeParts = {
    forgetHalfMade: async (volumeId) => {
      // A half-made LV of the same id is replaced: this host's mapping of it goes first.
      if (await this.lvm.lv(volumeId)) await this.activation.deactivate(volumeId);
    },
    allocateVolume: (spec, signal) => this.allocateVolume(spec, signal),
    formatVolume: (spec, signal) => this.formatVolume(spec, signal),
    unmap: (volumeId) => this.activation.deactivate(volumeId),
    extendVolume: (volumeId, bytes) => this.extend(volumeId, bytes),
    capacity: async (volumeId) => (await this.requireLv(volumeId)).size,
    remap: async (volumeId) => {
      // The writer reopens the volume by its link: point it at the grown extent range.
      await this.activation.activate(await this.requireLv(volumeId));
    },
  };

  /** Formatting writes data: done by the host that creates the volume, SRM or not. */
  private async formatVolume(spec: VolumeSpec, signal?: AbortSignal): Promise<void> {
    const path = await this.activation.activate(await this.requireLv(spec.volumeId));
    if (spec.format === 'raw') {
      // A raw LV holds whatever the disk held before: a blank one must read as zeros.
      await run('dd', ['if=/dev/zero', `of=${path}`, 'bs=1M', `count=${Math.ceil(spec.size / MiB)}`, 'oflag=direct', 'iflag=fullblock', 'status=none'], { signal, okExitCodes: [1] });
      return;
    }
    await qemuImg.create(
      path,
      {
        format: 'qcow2',
        size: spec.size,
        backing: spec.parent ? { file: this.backingReference(spec.parent.volumeId), format: spec.parent.format } : undefined,
      },
      { signal },
    );
  }

  /** The LV of a new volume (the SRM's part of createVolume). */
  private async allocateVolume(spec: VolumeSpec, signal?: AbortSignal): Promise<void> {
    await this.asSrm(`creating volume ${spec.volumeId}`);
    if (await this.lvm.lv(spec.volumeId)) {
      await this.activation.deactivate(spec.volumeId);
      await this.lvm.lvremove(spec.volumeId);
    }
    const full = spec.format === 'raw' ? spec.size : spec.size + qcow2Overhead(spec.size);
    const initial = spec.format === 'qcow2' && !spec.preallocate ? Math.min(full, sizing().chunkBytes) : full;
    await this.asSrm(`creating volume ${spec.volumeId}`);
    await this.lvm.lvcreate(spec.volumeId, roundUp(initial, this.extentSize), [TAG.volume, `diskflow.format=${spec.format}`], signal);
    failpoint('clvm.volume-allocated');
  }

  readsAsZero(format: VolumeFormat): boolean {
    // A fresh qcow2 does; a raw LV is only what was last written to its extents.
    return format === 'qcow2';
  }

  async removeVolume(volumeId: string): Promise<void> {
    await this.srmParts.unmap(volumeId);
    const names = new Set((await this.lvm.lvs()).map((lv) => lv.name));
    if (names.has(volumeId)) {
      await this.asSrm(`removing volume ${volumeId}`);
      // Phase 1: renamed, so it can no longer be activated under its name.
      await this.lvm.lvrename(volumeId, `${REMOVE_ME}${volumeId}`);
    }
    if (names.has(volumeId) || names.has(`${REMOVE_ME}${volumeId}`)) {
      await this.asSrm(`removing volume ${volumeId}`);
      await this.lvm.lvremove(`${REMOVE_ME}${volumeId}`);
    }
  }

  async listVolumes(): Promise<StoredVolume[]> {
    return (await this.lvm.lvs())
      .filter((lv) => lv.tags.includes(TAG.volume) && VOLUME_NAME.test(lv.name))
      .map((lv) => ({ volumeId: VOLUME_NAME.exec(lv.name)![2], allocatedBytes: lv.size }));
  }

  async listStrayFiles(): Promise<{ name: string; ageMs: number; bytes: number }[]> {
    // Records are written in place (slot pairs): no temporary objects are ever left behind.
    return [];
  }

  async removeStrayFile(name: string): Promise<void> {
    throw new DiskflowError('INVALID_ARGUMENT', `${name}: a clvm repository has no stray files`);
  }

  backingReference(volumeId: string): string {
    // Resolved in the activation directory, where every activated volume is a link named by its id.
    return volumeId;
  }

  async ensureCapacity(volumeId: string, bytes: number): Promise<void> {
    if ((await this.srmParts.capacity(volumeId)) >= bytes) return;
    await this.srmParts.extendVolume(volumeId, bytes);
    await this.srmParts.remap(volumeId);
  }

  private async extend(volumeId: string, bytes: number): Promise<void> {
    await this.asSrm(`extending volume ${volumeId}`);
    await this.lvm.lvextend(volumeId, roundUp(bytes, this.extentSize)).catch((error: Error) => {
      if (!/Insufficient/i.test(error.message)) throw error;
      throw new DiskflowError('NO_SPACE', `volume ${volumeId} cannot grow to ${bytes} bytes in ${this.location}${hasDeviceMapper() ? '' : ' (without device-mapper an LV grows only into the free extents right after it)'}: ${error.message}`);
    });
  }

  /**
   * A thin qcow2 LV grows to hold its whole disk before a VM gets it: diskflow does not watch a
   * running VM's writes (VDSM's watermark monitoring), so the VM must never need more. Done by
   * the SRM before the preparing host activates it, so that host's mapping covers it all.
   */
  async growForVm(volumeId: string, virtualSize: number): Promise<boolean> {
    const lv = await this.requireLv(volumeId);
    // A raw LV is its disk, full size from the start.
    if (!lv.tags.includes('diskflow.format=qcow2')) return true;
    const full = roundUp(virtualSize + qcow2Overhead(virtualSize), this.extentSize);
    if (lv.size >= full) return true;
    try {
      await this.extend(volumeId, full);
    } catch (error) {
      // Without device-mapper an LV grows only into the extents right after it. Where the VG
      // has the room elsewhere, the VM gets the LV as it is (as before: it may fill it); only a
      // VG that cannot hold the disk at all refuses the prepare.
      if (!(error instanceof DiskflowError && error.code === 'NO_SPACE') || hasDeviceMapper()) throw error;
      if (((await this.lvm.vg())?.freeBytes ?? 0) < full - lv.size) throw error;
      return false;
    }
    // Active here already (the SRM's own VM, or a reader): its mapping must cover the grown LV.
    if ((await this.activation.active()).includes(volumeId)) await this.activation.activate(await this.requireLv(volumeId));
    return true;
  }

  /**
   * Back to what the qcow2 uses (its image-end-offset) plus the chunk a thin LV keeps ahead,
   * as VDSM reduces a volume after use. Skipped where its check finds errors. The caller makes
   * sure no VM has it; the SRM itself may still have it activated (it activates what it
   * creates or copies into): that mapping is remade at the new size.
   */
  async shrinkAfterVm(volumeId: string): Promise<void> {
    const lv = await this.requireLv(volumeId);
    if (!lv.tags.includes('diskflow.format=qcow2')) return;
    await this.asSrm(`shrinking volume ${volumeId}`);
    const wasActive = (await this.activation.active()).includes(volumeId);
    const path = await this.activation.activate(lv);
    try {
      // qemu-img reads the header (and could follow an external data file it names): checked first.
      await assertOpenable(this, volumeId, 'qcow2', () => readQcow2Header((bytes) => readDirect(path, 0, bytes)));
      const result = await qemuImg.checkDeviceAlone(path);
      const end = result['image-end-offset'];
      if (!end || result['check-errors'] || result.corruptions) return;
      const target = roundUp(end + sizing().chunkBytes, this.extentSize);
      if (target >= lv.size) return;
      await this.asSrm(`shrinking volume ${volumeId}`);
      await this.lvm.lvreduce(volumeId, target);
      if (wasActive) await this.activation.activate(await this.requireLv(volumeId));
    } finally {
      if (!wasActive) await this.activation.deactivate(volumeId);
    }
  }

  /** The path qemu opens, once the volume is known to be what its records say (volume-check.ts). */
  async activate(volumeId: string, format: VolumeFormat): Promise<string> {
    const path = await this.activation.activate(await this.requireLv(volumeId));
    try {
      await assertOpenable(this, volumeId, format, () => readQcow2Header((bytes) => readDirect(path, 0, bytes)));
    } catch (error) {
      await this.activation.deactivate(volumeId).catch(() => undefined);
      throw error;
    }
    return path;
  }

  /**
   * Deactivates a volume unless another volume activated on this host is built on it (two
   * prepared disks from one snapshot share its volume: tearing one down keeps the base).
   */
  async deactivate(volumeId: string): Promise<void> {
    const others = (await this.activation.active()).filter((name) => name !== volumeId);
    if (others.length) {
      const parents = new Map(
        await this.listRecords('volume', (r) => [(r as { volumeId: string }).volumeId, (r as { parentId: string | null }).parentId] as const),
      );
      for (const other of others) {
        // Bounded: a corrupt record naming a cycle must not hang the step.
        let at = parents.get(other);
        for (let depth = 0; at && depth < 1000; depth++, at = parents.get(at)) if (at === volumeId) return;
      }
    }
    await this.activation.deactivate(volumeId);
  }

  async freeBytes(): Promise<number> {
    return (await this.lvm.vg())?.freeBytes ?? 0;
  }

  async disconnect(): Promise<void> {
    await this.activation.deactivateAll();
  }
}
