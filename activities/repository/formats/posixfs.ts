/** `posixfs-1.0`: any file system mount(8) can mount (`{ spec, vfsType, mountOptions? }`), shared by many hosts, no SRM. */
import { z } from 'zod';
import { PosixFsParams } from '../../../api/formats';
import { mountedDriver } from './mounted';

export const posixfs = mountedDriver<z.infer<typeof PosixFsParams>>('posixfs-1.0', ({ spec, vfsType, mountOptions }) => ({
  vfsType,
  spec,
  options: mountOptions,
}));
