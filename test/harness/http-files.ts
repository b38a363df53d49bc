/**
 * A static file server on 127.0.0.1 for import tests and benchmarks: GET and HEAD of files
 * under one directory, with byte ranges (206), as qemu's curl driver needs. `delayMs` slows
 * every answer (an import long enough to kill a worker in the middle of); `requests` counts.
 */
import { createReadStream, statSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';

export interface FileServer {
  url(name: string): string;
  requests: number;
  delayMs: number;
  close(): Promise<void>;
}

export async function serveFiles(root: string, options: { ranges?: boolean } = {}): Promise<FileServer> {
  const ranges = options.ranges ?? true;
  const state = { requests: 0, delayMs: 0 };
  const server: Server = createServer((req, res) => {
    state.requests++;
    const name = normalize(decodeURIComponent((req.url ?? '/').split('?')[0])).replace(/^(\.\.[/\\])+/, '');
    const path = join(root, name);
    let size: number;
    let mtime: Date;
    try {
      const s = statSync(path);
      if (!s.isFile()) throw new Error('not a file');
      size = s.size;
      mtime = s.mtime;
    } catch {
      res.writeHead(404).end();
      return;
    }
    const answer = () => {
      const headers: Record<string, string> = { 'Last-Modified': mtime.toUTCString(), ETag: `"${size}-${mtime.getTime()}"`, 'Content-Type': 'application/octet-stream' };
      if (ranges) headers['Accept-Ranges'] = 'bytes';
      const range = ranges ? /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '') : null;
      if (range) {
        const start = Number(range[1]);
        const end = Math.min(size - 1, range[2] ? Number(range[2]) : size - 1);
        if (start >= size || end < start) {
          res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end();
          return;
        }
        res.writeHead(206, { ...headers, 'Content-Range': `bytes ${start}-${end}/${size}`, 'Content-Length': String(end - start + 1) });
        if (req.method === 'HEAD') res.end();
        else createReadStream(path, { start, end }).pipe(res);
        return;
      }
      res.writeHead(200, { ...headers, 'Content-Length': String(size) });
      if (req.method === 'HEAD') res.end();
      else createReadStream(path).pipe(res);
    };
    if (state.delayMs) setTimeout(answer, state.delayMs);
    else answer();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (name) => `http://127.0.0.1:${port}/${name}`,
    get requests() {
      return state.requests;
    },
    set requests(n: number) {
      state.requests = n;
    },
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(ms: number) {
      state.delayMs = ms;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
