/**
 * Answers that cross Temporal (activity and workflow results) are limited to 2 MB by default;
 * long lists are answered in parts that each stay within `HostSettings.answerBytes`.
 */

/**
 * The first items whose JSON, as an array, fits in `budget` bytes. With `atLeastOne`, the first
 * item is kept even if it alone is larger, so that a paged listing always moves on.
 */
export function fitAnswer<T>(items: readonly T[], budget: number, { atLeastOne = false } = {}): T[] {
  let used = 1; // "[" and "]", and a comma after every item but the last
  const kept: T[] = [];
  for (const item of items) {
    used += Buffer.byteLength(JSON.stringify(item)) + 1;
    if (used > budget && !(atLeastOne && kept.length === 0)) break;
    kept.push(item);
  }
  return kept;
}
