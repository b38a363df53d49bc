/** Sizes as the environment and the command line give them: `10G`, `512M`, `1.5T`, `4096`. */
import { invalidArgument } from '../api/errors';

const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };

/** `10G`, `512M`, `1.5T`, `4096`: binary units, as qemu-img reads them. */
export function parseSize(text: string, field = 'size'): number {
  const match = /^(-?\d+(?:\.\d+)?)\s*([KMGTP]?)(?:i?B)?$/i.exec(text.trim());
  if (!match) throw invalidArgument(`${field}: "${text}" is not a size (bytes, or a number with K, M, G, T or P)`);
  return Number(match[1]) * UNITS[match[2].toUpperCase()];
}
