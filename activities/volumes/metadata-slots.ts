/**
 * Image and volume records of a clvm-1.0 repository, kept in its metadata LV as VDSM keeps
 * volume metadata: every record owns a pair of fixed-size slots. A new version is written, with
 * O_DIRECT|O_DSYNC, into the slot of the pair that does not hold the current version, with a
 * sequence number one higher and a checksum of its body; a reader takes the valid slot with the
 * higher sequence number. A write torn by a crash fails its checksum and the previous version
 * stays the record, so every record is replaced atomically. Deleting writes a `free` version.
 *
 *   slot = <header JSON line>\n<body JSON>  zero-padded to SLOT_SIZE
 *   header = { m: 'DFSLOT1', pair, seq, kind, id, len, sha256 }
 *
 * Only the SRM writes slots (the clvm repository checks its lease before every write); any
 * host reads them.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { DiskflowError } from '../../api/errors';
import { Uuid } from '../../api/values';
import { KeyedLock } from '../repository/keyed-lock';
import { readDirect, writeDirect } from './direct-io';

export const SLOT_SIZE = 128 * 1024;
const MAGIC = 'DFSLOT1';

type SlotKind = 'image' | 'volume' | 'free';

const SlotHeader = z.object({
  m: z.literal(MAGIC),
  pair: z.number().int().nonnegative(),
  seq: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  kind: z.enum(['image', 'volume', 'free']),
  id: Uuid,
  len: z.number().int().nonnegative().max(SLOT_SIZE),
  sha: z.string().regex(/^[0-9a-f]{64}$/),
});

interface Slot {
  pair: number;
  seq: number;
  kind: SlotKind;
  id: string;
  body: string;
}

/** The current version of one pair, and which of its two slots holds it. */
interface PairState {
  current: Slot | null;
  /** 0 or 1: the slot holding `current` (the next write goes to the other). */
  which: number;
}

export class MetadataSlots {
  private readonly lock = new KeyedLock();
  private index = new Map<string, number>();
  /** The sweep a failed lookup just made (under the write lock): allocation reuses it. */
  private lastScan: PairState[] | null = null;

  constructor(
    /** The block device the metadata LV lies on, and where the slot area starts on it. */
    private readonly device: string,
    private readonly offset: number,
    readonly pairs: number,
  ) {}

  private slotOffset(pair: number, which: number): number {
    return this.offset + (pair * 2 + which) * SLOT_SIZE;
  }

  private static parse(raw: Buffer, pair: number): Slot | null {
    const newline = raw.indexOf(0x0a);
    if (newline <= 0 || newline > 1024) return null;
    try {
      // A slot is storage like any other: a header that is not one diskflow writes is no slot.
      const parsed = SlotHeader.safeParse(JSON.parse(raw.subarray(0, newline).toString('utf8')));
      if (!parsed.success) return null;
      const header = parsed.data;
      if (header.pair !== pair || newline + 1 + header.len > raw.length) return null;
      const body = raw.subarray(newline + 1, newline + 1 + header.len);
      if (createHash('sha256').update(body).digest('hex') !== header.sha) return null;
      return { pair, seq: header.seq, kind: header.kind, id: header.id, body: body.toString('utf8') };
    } catch {
      return null;
    }
  }

  private static state(pair: number, a: Buffer, b: Buffer): PairState {
    const slots = [MetadataSlots.parse(a, pair), MetadataSlots.parse(b, pair)];
    if (!slots[0] && !slots[1]) return { current: null, which: 1 };
    const which = !slots[1] || (slots[0] && slots[0].seq > slots[1].seq) ? 0 : 1;
    return { current: slots[which], which };
  }

  private async readPair(pair: number): Promise<PairState> {
    const raw = await readDirect(this.device, this.slotOffset(pair, 0), 2 * SLOT_SIZE);
    return MetadataSlots.state(pair, raw.subarray(0, SLOT_SIZE), raw.subarray(SLOT_SIZE));
  }

  /** Every pair, read in one sweep of the area. */
  private async scan(): Promise<PairState[]> {
    const states: PairState[] = [];
    const chunkPairs = 64;
    for (let first = 0; first < this.pairs; first += chunkPairs) {
      const count = Math.min(chunkPairs, this.pairs - first);
      const raw = await readDirect(this.device, this.slotOffset(first, 0), count * 2 * SLOT_SIZE);
      for (let i = 0; i < count; i++) {
        const base = i * 2 * SLOT_SIZE;
        states.push(MetadataSlots.state(first + i, raw.subarray(base, base + SLOT_SIZE), raw.subarray(base + SLOT_SIZE, base + 2 * SLOT_SIZE)));
      }
    }
    this.index = new Map(states.filter((s) => s.current && s.current.kind !== 'free').map((s) => [`${s.current!.kind}/${s.current!.id}`, s.current!.pair]));
    return states;
  }

  /** The pair holding a record, verified on the device (the index is only a hint: another host may have moved it). */
  private async find(kind: 'image' | 'volume', id: string): Promise<PairState | null> {
    const key = `${kind}/${id}`;
    const hinted = this.index.get(key);
    if (hinted !== undefined) {
      const state = await this.readPair(hinted);
      if (state.current?.kind === kind && state.current.id === id) return state;
    }
    const states = await this.scan();
    this.lastScan = states;
    const pair = this.index.get(key);
    return pair === undefined ? null : states[pair];
  }

  async read(kind: 'image' | 'volume', id: string): Promise<string | null> {
    return (await this.find(kind, id))?.current?.body ?? null;
  }

  /** Every record of a kind, with the id its slot holds it under. */
  async list(kind: 'image' | 'volume'): Promise<{ id: string; body: string }[]> {
    return (await this.scan()).filter((s) => s.current?.kind === kind).map((s) => ({ id: s.current!.id, body: s.current!.body }));
  }

  /** Writes a record: `create` refuses (false) if it exists, `replace` creates or replaces it. */
  async write(kind: 'image' | 'volume', id: string, body: string, mode: 'create' | 'replace'): Promise<boolean> {
    if (!Uuid.safeParse(id).success) throw new DiskflowError('INVALID_ARGUMENT', `${kind} id ${JSON.stringify(id).slice(0, 80)} is not a diskflow id (a UUID)`);
    return this.lock.run('slots', async () => {
      this.lastScan = null;
      const existing = await this.find(kind, id);
      if (existing && mode === 'create') return false;
      const state: PairState & { pairHint?: number } = existing ?? (await this.allocate());
      await this.put(state, kind, id, body);
      this.index.set(`${kind}/${id}`, state.current?.pair ?? state.pairHint!);
      return true;
    });
  }

  async remove(kind: 'image' | 'volume', id: string): Promise<void> {
    await this.lock.run('slots', async () => {
      const existing = await this.find(kind, id);
      if (!existing) return;
      await this.put(existing, 'free', id, '');
      this.index.delete(`${kind}/${id}`);
    });
  }

  private async allocate(): Promise<PairState & { pairHint?: number }> {
    // Only the SRM writes, one write at a time: the sweep of the lookup that found nothing is current.
    const states = this.lastScan ?? (await this.scan());
    const free = states.findIndex((s) => !s.current || s.current.kind === 'free');
    if (free < 0) throw new DiskflowError('NO_SPACE', `the metadata area holds ${this.pairs} records and has no free slot`);
    return { ...states[free], pairHint: free };
  }

  private async put(state: PairState & { pairHint?: number }, kind: SlotKind, id: string, body: string): Promise<void> {
    const pair = state.current?.pair ?? state.pairHint!;
    const data = Buffer.from(body, 'utf8');
    const header = JSON.stringify({ m: MAGIC, pair, seq: (state.current?.seq ?? 0) + 1, kind, id, len: data.length, sha: createHash('sha256').update(data).digest('hex') });
    const slot = Buffer.alloc(SLOT_SIZE);
    const used = slot.write(header + '\n', 0, 'utf8');
    if (used + data.length > SLOT_SIZE) throw new DiskflowError('INVALID_ARGUMENT', `record ${kind} ${id} is too large for a metadata slot (${data.length} bytes)`);
    data.copy(slot, used);
    await writeDirect(this.device, this.slotOffset(pair, 1 - state.which), slot);
  }
}
