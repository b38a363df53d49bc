/**
 * The SRM's metadata forwarding, whole (docs/SRM.md, "Who writes what"). A format that needs an
 * SRM (clvm-1.0) knows its storage only: it makes every change on this host and refuses one only
 * the SRM may make with SRM_REQUIRED. This decorator, put around it when it is connected
 * (activities/host/connections.ts), decides where a metadata change is made:
 *
 *   - this host holds the SRM lease, or the change cannot be sent (not inside a step, or a step
 *     from the SRM queue: metadata-forwarder.ts): the format makes it here, or refuses it;
 *   - otherwise the change goes to the SRM as one signed MetadataCall (metadata-forwarder.ts,
 *     workflows/srm-metadata-step.ts), and this host makes the local part around it itself
 *     (formatting a new volume, its own mapping of a volume: the format's srmParts).
 *
 * On the SRM, applyMetadata makes a change another host sent (after apply-metadata.ts checked it
 * came from diskflow). Each is idempotent, as the step that sent it is retried. An image record
 * from another host is a compare-and-swap on its generation, under the record lock the SRM's own
 * writers hold: the sender gets RecordConflict and updateImage reapplies its change.
 * Everything else (reads, activation, the chains lock, which only the SRM holds) passes through.
 */
import type { HostContext, MetadataCall, RecordKind, Repository, SrmVolumeParts, VolumeSpec } from '../repository/repository';
import { RecordConflict } from '../repository/repository';

type SrmRepository = Repository & { readonly srmParts: SrmVolumeParts };

/** What the decorator implements; a Proxy passes every other member to the format. */
const DECORATED = new Set<PropertyKey>(['createRecord', 'writeRecord', 'deleteRecord', 'createVolume', 'removeVolume', 'ensureCapacity', 'applyMetadata']);

/** A repository as this host uses it: with forwarding where its format needs an SRM. */
export function withSrmForwarding(repository: Repository, host: HostContext): Repository {
  if (!repository.srmParts) return repository;
  const own = new ForwardingRepository(repository as SrmRepository, host) as unknown as Record<PropertyKey, (...args: unknown[]) => unknown>;
  return new Proxy(repository, {
    get(target, name) {
      if (DECORATED.has(name)) return own[name].bind(own);
      const value = Reflect.get(target, name, target);
      // The format's own methods run on the format: its internal calls never come back here.
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** The methods that change metadata (DECORATED). */
class ForwardingRepository {
  constructor(
    private readonly inner: SrmRepository,
    private readonly host: HostContext,
  ) {}

  /** The SRM's answer to a change, or null when it is made here (see the top of this file). */
  private sent(call: MetadataCall): Promise<unknown> | null {
    const uuid = this.inner.header.uuid;
    if (this.host.srm?.holds(uuid)) return null;
    return this.host.metadataOnSrm?.forward(uuid, call) ?? null;
  }

  async createRecord(kind: RecordKind, id: string, value: unknown): Promise<boolean> {
    const sent = this.sent({ method: 'createRecord', kind, id, value });
    return sent ? ((await sent) as boolean) : this.inner.createRecord(kind, id, value);
  }

  async writeRecord(kind: RecordKind, id: string, value: unknown): Promise<void> {
    const sent = this.sent({ method: 'writeRecord', kind, id, value });
    if (!sent) return this.inner.writeRecord(kind, id, value);
    if ((await sent) === false) throw new RecordConflict(kind, id);
  }

  async deleteRecord(kind: RecordKind, id: string): Promise<void> {
    const sent = this.sent({ method: 'deleteRecord', kind, id });
    if (!sent) return this.inner.deleteRecord(kind, id);
    await sent;
  }

  async createVolume(spec: VolumeSpec, signal?: AbortSignal): Promise<void> {
    const parts = this.inner.srmParts;
    await parts.forgetHalfMade(spec.volumeId);
    const sent = this.sent({ method: 'allocateVolume', spec });
    if (sent) await sent;
    else await parts.allocateVolume(spec, signal);
    await parts.formatVolume(spec, signal);
  }

  async removeVolume(volumeId: string): Promise<void> {
    await this.inner.srmParts.unmap(volumeId);
    const sent = this.sent({ method: 'removeVolume', volumeId });
    if (sent) await sent;
    else await this.inner.removeVolume(volumeId);
  }

  async ensureCapacity(volumeId: string, bytes: number): Promise<void> {
    const parts = this.inner.srmParts;
    if ((await parts.capacity(volumeId)) >= bytes) return;
    const sent = this.sent({ method: 'extendVolume', volumeId, bytes });
    if (sent) await sent;
    else await parts.extendVolume(volumeId, bytes);
    await parts.remap(volumeId);
  }

  /** On the SRM: a change another host sent, made on the format itself (it checks the lease). */
  async applyMetadata(call: MetadataCall): Promise<unknown> {
    const inner = this.inner;
    switch (call.method) {
      case 'createRecord':
        return inner.createRecord(call.kind, call.id, call.value);
      case 'writeRecord':
        if (call.kind === 'image') return inner.withRecordLock('image', call.id, () => this.swapImage(call.id, call.value));
        await inner.writeRecord(call.kind, call.id, call.value);
        return true;
      case 'deleteRecord':
        await inner.deleteRecord(call.kind, call.id);
        return null;
      case 'allocateVolume':
        await inner.srmParts.allocateVolume(call.spec);
        return null;
      case 'removeVolume':
        await inner.removeVolume(call.volumeId);
        return null;
      case 'extendVolume':
        if ((await inner.srmParts.capacity(call.volumeId)) < call.bytes) await inner.srmParts.extendVolume(call.volumeId, call.bytes);
        return null;
    }
  }

  /**
   * An image record from another host, written only over the version its writer read (the SRM's
   * own writers hold the same record lock): false, nothing written, when it changed meanwhile.
   */
  private async swapImage(imageId: string, value: unknown): Promise<boolean> {
    const current = (await this.inner.readRecord('image', imageId)) as { generation?: number } | null;
    if (!current || current.generation !== (value as { generation: number }).generation - 1) return false;
    await this.inner.writeRecord('image', imageId, value);
    return true;
  }
}
