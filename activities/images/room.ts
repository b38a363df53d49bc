/** Room a volume needs on block storage before a writer fills it. */

const MiB = 2 ** 20;

/**
 * What a qcow2 volume of a `virtualSize`-byte disk needs to hold `dataBytes` of data, with its
 * metadata (block storage grows a volume to this before a writer needs it).
 */
export const roomForData = (dataBytes: number, virtualSize: number): number => Math.min(Math.ceil(dataBytes * 1.05) + 16 * MiB, virtualSize + 64 * MiB);
