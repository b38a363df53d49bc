/** A host's tunables, read once from its environment. */
import type { HostSettings } from '../activities/deps';
import { parseSize } from '../config/size';

const GiB = 2 ** 30;

export function hostSettings(fixKey: Buffer, env: NodeJS.ProcessEnv = process.env): HostSettings {
  return {
    fixKey,
    maxChainLength: env.DISKFLOW_MAX_CHAIN ? Number(env.DISKFLOW_MAX_CHAIN) : 8,
    // 1.5 MiB: an answer crosses Temporal twice (activity result, workflow result); ~2,500 fixes.
    answerBytes: env.DISKFLOW_ANSWER_BYTES ? parseSize(env.DISKFLOW_ANSWER_BYTES, 'DISKFLOW_ANSWER_BYTES') : 1.5 * 2 ** 20,
    copyChunkBytes: env.DISKFLOW_COPY_CHUNK ? parseSize(env.DISKFLOW_COPY_CHUNK, 'DISKFLOW_COPY_CHUNK') : GiB,
    copyRangeSeconds: env.DISKFLOW_COPY_RANGE_SECONDS ? Number(env.DISKFLOW_COPY_RANGE_SECONDS) : 10,
    copyRateLimit: env.DISKFLOW_COPY_RATE_LIMIT ? parseSize(env.DISKFLOW_COPY_RATE_LIMIT, 'DISKFLOW_COPY_RATE_LIMIT') : null,
    progressIntervalMs: env.DISKFLOW_PROGRESS_INTERVAL_MS ? Number(env.DISKFLOW_PROGRESS_INTERVAL_MS) : 2000,
  };
}

/**
 * DISKFLOW_MAX_CONCURRENT_STEPS: how many steps of one repository's queue this host runs at once
 * (default 16). A host at its cap stops taking steps, so the rest go to other hosts that have the
 * repository connected.
 */
export function maxConcurrentSteps(env: NodeJS.ProcessEnv = process.env): number {
  const value = Number(env.DISKFLOW_MAX_CONCURRENT_STEPS);
  return Number.isInteger(value) && value > 0 ? value : 16;
}
