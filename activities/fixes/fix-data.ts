/**
 * The opaque `data` of a Fix: the plan, bound to the repository and to the state of the objects
 * it touches, signed with HMAC-SHA256 under the cluster's fix key (DISKFLOW_FIX_KEY). A fix whose
 * data was altered or forged fails the signature; one made stale by later changes fails the
 * generation check when it is accepted. Either way: FIX_INVALID, and nothing changes.
 *
 * The data has exactly one encoding: `<payload>.<signature>`, both canonical base64url (no
 * padding, no other characters, no stray bits), so a fix cannot be told apart from an altered
 * copy of it by anything but its content.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { DiskflowError } from '../../api/errors';
import { HostId, ImageId, RepoUuid, VolumeId } from '../../api/values';
import { STRAY_NAME } from '../repository/atomic-file';
import type { FixPlan } from './plans';

/** A fix's data as it travels: bounded; its form is checked when it is opened (FIX_INVALID). */
export const FixData = z.string().min(1).max(1024 * 1024);

export const StrayName = z.string().regex(STRAY_NAME, { error: 'must be a temporary file of diskflow' });

const touches = { images: z.record(ImageId, z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)) };

/** Every plan a check makes (plans.ts), as it must be to be carried out. */
/** The host serving the image to its VM, where the fix runs (plans of images not served have none). */
const onHost = { onHost: HostId.nullable().optional() };

export const FixPlanSchema = z.union([
  z.strictObject({ type: z.literal('clean'), action: z.literal('removed-image'), imageId: ImageId, volumes: z.array(VolumeId), ...touches }),
  z.strictObject({ type: z.literal('clean'), action: z.literal('orphans'), volumes: z.array(VolumeId), strays: z.array(StrayName), ...touches }),
  z.strictObject({ type: z.literal('mend'), imageId: ImageId, copyFrom: RepoUuid.nullable(), ...onHost, ...touches }),
  z.strictObject({ type: z.literal('optimize'), imageId: ImageId, reason: z.enum(['flatten', 'collapse', 'resume']), format: z.enum(['raw', 'qcow2']), ...onHost, ...touches }),
  z.strictObject({ type: z.literal('merge'), imageId: ImageId, upper: VolumeId, lower: VolumeId, ...onHost, ...touches }),
]);
// The schema and the plans a check makes are the same, both ways.
const planMatches: [FixPlan, z.output<typeof FixPlanSchema>] = [null as unknown as z.output<typeof FixPlanSchema>, null as unknown as FixPlan];
void planMatches;

const Envelope = z.strictObject({ v: z.literal(1), repoUuid: RepoUuid, plan: FixPlanSchema });

const invalid = (why: string) => new DiskflowError('FIX_INVALID', `fix data ${why}; run checkStorageRepository again for current fixes`);

const mac = (key: Buffer, payload: string) => createHmac('sha256', key).update(payload).digest();

/** `<payload>.<signature>`: base64url characters only, the signature exactly one HMAC-SHA256 long. */
const FORM = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{43})$/;

/** The bytes of a canonical base64url text, or null when the text is not the one encoding of its bytes. */
function canonicalBase64url(text: string): Buffer | null {
  const bytes = Buffer.from(text, 'base64url');
  return bytes.toString('base64url') === text ? bytes : null;
}

export function signFix(plan: FixPlan, repoUuid: string, key: Buffer): string {
  const payload = Buffer.from(JSON.stringify({ v: 1, repoUuid, plan })).toString('base64url');
  return `${payload}.${mac(key, payload).toString('base64url')}`;
}

/** The plan a fix's data carries, if it is authentic, in its one encoding, and meant for this repository. */
export function openFix(data: string, repoUuid: string, key: Buffer): FixPlan {
  const form = FORM.exec(data);
  if (!form) throw invalid('is malformed (not the data a check returned)');
  const [, payload, signature] = form;
  const given = canonicalBase64url(signature);
  const body = canonicalBase64url(payload);
  if (!given || !body) throw invalid('is not in the encoding a check returned (altered)');
  const expected = mac(key, payload);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid('does not carry a valid signature (altered, forged, or signed with another DISKFLOW_FIX_KEY)');
  let envelope: z.infer<typeof Envelope>;
  try {
    envelope = Envelope.parse(JSON.parse(body.toString('utf8')));
  } catch {
    throw invalid('is malformed');
  }
  if (envelope.repoUuid !== repoUuid) throw invalid('belongs to another repository');
  return envelope.plan;
}
