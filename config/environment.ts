/**
 * Configuration from the environment (API.md, "Command line"), shared by the client, the CLI
 * and the workers: the one low module all three read it from (docs/ARCHITECTURE.md, "Layers").
 * Names follow the Temporal CLI's, so one environment serves both.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import type { TLSConfig } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time';

export const DEFAULT_ADDRESS = 'localhost:7233';
export const DEFAULT_UI_PORT = 8233;

export interface TemporalSettings {
  address: string;
  namespace: string;
  tls?: TLSConfig;
  apiKey?: string;
}

export function temporalSettings(env: NodeJS.ProcessEnv = process.env): TemporalSettings {
  // A file path (TEMPORAL_TLS_CERT), or the PEM itself (TEMPORAL_TLS_CERT_DATA), as the Temporal CLI takes them.
  const read = (name: string) => (env[name] ? readFileSync(env[name]!) : env[`${name}_DATA`] ? Buffer.from(env[`${name}_DATA`]!) : undefined);
  const cert = read('TEMPORAL_TLS_CERT');
  const key = read('TEMPORAL_TLS_KEY');
  const ca = read('TEMPORAL_TLS_CA');
  const tlsWanted = cert || ca || env.TEMPORAL_TLS === 'true' || !!env.TEMPORAL_API_KEY;
  return {
    address: env.TEMPORAL_ADDRESS || DEFAULT_ADDRESS,
    namespace: env.TEMPORAL_NAMESPACE || 'default',
    apiKey: env.TEMPORAL_API_KEY || undefined,
    tls: tlsWanted
      ? {
          serverNameOverride: env.TEMPORAL_TLS_SERVER_NAME || undefined,
          serverRootCACertificate: ca,
          clientCertPair: cert && key ? { crt: cert, key } : undefined,
        }
      : undefined,
  };
}

/** The host this process speaks for: DISKFLOW_HOST_ID, else the machine's host name. */
export function defaultHostId(env: NodeJS.ProcessEnv = process.env): string {
  return env.DISKFLOW_HOST_ID || hostname();
}

/** Where this host keeps its state (connections, dev server database, logs). */
export function diskflowHome(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.DISKFLOW_HOME || '.diskflow');
}

/**
 * DISKFLOW_STALL_AFTER: how long an operation may make no progress before it counts as stalled
 * (a duration: `10m`, `90s`, or milliseconds; default 10 minutes). The worker's metrics and
 * `diskflow repo check` use the same value.
 */
export function stallAfterMs(env: NodeJS.ProcessEnv = process.env): number {
  const value = env.DISKFLOW_STALL_AFTER;
  if (!value) return 10 * 60_000;
  let ms: number;
  try {
    ms = msToNumber(value as Duration);
  } catch {
    ms = NaN;
  }
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`DISKFLOW_STALL_AFTER=${value} is not a duration (say 10m, 90s, or milliseconds)`);
  return ms;
}
