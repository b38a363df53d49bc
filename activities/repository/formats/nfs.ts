/** `nfs-1.0`: posixfs with vfsType nfs and spec `server:/export`. */
import { z } from 'zod';
import { NfsParams } from '../../../api/formats';
import type { MountSpec } from '../../host/mounts';
import { mountedDriver } from './mounted';

export const nfsMountSpec = ({ server, export: path, mountOptions }: z.infer<typeof NfsParams>): MountSpec => ({
  vfsType: 'nfs',
  spec: `${server}:${path}`,
  options: mountOptions,
});

export const nfs = mountedDriver('nfs-1.0', nfsMountSpec);
