/**
 * Signatures of the metadata changes a host sends to a repository's SRM (srmMetadataStep).
 * The workflow type is startable by anyone with access to the namespace, and its activity can
 * be scheduled on the SRM queue by anyone who runs a worker there; only a change signed under
 * the cluster's key (DISKFLOW_FIX_KEY, which every host of a cluster shares) is made. The
 * signature binds the change to its repository and to the operation whose step sends it, and
 * the SRM makes it only while that operation runs, so a change read from an old history cannot
 * be replayed later.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { canonicalJson } from '../../api/canonical-json';
import { DiskflowError } from '../../api/errors';
import type { SrmMetadataInput } from '../../api/srm-metadata';

/** A key of its own for this purpose, derived from the cluster key: a fix's signature never signs a change. */
const subkey = (key: Buffer) => createHmac('sha256', key).update('diskflow srm-metadata/1').digest();

const mac = (key: Buffer, input: Omit<SrmMetadataInput, 'signature'>) =>
  createHmac('sha256', subkey(key))
    .update(canonicalJson({ v: 1, repoUuid: input.repoUuid, operationId: input.operationId, call: input.call }))
    .digest();

export function signMetadataCall(key: Buffer, input: Omit<SrmMetadataInput, 'signature'>): SrmMetadataInput {
  return { ...input, signature: mac(key, input).toString('base64url') };
}

/** Throws INVALID_ARGUMENT unless `input` carries diskflow's signature under `key`. */
export function verifyMetadataCall(key: Buffer, input: SrmMetadataInput): void {
  const given = Buffer.from(input.signature, 'base64url');
  const expected = mac(key, input);
  if (given.toString('base64url') !== input.signature || given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new DiskflowError(
      'INVALID_ARGUMENT',
      `srmMetadataStep: the change to repository ${input.repoUuid} does not carry diskflow's signature (an internal step, not to be started from outside; ` +
        'or the hosts of this cluster do not share one DISKFLOW_FIX_KEY)',
    );
  }
}
