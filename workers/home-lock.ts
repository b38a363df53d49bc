/**
 * One worker process per DISKFLOW_HOME: two processes serving the same host state would both
 * reconnect its repositories and poll its queues. The lock is a pid file; a file left by a
 * process that is gone (SIGKILL, power loss) is taken over.
 */
import { mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { processAlive } from '../activities/process';

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
