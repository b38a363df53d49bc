/**
 * Holdpoints (activities/failpoints.ts) for tests: a step armed with one waits at it while the
 * hold is on, so a test can look at an operation whose fix is really pending.
 */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './repositories';
import { eventually } from './wait';

export class Hold {
  private readonly file: string;

  constructor(readonly name: string) {
    this.file = join(tempDir('hold'), name);
  }

  /** The worker environment that arms this holdpoint. */
  get env(): Record<string, string> {
    return { DISKFLOW_HOLDPOINTS: `${this.name}=${this.file}` };
  }

  /** Runs `fn` with the hold on: steps reaching the holdpoint meanwhile wait until it returns. */
  async during<T>(fn: () => Promise<T>): Promise<T> {
    writeFileSync(this.file, '');
    try {
      return await fn();
    } finally {
      rmSync(this.file, { force: true });
      rmSync(`${this.file}.reached`, { force: true });
    }
  }

  /** Resolves once a step waits at the holdpoint (inside `during`). */
  reached(ms = 30_000): Promise<void> {
    return eventually(async () => existsSync(`${this.file}.reached`), (yes) => yes, ms).then(() => undefined);
  }
}

/** `promise`, or a failure saying `what` did not happen within `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
