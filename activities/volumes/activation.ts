/**
 * Making a logical volume usable on this host, behind one small interface with two
 * implementations:
 *
 * - `LvmActivation`, where the kernel has device-mapper: `lvchange -ay` / `-an`.
 * - `LoopActivation`, where it has none (these test machines): a loop device over the LV's
 *   extent range on its physical volume (offset = pe_start + first extent x extent size, size =
 *   the LV's size). It maps one extent range, so such LVs are allocated contiguously (lvm.ts).
 *
 * Either way the volume appears as `<dir>/<volumeId>`, a symlink to its device, so the names a
 * qcow2 overlay records for its backing volume (its bare id) resolve in that directory. The
 * symlinks are also the record of what this host activated: deactivate, disconnect and a
 * restarted worker find the loop devices to detach there.
 */
import { mkdir, readdir, readlink, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../process';
import { KeyedLock } from '../repository/keyed-lock';
import type { LvInfo, Lvm } from './lvm';

export interface Activation {
  /** Activates `lv` and returns the path qemu opens: `<dir>/<lv.name>`. */
  activate(lv: LvInfo): Promise<string>;
  /** Deactivates a volume this host activated; nothing if it did not. */
  deactivate(name: string): Promise<void>;
  /** Deactivates everything this host activated in this repository. */
  deactivateAll(): Promise<void>;
  /** The volumes this host has activated in this repository. */
  active(): Promise<string[]>;
}

async function linkAtomically(dir: string, name: string, target: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, name);
  const tmp = join(dir, `.${name}.${process.pid}.tmp`);
  await rm(tmp, { force: true });
  await symlink(target, tmp);
  await rename(tmp, path);
  return path;
}

async function linkTarget(path: string): Promise<string | null> {
  try {
    return await readlink(path);
  } catch {
    return null;
  }
}

async function links(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((n) => !n.startsWith('.'));
  } catch {
    return [];
  }
}

export class LvmActivation implements Activation {
  constructor(
    private readonly lvm: Lvm,
    private readonly dir: string,
  ) {}

  async activate(lv: LvInfo): Promise<string> {
    await this.lvm.run('lvchange', ['-ay', `${this.lvm.vgName}/${lv.name}`]);
    return linkAtomically(this.dir, lv.name, `/dev/${this.lvm.vgName}/${lv.name}`);
  }

  async deactivate(name: string): Promise<void> {
    if ((await linkTarget(join(this.dir, name))) === null) return;
    await this.lvm.run('lvchange', ['-an', `${this.lvm.vgName}/${name}`]).catch(() => undefined);
    await rm(join(this.dir, name), { force: true });
  }

  async deactivateAll(): Promise<void> {
    for (const name of await links(this.dir)) await this.deactivate(name);
  }

  active(): Promise<string[]> {
    return links(this.dir);
  }
}

interface LoopFacts {
  name: string;
  offset: number;
  sizelimit: number;
  'back-file': string;
}

async function loopFacts(device: string): Promise<LoopFacts | null> {
  try {
    const { stdout } = await run('losetup', ['-J', '-l', '-O', 'NAME,OFFSET,SIZELIMIT,BACK-FILE', device]);
    return (JSON.parse(stdout) as { loopdevices: LoopFacts[] }).loopdevices[0] ?? null;
  } catch {
    return null;
  }
}

export class LoopActivation implements Activation {
  /** Steps of this host activating the same volume at once must not attach two loop devices. */
  private readonly locks = new KeyedLock();

  constructor(
    private readonly lvm: Lvm,
    private readonly dir: string,
    /** Where each PV's data area starts, and the VG's extent size. */
    private readonly geometry: () => Promise<{ peStarts: Map<string, number>; extentSize: number }>,
  ) {}

  activate(lv: LvInfo): Promise<string> {
    return this.locks.run(lv.name, () => this.attach(lv));
  }

  private async attach(lv: LvInfo): Promise<string> {
    if (lv.segments.length !== 1) {
      throw new Error(`LV ${lv.name} has ${lv.segments.length} segments; without device-mapper only contiguous LVs can be activated`);
    }
    const { peStarts, extentSize } = await this.geometry();
    const [segment] = lv.segments;
    const peStart = peStarts.get(segment.device);
    if (peStart === undefined) throw new Error(`LV ${lv.name} lies on ${segment.device}, which is not a device of this repository`);
    const offset = peStart + segment.firstExtent * extentSize;
    const path = join(this.dir, lv.name);
    const current = await linkTarget(path);
    if (current) {
      const facts = await loopFacts(current);
      // Still the same mapping (this or an earlier incarnation of this worker made it): reuse it.
      if (facts && facts['back-file'] === segment.device && facts.offset === offset && facts.sizelimit === lv.size) return path;
    }
    const { stdout } = await run('losetup', ['-f', '--show', '--offset', String(offset), '--sizelimit', String(lv.size), segment.device]);
    await linkAtomically(this.dir, lv.name, stdout.trim());
    // The mapping replaced (the LV grew or moved): the old device is detached once its users close it.
    if (current) await this.detach(current, segment.device);
    return path;
  }

  private async detach(device: string, backing?: string): Promise<void> {
    const facts = await loopFacts(device);
    // A loop device reused since for something else is not ours to detach.
    if (!facts || (backing && facts['back-file'] !== backing) || !this.lvm.devices.includes(facts['back-file'])) return;
    await run('losetup', ['-d', device]).catch(() => undefined);
  }

  deactivate(name: string): Promise<void> {
    return this.locks.run(name, async () => {
      const path = join(this.dir, name);
      const target = await linkTarget(path);
      if (target === null) return;
      await this.detach(target);
      await rm(path, { force: true });
    });
  }

  async deactivateAll(): Promise<void> {
    for (const name of await links(this.dir)) await this.deactivate(name);
  }

  active(): Promise<string[]> {
    return links(this.dir);
  }
}
