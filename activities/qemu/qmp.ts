/**
 * A minimal QMP client (the JSON protocol of qemu's monitor) over a unix socket: one command
 * at a time, events delivered to a listener. Enough to drive qemu-storage-daemon's block jobs.
 */
import { createConnection, Socket } from 'node:net';
import { DiskflowError } from '../../api/errors';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
}

export class Qmp {
  private buffer = '';
  private waiting: { resolve: (value: unknown) => void; reject: (error: Error) => void } | null = null;
  private closed: Error | null = null;
  private greeted!: Promise<void>;

  private constructor(
    private readonly socket: Socket,
    private readonly onEvent: (event: QmpEvent) => void,
  ) {}

  /** Connects, reads the greeting and leaves capabilities negotiation mode. */
  static async connect(path: string, onEvent: (event: QmpEvent) => void): Promise<Qmp> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = createConnection(path);
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
    const qmp = new Qmp(socket, onEvent);
    qmp.greeted = new Promise((resolve) => (qmp.waiting = { resolve: () => resolve(), reject: () => resolve() }));
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => qmp.receive(chunk));
    const gone = (error?: Error) => {
      qmp.closed = error ?? new DiskflowError('STORAGE_ERROR', 'qemu-storage-daemon closed its monitor');
      qmp.waiting?.reject(qmp.closed);
      qmp.waiting = null;
    };
    socket.on('error', gone);
    socket.on('close', () => gone());
    try {
      await qmp.greeted;
      await qmp.execute('qmp_capabilities');
    } catch (error) {
      socket.destroy();
      throw error;
    }
    return qmp;
  }

  private receive(chunk: string): void {
    this.buffer += chunk;
    let newline: number;
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (!line) continue;
      const message = JSON.parse(line) as { QMP?: unknown; return?: unknown; error?: { class: string; desc: string }; event?: string };
      if (message.event) {
        this.onEvent(message as QmpEvent);
        continue;
      }
      const waiting = this.waiting;
      this.waiting = null;
      if (message.error) waiting?.reject(new DiskflowError('STORAGE_ERROR', `qemu-storage-daemon: ${message.error.desc}`));
      else waiting?.resolve(message.return ?? message.QMP);
    }
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closed) return Promise.reject(this.closed);
    if (this.waiting) return Promise.reject(new Error('QMP: one command at a time'));
    return new Promise<T>((resolve, reject) => {
      this.waiting = { resolve: resolve as (value: unknown) => void, reject };
      this.socket.write(JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + '\n');
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
