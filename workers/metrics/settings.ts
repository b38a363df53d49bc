/** DISKFLOW_METRICS_ADDRESS: where a worker serves Prometheus metrics (off by default; `diskflow dev` turns it on). */
import { createServer } from 'node:net';
import { stallAfterMs } from '../../config/environment';

export interface MetricsSettings {
  /** Where diskflow's endpoint listens, e.g. 127.0.0.1 and 9464 (0.0.0.0 for scrapers on other machines). */
  host: string;
  port: number;
  /** Where the Temporal SDK's own exporter listens, on loopback only: the endpoint serves its figures too. */
  sdkBindAddress: string;
  stallAfterMs: number;
}

/** The address `diskflow dev` serves metrics on when DISKFLOW_METRICS_ADDRESS does not say. */
export const DEV_METRICS_ADDRESS = '127.0.0.1:9464';

export function parseMetricsAddress(value: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value.trim());
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`DISKFLOW_METRICS_ADDRESS=${value} is not host:port (say 127.0.0.1:9464, or 0.0.0.0:9464 for Prometheus on another machine; off turns it off)`);
  }
  return { host: match[1] ?? match[2], port };
}

/** A port free on loopback now, for the SDK's exporter (nothing else is told of it). */
async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** The metrics settings of this process, or null when metrics are off. */
export async function metricsSettings(env: NodeJS.ProcessEnv = process.env, defaultAddress: string | null = null): Promise<MetricsSettings | null> {
  const value = env.DISKFLOW_METRICS_ADDRESS?.trim() || defaultAddress;
  if (!value || value === 'off') return null;
  return { ...parseMetricsAddress(value), sdkBindAddress: `127.0.0.1:${await freeLoopbackPort()}`, stallAfterMs: stallAfterMs(env) };
}
