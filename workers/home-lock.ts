/**
 * One worker process per DISKFLOW_HOME: two processes serving the same host state would both
 * reconnect its repositories and poll its queues. The lock is a pid file; a file left by a
 * process that is gone (SIGKILL, power loss) is taken over.
 *
 * A DISKFLOW_HOME also has an identity of its own (`home.id`, made once), which the leases this
 * host takes on shared storage carry: a lease of this host id made from another DISKFLOW_HOME
 * (another machine, or a second worker started by mistake with the same --host-id) is another
 * holder's, never taken over as this worker's own earlier incarnation.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createFileExclusive, readSmallFile } from '../activities/repository/atomic-file';
import { processAlive } from '../activities/process';
import { Uuid } from '../api/values';

export async function lockHome(home: string): Promise<() => Promise<void>> {
  await mkdir(home, { recursive: true });
  const file = join(home, 'worker.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(file, `${process.pid}\n`, { flag: 'wx' });
      return async () => {
        await unlink(file).catch(() => undefined);
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      if (pid && pid !== process.pid && processAlive(pid)) {
        throw new Error(`another diskflow worker (pid ${pid}) already serves ${home}; give each host its own DISKFLOW_HOME`);
      }
      await unlink(file).catch(() => undefined);
    }
  }
  throw new Error(`could not lock ${home}`);
}


/** The identity of this DISKFLOW_HOME (made once, atomically), carried by the leases this host holds. */
export async function homeId(home: string): Promise<string> {
  const file = join(home, 'home.id');
  for (let attempt = 0; attempt < 3; attempt++) {
    const text = await readSmallFile(file, 256);
    if (text !== null) {
      const id = text.trim();
      if (!Uuid.safeParse(id).success) throw new Error(`${file} does not hold the identity diskflow wrote there; remove it (the host's leases are then taken over after their timeout)`);
      return id;
    }
    await createFileExclusive(file, `${randomUUID()}\n`, home);
  }
  throw new Error(`could not make ${file}`);
}
