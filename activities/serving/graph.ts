/**
 * The block graph of a served image, in its qemu-storage-daemon: one named node per volume of
 * the chain (explicit backing links, so every live job names the volumes it works on), and one
 * export (`disk`) on the top node. The graph is read back from the daemon (its nodes and their
 * `backing` edges) whenever a live step must know where it stands: after a crash, the daemon is
 * the truth about which volume the VM writes.
 */
import { stat } from 'node:fs/promises';
import { DiskflowError } from '../../api/errors';
import type { ServeMode } from '../../api/values';
import type { Qmp } from '../qemu/qmp';
import type { VolumeFormat } from '../qemu/qemu-img';
import { EXPORT_ID } from './daemon';

export interface GraphVolume {
  volumeId: string;
  format: VolumeFormat;
  path: string;
}

/** A volume's node name: qemu allows 31 characters, so the id's first 30 hex digits. */
export const nodeName = (volumeId: string): string => `v${volumeId.replace(/-/g, '').slice(0, 30)}`;

const protocolOf = async (path: string): Promise<'file' | 'host_device'> => ((await stat(path)).isBlockDevice() ? 'host_device' : 'file');

/** blockdev-add arguments for one volume, its backing the node below it (or none). */
export async function volumeNode(volume: GraphVolume, backing: string | null, options: { directIo: boolean; readOnly: boolean }): Promise<Record<string, unknown>> {
  const node: Record<string, unknown> = {
    driver: volume.format,
    'node-name': nodeName(volume.volumeId),
    'read-only': options.readOnly,
    cache: { direct: options.directIo },
    // A VM's discards free clusters of its qcow2.
    discard: 'unmap',
    file: { driver: await protocolOf(volume.path), filename: volume.path },
  };
  if (volume.format === 'qcow2') node.backing = backing;
  return node;
}

/** Opens `chain` (top first) in the daemon: base first, each overlay on the node below it. */
export async function addChain(qmp: Qmp, chain: GraphVolume[], options: { directIo: boolean; writable: boolean }): Promise<void> {
  let below: string | null = null;
  for (const [i, volume] of [...chain].reverse().entries()) {
    const top = i === chain.length - 1;
    await qmp.execute('blockdev-add', await volumeNode(volume, below, { directIo: options.directIo, readOnly: !(top && options.writable) }));
    below = nodeName(volume.volumeId);
  }
}

/** Exports `node` for a VM as `mode`. */
export async function addExport(qmp: Qmp, node: string, mode: ServeMode, address: string, exportName: string, writable: boolean): Promise<void> {
  const common = { id: EXPORT_ID, 'node-name': node, writable };
  if (mode === 'nbd') await qmp.execute('block-export-add', { type: 'nbd', ...common, name: exportName });
  else if (mode === 'vhost-user-blk') await qmp.execute('block-export-add', { type: 'vhost-user-blk', ...common, addr: { type: 'unix', path: address } });
  else await qmp.execute('block-export-add', { type: 'fuse', ...common, mountpoint: address, growable: false });
}

interface BlockGraph {
  nodes: { id: number; type: string; name: string }[];
  edges: { parent: number; child: number; name: string }[];
}

/** The node names of the chain the export serves, top first, as the daemon has it now. */
export async function servedChain(qmp: Qmp): Promise<string[]> {
  const exports = await qmp.execute<{ id: string; 'node-name': string }[]>('query-block-exports');
  const served = exports.find((e) => e.id === EXPORT_ID);
  if (!served) throw new DiskflowError('STORAGE_ERROR', 'the daemon has no export: it serves nothing');
  const graph = await qmp.execute<BlockGraph>('x-debug-query-block-graph');
  const byName = new Map(graph.nodes.map((n) => [n.name, n.id]));
  const byId = new Map(graph.nodes.map((n) => [n.id, n.name]));
  const chain: string[] = [];
  for (let id = byName.get(served['node-name']); id !== undefined && chain.length < 1000; ) {
    chain.push(byId.get(id)!);
    id = graph.edges.find((e) => e.parent === id && e.name === 'backing')?.child;
  }
  return chain;
}

/** The node the export serves (the volume the VM writes). */
export async function servedTop(qmp: Qmp): Promise<string> {
  const [top] = await servedChain(qmp);
  return top;
}

/** Named nodes that exist in the daemon. */
export async function namedNodes(qmp: Qmp): Promise<Set<string>> {
  const nodes = await qmp.execute<{ 'node-name': string }[]>('query-named-block-nodes', { flat: true });
  return new Set(nodes.map((n) => n['node-name']));
}

/** Removes nodes of volumes the export no longer serves (left after a pivot), top first. */
export async function dropUnserved(qmp: Qmp, volumeIds: string[]): Promise<void> {
  const chain = new Set(await servedChain(qmp));
  const present = await namedNodes(qmp);
  for (const volumeId of volumeIds) {
    const node = nodeName(volumeId);
    if (present.has(node) && !chain.has(node)) await qmp.execute('blockdev-del', { 'node-name': node });
  }
}
