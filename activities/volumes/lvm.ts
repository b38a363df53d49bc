/**
 * The lvm(8) commands a clvm-1.0 repository uses, run with an isolated configuration: LVM only
 * ever sees the repository's own devices (a filter accepting exactly them), so diskflow never
 * reads or changes the host's own volume groups. Where the kernel has no device-mapper
 * (no device-mapper in /proc/misc) every command runs with `--driverloaded n`: LVM metadata
 * still works (create, extend, remove, tags, reports), activation does not (activation.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { DiskflowError } from '../../api/errors';
import { run } from '../process';

export interface LvInfo {
  name: string;
  size: number;
  tags: string[];
  /** Extent ranges on physical volumes, in order: the LV's bytes are their concatenation. */
  segments: { device: string; firstExtent: number; lastExtent: number }[];
}

export interface VgInfo {
  extentSize: number;
  freeBytes: number;
  tags: string[];
}

/**
 * Whether the kernel has device-mapper. `/dev/mapper/control` alone does not tell (installing
 * lvm2 creates the node even where the kernel lacks the driver): the driver registers itself
 * as a misc device.
 */
export function hasDeviceMapper(): boolean {
  if (!existsSync('/dev/mapper/control')) return false;
  try {
    return /\bdevice-mapper\b/.test(readFileSync('/proc/misc', 'utf8'));
  } catch {
    return false;
  }
}

/** Quotes a device path for an LVM filter regex (paths are absolute and validated by the API). */
function filterEntry(device: string): string {
  return `"a|^${device.replace(/[.+*?()[\]{}|^$\\]/g, '\\$&')}$|"`;
}

export class Lvm {
  private readonly config: string;
  private readonly global: string[];

  constructor(readonly devices: readonly string[], readonly vgName: string) {
    this.config = [
      `devices { filter=[${devices.map(filterEntry).join(',')},"r|.*|"] global_filter=[${devices.map(filterEntry).join(',')},"r|.*|"] obtain_device_list_from_udev=0 use_devicesfile=0 }`,
      'global { use_lvmetad=0 }',
      'activation { udev_sync=0 udev_rules=0 monitoring=0 }',
      // Keep a backup of every VG change out of the host's /etc/lvm (the repository is its own truth).
      'backup { backup=0 archive=0 }',
    ].join(' ');
    this.global = hasDeviceMapper() ? [] : ['--driverloaded', 'n'];
  }

  async run(command: string, args: string[], signal?: AbortSignal): Promise<string> {
    const { stdout } = await run('lvm', [command, ...this.global, '--config', this.config, ...args], {
      signal,
      env: { ...process.env, LC_ALL: 'C', LVM_SUPPRESS_FD_WARNINGS: '1' },
    });
    return stdout;
  }

  private async report<T>(command: 'lvs' | 'vgs' | 'pvs', fields: string, target: string[]): Promise<T[]> {
    const out = await this.run(command, ['--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', fields, ...target]);
    const parsed = JSON.parse(out) as { report: Record<string, T[]>[] };
    return parsed.report.flatMap((r) => Object.values(r).flat());
  }

  async pvcreate(devices: readonly string[]): Promise<void> {
    await this.run('pvcreate', ['--yes', ...devices]);
  }

  async vgcreate(extentSize: string, tags: string[]): Promise<void> {
    await this.run('vgcreate', ['-s', extentSize, ...tags.flatMap((t) => ['--addtag', t]), this.vgName, ...this.devices]);
  }

  async vgAddTags(tags: string[]): Promise<void> {
    await this.run('vgchange', [...tags.flatMap((t) => ['--addtag', t]), this.vgName]);
  }

  async vg(): Promise<VgInfo | null> {
    try {
      const [vg] = await this.report<{ vg_extent_size: string; vg_free: string; vg_tags: string }>('vgs', 'vg_extent_size,vg_free,vg_tags', [this.vgName]);
      if (!vg) return null;
      return { extentSize: Number(vg.vg_extent_size), freeBytes: Number(vg.vg_free), tags: splitTags(vg.vg_tags) };
    } catch (error) {
      if (error instanceof DiskflowError && /not found|No such/i.test(error.message)) return null;
      throw error;
    }
  }

  /** Where each physical volume's data area starts (bytes). */
  async peStarts(): Promise<Map<string, number>> {
    const rows = await this.report<{ pv_name: string; pe_start: string }>('pvs', 'pv_name,pe_start', [...this.devices]);
    return new Map(rows.map((r) => [r.pv_name, Number(r.pe_start)]));
  }

  async lvs(): Promise<LvInfo[]> {
    const rows = await this.report<{ lv_name: string; lv_size: string; lv_tags: string; seg_pe_ranges: string }>(
      'lvs',
      'lv_name,lv_size,lv_tags,seg_pe_ranges',
      [this.vgName],
    );
    // One row per segment: fold them into LVs.
    const byName = new Map<string, LvInfo>();
    for (const row of rows) {
      let lv = byName.get(row.lv_name);
      if (!lv) byName.set(row.lv_name, (lv = { name: row.lv_name, size: Number(row.lv_size), tags: splitTags(row.lv_tags), segments: [] }));
      for (const range of row.seg_pe_ranges.split(' ').filter(Boolean)) {
        const m = /^(.*):(\d+)-(\d+)$/.exec(range);
        if (m) lv.segments.push({ device: m[1], firstExtent: Number(m[2]), lastExtent: Number(m[3]) });
      }
    }
    return [...byName.values()];
  }

  async lv(name: string): Promise<LvInfo | null> {
    return (await this.lvs()).find((lv) => lv.name === name) ?? null;
  }

  /**
   * Creates an LV, never activated nor zeroed (activation is ours; zeroing needs activation).
   * Contiguous where no device-mapper can join segments: a loop device maps one extent range.
   */
  async lvcreate(name: string, bytes: number, tags: string[], signal?: AbortSignal): Promise<void> {
    const alloc = hasDeviceMapper() ? [] : ['--alloc', 'contiguous'];
    await this.run('lvcreate', ['-an', '-Zn', '--yes', ...alloc, '-L', `${bytes}b`, '-n', name, ...tags.flatMap((t) => ['--addtag', t]), this.vgName], signal);
  }

  async lvextend(name: string, bytes: number): Promise<void> {
    const alloc = hasDeviceMapper() ? [] : ['--alloc', 'contiguous'];
    await this.run('lvextend', [...alloc, '-L', `${bytes}b`, `${this.vgName}/${name}`]);
  }

  /**
   * Shrinks an LV (the caller has made sure nothing it holds lies beyond `bytes`). LVM from
   * 2.03.17 checks for a file system first unless told `--fs ignore`; older LVM knows no `--fs`.
   */
  async lvreduce(name: string, bytes: number): Promise<void> {
    const args = ['-f', '-L', `${bytes}b`, `${this.vgName}/${name}`];
    await this.run('lvreduce', ['--fs', 'ignore', ...args]).catch((error: Error) => {
      if (!/unrecognized option|unknown option/i.test(error.message)) throw error;
      return this.run('lvreduce', args);
    });
  }

  async lvrename(from: string, to: string): Promise<void> {
    await this.run('lvrename', [this.vgName, from, to]);
  }

  async lvremove(name: string): Promise<void> {
    await this.run('lvremove', ['-f', `${this.vgName}/${name}`]);
  }

  async vgremove(): Promise<void> {
    await this.run('vgremove', ['-f', this.vgName]);
  }

  async pvremove(): Promise<void> {
    await this.run('pvremove', ['-ff', '--yes', ...this.devices]);
  }
}

function splitTags(tags: string): string[] {
  return tags.split(',').filter(Boolean);
}
