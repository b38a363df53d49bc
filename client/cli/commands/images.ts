/** `diskflow disk ...` and `diskflow image ...`: virtual disks and images. */
import { Command } from 'commander';
import { parseSize } from '../parse';
import { printImageList, printImageStatus } from '../output';
import { withClient } from '../run';
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
  return disk;
}

export function imageCommand(): Command {
  const image = new Command('image').description('images: status, listing, removal, use by VMs');

  image
    .command('status <repoId> <imageId>')
    .description('the last persisted status of an image, read from the repository')
    .action(withClient((client, repoId: string, imageId: string) => client.getImageStatus(repoId, imageId), (s) => printImageStatus(s)));

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
    .description('make an image usable by a VM on a host; prints the path and format to open')
    .option('--host <hostId>', 'the host that runs the VM (default: this host)')
    .action(
      withClient(
        (client, repoId: string, imageId: string, o: { host?: string }) => client.prepareImage(repoId, imageId, { hostId: o.host }),
        (prepared) => say(`${prepared.path} (${prepared.format})`),
      ),
    );

  image
    .command('teardown <repoId> <imageId>')
    .description('a VM on the host no longer uses the image')
    .option('--host <hostId>', 'the host that ran the VM (default: this host)')
    .action(
      withClient(
        async (client, repoId: string, imageId: string, o: { host?: string }) => {
          await client.teardownImage(repoId, imageId, { hostId: o.host });
          return null;
        },
        (_r, _repoId, imageId) => say(`torn down ${imageId}`),
      ),
    );

  return image;
}
