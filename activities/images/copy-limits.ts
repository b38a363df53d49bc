/** What a copy may take: room on block storage before it writes, bandwidth while it does. */
import type { CopyJob } from './records';

const MiB = 2 ** 20;

/**
 * What a qcow2 volume of a `virtualSize`-byte disk needs to hold `dataBytes` of data, with its
 * metadata (block storage grows a volume to this before a writer needs it).
 */
export const roomForData = (dataBytes: number, virtualSize: number): number => Math.min(Math.ceil(dataBytes * 1.05) + 16 * MiB, virtualSize + 64 * MiB);

/** The bytes per second a copy job may move: its call's, else the host's, else unlimited. */
export const bandwidthOf = (job: CopyJob, settings: { copyRateLimit: number | null }): number | undefined => job.bandwidth ?? settings.copyRateLimit ?? undefined;
