/** The formats this host can drive. A format not listed here is refused on connect. */
import type { RepoFormat } from '../../../api/formats';
import { DiskflowError } from '../../../api/errors';
import type { RepositoryDriver } from '../repository';
import { clvm } from './clvm';
import { localfs } from './localfs';
import { nfs } from './nfs';
import { posixfs } from './posixfs';

const DRIVERS: Partial<Record<RepoFormat, RepositoryDriver<never>>> = {
  'localfs-1.0': localfs as RepositoryDriver<never>,
  'posixfs-1.0': posixfs as RepositoryDriver<never>,
  'nfs-1.0': nfs as RepositoryDriver<never>,
  'clvm-1.0': clvm as RepositoryDriver<never>,
};

export function driverFor(format: RepoFormat): RepositoryDriver<unknown> {
  const driver = DRIVERS[format];
  if (!driver) throw new DiskflowError('INVALID_ARGUMENT', `repoFormat: ${format} is not supported by this version of diskflow`);
  return driver as RepositoryDriver<unknown>;
}
