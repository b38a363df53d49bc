/**
 * The opaque `data` of a Fix: the plan, bound to the repository and to the state of the objects
 * it touches, signed with HMAC-SHA256 under the cluster's fix key (DISKFLOW_FIX_KEY). A fix whose
 * data was altered or forged fails the signature; one made stale by later changes fails the
 * generation check when it is accepted. Either way: FIX_INVALID, and nothing changes.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { DiskflowError } from '../../api/errors';
import type { FixPlan } from './plans';

const Envelope = z.object({
  v: z.literal(1),
  repoUuid: z.string(),
  plan: z.looseObject({ type: z.enum(['clean', 'mend', 'optimize', 'merge']), images: z.record(z.string(), z.number()) }),
});

const invalid = (why: string) => new DiskflowError('FIX_INVALID', `fix data ${why}; run checkStorageRepository again for current fixes`);

const mac = (key: Buffer, payload: string) => createHmac('sha256', key).update(payload).digest();

export function signFix(plan: FixPlan, repoUuid: string, key: Buffer): string {
  const payload = Buffer.from(JSON.stringify({ v: 1, repoUuid, plan })).toString('base64url');
  return `${payload}.${mac(key, payload).toString('base64url')}`;
}

/** The plan a fix's data carries, if it is authentic and meant for this repository. */
export function openFix(data: string, repoUuid: string, key: Buffer): FixPlan {
  const [payload, signature, ...rest] = data.split('.');
  if (!payload || !signature || rest.length) throw invalid('is malformed');
  const expected = mac(key, payload);
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid('does not carry a valid signature (altered, forged, or signed with another DISKFLOW_FIX_KEY)');
  let envelope: z.infer<typeof Envelope>;
  try {
    envelope = Envelope.parse(JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')));
  } catch {
    throw invalid('is malformed');
  }
  if (envelope.repoUuid !== repoUuid) throw invalid('belongs to another repository');
  return envelope.plan as unknown as FixPlan;
}
