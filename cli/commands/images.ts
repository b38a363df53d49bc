/** `diskflow disk ...` and `diskflow image ...`: virtual disks and images. */
import { Command, Option } from 'commander';
import type { ServeMode } from '../../api/values';
import { parseSize } from '../parse';
import { printImageList, printImageStatus } from '../output';
import { withClient } from '../run';
import { watchImage, watchOperation } from '../watch';
import { resolve } from 'node:path';
import { formatBytes } from '../output';
import { callOptions, ImageFlags, userDataOf, withImageFlags } from './image-options';

const say = (text: string) => process.stdout.write(`${text}\n`);

export function diskCommand(): Command {
  const disk = new Command('disk').description('virtual disks (mutable images)');
  withImageFlags(
    disk
      .command('create <repoId> <size>')
      .description('create a virtual disk (size: bytes, or 10G, 512M, ...); prints its id once persisted')
      .option('--from <snapshotId>', 'base the disk on this snapshot')
      // So that a negative size such as -5G reaches validation instead of reading as an option.
      .allowUnknownOption(),
    { strategy: true, lookup: true, userData: true },
  ).action(
    withClient(
      async (client, repoId: string, size: string, o: ImageFlags & { from?: string }) =>
        client.createVirtualDisk(repoId, parseSize(size), o.from ?? null, userDataOf(o), callOptions(o)),
      (imageId) => say(imageId),
    ),
  );
  withImageFlags(
    disk
      .command('resize <repoId> <diskId> <size>')
      .description('grow a virtual disk to <size> (bytes, or 20G, ...); only grows. A disk served live as vhost-user-blk or fuse grows under its VM')
      .allowUnknownOption(),
  ).action(
    withClient(
      async (client, repoId: string, diskId: string, size: string, o: ImageFlags) => {
        await client.resizeVirtualDisk(repoId, diskId, parseSize(size), callOptions(o));
        return null;
      },
      (_r, _repoId, diskId, size) => say(`resized ${diskId} to ${size}`),
    ),
  );
  return disk;
}

export function snapshotCommand(): Command {
  const snapshot = new Command('snapshot').description('snapshots (immutable images)');
  withImageFlags(snapshot.command('create <repoId> <diskId>').description('freeze a virtual disk\'s content as a new snapshot; prints its id'), {
    userData: true,
  }).action(
    withClient(
      (client, repoId: string, diskId: string, o: ImageFlags) => client.createSnapshot(repoId, diskId, userDataOf(o), callOptions(o)),
      (imageId) => say(imageId),
    ),
  );
  return snapshot;
}

export function imageCommand(): Command {
  const image = new Command('image').description('images: status, listing, copies, removal, use by VMs');

  withImageFlags(
    image
      .command('copy <targetRepoId> <imageId>')
      .description('copy an image into a repository; prints the new image\'s id once persisted (a snapshot keeps its id)')
      .option('--base <imageId>', 'store only what differs from this snapshot, already in the target')
      .addOption(new Option('--kind <kind>', 'the new image\'s kind').choices(['snapshot', 'virtual-disk']))
      .option('--bandwidth <rate>', 'bytes per second the copy may move (e.g. 50M), to spare the storage and a running VM', (v) => parseSize(v, '--bandwidth')),
    { strategy: true, lookup: true, userData: true },
  ).action(
    withClient(
      (client, target: string, imageId: string, o: ImageFlags & { base?: string; kind?: string; bandwidth?: number }) =>
        client.copyImage(target, imageId, o.base ?? null, userDataOf(o), {
          ...callOptions(o),
          ...(o.kind ? { kind: o.kind } : {}),
          ...(o.bandwidth !== undefined ? { bandwidth: o.bandwidth } : {}),
        }),
      (newId) => say(newId),
    ),
  );

  const sourceOf = (source: string) => (/^https?:\/\//i.test(source) ? source : resolve(source));
  withImageFlags(
    image
      .command('import <repoId> <source>')
      .description('import a file (on this host) or an http(s) URL answering byte ranges as a new image; draws progress, then prints its id')
      .addOption(new Option('--format <format>', 'the source\'s format (auto: read its header)').choices(['auto', 'raw', 'qcow2', 'vmdk', 'vhdx', 'vdi']))
      .addOption(new Option('--kind <kind>', 'the new image\'s kind').choices(['virtual-disk', 'snapshot']))
      .option('--sha256 <hex>', 'verify the source\'s SHA-256 before the image becomes usable')
      .option('--no-watch', 'print the id once persisted, without waiting for the data'),
    { strategy: true, userData: true },
  ).action(
    withClient(
      async (client, repoId: string, source: string, o: ImageFlags & { format?: string; kind?: string; sha256?: string; watch: boolean }) => {
        const options = { ...callOptions(o), ...(o.format ? { format: o.format } : {}), ...(o.kind ? { kind: o.kind } : {}), ...(o.sha256 ? { sha256: o.sha256.toLowerCase() } : {}) };
        const id = await client.importImage(repoId, sourceOf(source), userDataOf(o), options);
        if (o.watch && o.autoFix !== false) {
          const status = await watchImage(client, repoId, id);
          if (status.status === 'broken') throw new Error(`import into ${id} stopped: ${status.lastError ?? 'unknown'}`);
        }
        return id;
      },
      (newId) => say(newId),
    ),
  );

  image
    .command('export <repoId> <imageId> <file>')
    .description('write one instant of an image into a new file on this host, with progress')
    .addOption(new Option('--format <format>', 'the file\'s format').choices(['qcow2', 'raw']).default('qcow2'))
    .option('--compress', 'compressed qcow2 clusters')
    .option('--request-id <id>', 'idempotency key: the same request twice has one effect')
    .action(
      withClient(
        async (client, repoId: string, imageId: string, file: string, o: { format: string; compress?: boolean; requestId?: string }) => {
          const { operationId } = await client.exportImage(repoId, imageId, resolve(file), { format: o.format, compress: !!o.compress, ...(o.requestId ? { requestId: o.requestId } : {}) });
          await watchOperation(client, operationId);
          return resolve(file);
        },
        (path) => say(path),
      ),
    );

  image
    .command('measure <targetRepoId> <imageIdOrSource>')
    .description('the room a copy of an image, or an import of a file or URL, needs in a repository (qemu-img measure), and whether it fits')
    .addOption(new Option('--strategy <strategy>', 'the new volume\'s format: space (qcow2) or performance (raw, preallocated)').choices(['space', 'performance']))
    .addOption(new Option('--format <format>', 'an import source\'s format').choices(['auto', 'raw', 'qcow2', 'vmdk', 'vhdx', 'vdi']))
    .action(
      withClient(
        (client, repoId: string, what: string, o: { strategy?: string; format?: string }) =>
          client.measureImage(repoId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(what) ? { imageId: what } : { location: sourceOf(what) }, {
            ...(o.strategy ? { strategy: o.strategy } : {}),
            ...(o.format ? { format: o.format } : {}),
          }),
        (m) =>
          say(
            `${m.sourceFormat} -> ${m.targetFormat}: needs ${formatBytes(m.requiredBytes)} (${m.requiredBytes} bytes; ${m.fullyAllocatedBytes} fully allocated), ` +
              `${formatBytes(m.freeBytes)} free: ${m.fits ? 'fits' : 'does NOT fit (NO_SPACE)'}`,
          ),
      ),
    );

  image
    .command('serve-backup <repoId> <imageId>')
    .description('expose a snapshot or a stopped disk read-only over NBD for a backup tool (nbdcopy, nbdinfo); prints its nbd+unix URI once clients may connect')
    .option('--since <copyId>', 'export the dirty bitmap of the changes since this earlier copy of the image (nbdinfo --map=qemu:dirty-bitmap:NAME)')
    .option('--idle-timeout <seconds>', 'end the export after this long unused (default 300)', (v) => Number(v))
    .option('--request-id <id>', 'idempotency key: the same request twice has one effect')
    .option('--stop', 'end the running export of the image instead')
    .action(
      withClient(
        async (client, repoId: string, imageId: string, o: { since?: string; idleTimeout?: number; requestId?: string; stop?: boolean }) =>
          o.stop
            ? { stopped: await client.stopBackupExport(repoId, imageId) }
            : client.serveBackup(repoId, imageId, o.since ?? null, {
                ...(o.idleTimeout !== undefined ? { idleTimeoutSeconds: o.idleTimeout } : {}),
                ...(o.requestId ? { requestId: o.requestId } : {}),
              }),
        (r, _repoId, imageId) =>
          'stopped' in r
            ? say(r.stopped.length ? `stopped ${r.stopped.join(', ')}` : `no backup export of ${imageId} runs`)
            : say(`${r.address}${r.bitmap ? ` (changes: qemu:dirty-bitmap:${r.bitmap})` : ''} (operation ${r.operationId})`),
      ),
    );

  image
    .command('status <repoId> <imageId>')
    .description('the last persisted status of an image, read from the repository')
    .option('--watch', 'draw a progress bar while work runs on the image, then show its status')
    .action(
      withClient(
        (client, repoId: string, imageId: string, o: { watch?: boolean }) =>
          o.watch ? watchImage(client, repoId, imageId) : client.getImageStatus(repoId, imageId),
        (s) => printImageStatus(s),
      ),
    );

  image
    .command('list <repoId>')
    .description('the images of a repository')
    .action(withClient((client, repoId: string) => client.listImages(repoId), (l) => printImageList(l)));

  withImageFlags(image.command('rm <repoId> <imageId>').description('remove an image (logical at once; space is reclaimed by a clean fix)')).action(
    withClient(
      async (client, repoId: string, imageId: string, o: ImageFlags) => {
        await client.removeImage(repoId, imageId, callOptions(o));
        return null;
      },
      (_r, _repoId, imageId) => say(`removed ${imageId}`),
    ),
  );

  image
    .command('prepare <repoId> <imageId>')
    .description('make an image usable by a VM on a host; prints the path and format to open (IMAGE_BUSY while an operation changes or copies it)')
    .option('--host <hostId>', 'the host that runs the VM (default: this host)')
    .addOption(new Option('--serve <mode>', 'serve it through diskflow\'s block layer (live operations run while the VM writes)').choices(['nbd', 'vhost-user-blk', 'fuse']))
    .action(
      withClient(
        (client, repoId: string, imageId: string, o: { host?: string; serve?: ServeMode }) => client.prepareImage(repoId, imageId, { hostId: o.host, serve: o.serve }),
        (prepared) => say(`${prepared.path} (${prepared.served ? `served as ${prepared.served}` : prepared.format}${prepared.readOnly ? ', read-only' : ''})`),
      ),
    );

  image
    .command('teardown <repoId> <imageId>')
    .description('a VM on the host no longer uses the image')
    .option('--host <hostId>', 'the host that ran the VM (default: this host)')
    .option('--fenced-host <hostId>', 'release the mark of this host instead, which the engine knows is fenced (dead, powered off)')
    .action(
      withClient(
        async (client, repoId: string, imageId: string, o: { host?: string; fencedHost?: string }) => {
          await client.teardownImage(repoId, imageId, { hostId: o.host, fencedHostId: o.fencedHost });
          return null;
        },
        (_r, _repoId, imageId) => say(`torn down ${imageId}`),
      ),
    );

  return image;
}
