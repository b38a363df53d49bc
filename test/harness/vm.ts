/**
 * A VM for tests: qemu-io holding a prepared image open, as a VM's block layer does (with
 * qemu's image lock), writing patterns on request. A write counts as acknowledged once qemu-io
 * has answered it; a test then proves every acknowledged write is on the disk afterwards.
 * Every VM a test file starts is stopped by stopAllVms (afterEach), pass or fail, and killed if
 * the test process exits first.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Write } from './content';

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export class Vm {
  /** The writes qemu-io has answered, in order. */
  readonly acknowledged: Write[] = [];
  private waiting: { resolve: () => void; reject: (e: Error) => void; write: Write }[] = [];
  private output = '';

  private constructor(
    private readonly child: ChildProcess,
    readonly path: string,
  ) {
    createInterface({ input: child.stdout! }).on('line', (line) => this.onLine(line));
    child.stderr!.on('data', (d) => (this.output += String(d)));
    child.on('exit', () => {
      live.delete(child);
      for (const w of this.waiting.splice(0)) w.reject(new Error(`qemu-io on ${path} exited before answering a write: ${this.output}`));
    });
  }

  /** Opens `path` (read-write, as a VM does) and holds it open. */
  static start(path: string, format: string): Vm {
    const child = spawn('qemu-io', ['-f', format, path], { stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(child);
    return new Vm(child, path);
  }

  private onLine(line: string): void {
    this.output += line + '\n';
    const wrote = /wrote (\d+)\/\d+ bytes at offset (\d+)/.exec(line);
    if (wrote) {
      const next = this.waiting.shift();
      if (!next) return;
      this.acknowledged.push(next.write);
      next.resolve();
    } else if (/error|failed/i.test(line)) {
      this.waiting.shift()?.reject(new Error(`qemu-io on ${this.path}: ${line}`));
    }
  }

  /** Writes `write.length` bytes of `write.pattern` at `write.offset`; resolves once acknowledged. */
  write(write: Write): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject, write });
      this.child.stdin!.write(`write -P 0x${write.pattern.toString(16)} ${write.offset} ${write.length}\n`);
    });
  }

  /** Flushes and closes the image, as a VM that shuts down. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.stdin!.end('flush\nquit\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

/** Stops every VM still running in this test process. */
export async function stopAllVms(): Promise<void> {
  await Promise.all(
    [...live].map(
      (child) =>
        new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}

/**
 * A VM writing a logged sequence of patterns, one after the other, `paceMs` apart, until all are
 * written or it is stopped: what it was answered is `vm.acknowledged`, in order.
 */
export class WriteSequence {
  private stopped = false;
  private done: Promise<void> = Promise.resolve();

  constructor(
    readonly vm: Vm,
    readonly writes: Write[],
    private readonly paceMs = 50,
  ) {}

  start(): this {
    this.done = (async () => {
      for (const write of this.writes) {
        if (this.stopped) return;
        await this.vm.write(write);
        await new Promise((r) => setTimeout(r, this.paceMs));
      }
    })();
    return this;
  }

  /** Stops after the write under way; resolves with the writes acknowledged. */
  async stop(): Promise<Write[]> {
    this.stopped = true;
    await this.done;
    return [...this.vm.acknowledged];
  }

  /** Resolves once every write of the sequence was acknowledged. */
  async finished(): Promise<Write[]> {
    await this.done;
    return [...this.vm.acknowledged];
  }
}

/**
 * `count` writes of `length` bytes at distinct offsets, patterns `first`, `first + 1`, ... (never
 * 0, so that none reads like a place nothing was written).
 */
export function sequenceOf(count: number, first: number, length: number, stride: number, start = 0): Write[] {
  return Array.from({ length: count }, (_, i) => ({ pattern: 1 + ((first - 1 + i) % 255), offset: start + i * stride, length }));
}
