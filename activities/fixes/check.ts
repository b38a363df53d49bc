/** checkStorageRepository: a read-only scan, analysed into fixes whose data is signed. */
import { log } from '@temporalio/activity';
import type { Fix } from '../../api/image-status';
import { fitAnswer } from '../answer-size';
import type { ActivityDeps } from '../deps';
import { analyse } from './analysis';
import { signFix } from './fix-data';
import { scanRepository } from './scan';

/** Temporary files younger than this may belong to a write in progress. */
const STRAY_AGE_MS = 10 * 60 * 1000;

/** Types in the order `fix --all` runs them: mends first (they may make images others wait on), cleans last. */
const ORDER: Record<Fix['type'], number> = { mend: 0, merge: 1, optimize: 2, clean: 3 };

export function createCheckActivities({ connections, operations, settings }: ActivityDeps) {
  return {
    async checkRepository({ repoId }: { repoId: string }): Promise<Fix[]> {
      const repo = connections.byRepoId(repoId);
      const scan = await scanRepository(repo);
      const claims = [...new Set(scan.images.flatMap((i) => (i.operation ? [i.operation.id] : [])))];
      const running = new Set<string>();
      await Promise.all(claims.map(async (id) => (await operations.isRunning(id)) && running.add(id)));
      const fixes = analyse(scan, { running, maxChainLength: settings.maxChainLength, strayAgeMs: STRAY_AGE_MS, freeBytes: await repo.freeBytes().catch(() => undefined) });
      const all = fixes
        .map(({ plan, type, imageIds, description, bytes }) => ({ type, imageIds, description, bytes, data: signFix(plan, scan.repoUuid, settings.fixKey) }))
        .sort((a, b) => ORDER[a.type] - ORDER[b.type]);
      const answer = fitAnswer(all, settings.answerBytes);
      if (answer.length < all.length) {
        log.warn(`check of ${repoId} answers ${answer.length} of ${all.length} fixes, the most urgent first (one answer holds at most ${settings.answerBytes} bytes); run them and check again for the rest`);
      }
      return answer;
    },
  };
}
