/** `localfs-1.0`: an existing local directory, used by one host, no SRM. */
import { randomUUID } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { z } from 'zod';
import { DiskflowError } from '../../../api/errors';
import { FORMAT_TRAITS, LocalFsParams } from '../../../api/formats';
import { checkLayout, FileRepository, initFileRepository, probeDirectIo, readHeader } from '../file-repository';
import type { Repository, RepositoryDriver, RepositoryHeader } from '../repository';

type Params = z.infer<typeof LocalFsParams>;

async function requireDirectory(path: string): Promise<void> {
  const info = await stat(path).catch(() => null);
  if (!info?.isDirectory()) throw new DiskflowError('INVALID_ARGUMENT', `connectionParameters.path: ${path} is not an existing directory`);
}

export const localfs: RepositoryDriver<Params> = {
  format: 'localfs-1.0',

  async init({ path }): Promise<RepositoryHeader> {
    await requireDirectory(path);
    const entries = await readdir(path);
    if (entries.length > 0) {
      throw new DiskflowError('REPO_NOT_EMPTY', `${path} is not empty (holds ${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''})`);
    }
    const header: RepositoryHeader = {
      schema: 'diskflow.repository/1',
      format: 'localfs-1.0',
      uuid: randomUUID(),
      createdAt: new Date().toISOString(),
    };
    await initFileRepository(path, header);
    return header;
  },

  async connect({ path }): Promise<Repository> {
    await requireDirectory(path);
    const header = await readHeader(path);
    if (!header) throw new DiskflowError('INVALID_ARGUMENT', `connectionParameters.path: ${path} is not a diskflow repository (no header); run initStorageRepository first`);
    if (header.format !== 'localfs-1.0') {
      throw new DiskflowError('INVALID_ARGUMENT', `repoFormat: ${path} holds a ${header.format} repository, not localfs-1.0`);
    }
    await checkLayout(path);
    return new FileRepository(header, FORMAT_TRAITS['localfs-1.0'], path, await probeDirectIo(path));
  },
};
