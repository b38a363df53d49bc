/** One mutex per key, created on first use and dropped when nobody waits on it. */
import { Mutex } from 'async-mutex';

export class KeyedLock {
  private readonly locks = new Map<string, { mutex: Mutex; users: number }>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    let entry = this.locks.get(key);
    if (!entry) this.locks.set(key, (entry = { mutex: new Mutex(), users: 0 }));
    entry.users++;
    try {
      return await entry.mutex.runExclusive(fn);
    } finally {
      if (--entry.users === 0) this.locks.delete(key);
    }
  }
}
