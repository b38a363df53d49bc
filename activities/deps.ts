/** What activities need from the host process that runs them. */
import type { HostConnections } from './host/connections';
import type { OperationRegistry } from './images/lifecycle';
import type { SrmRoles } from './srm/srm-roles';

export interface ActivityDeps {
  hostId: string;
  connections: HostConnections;
  operations: OperationRegistry;
  settings: HostSettings;
  /** The SRM roles this host holds (repositories whose format needs an SRM). */
  srm?: SrmRoles;
}

/** A host's tunables, from its environment (workers/settings.ts). */
export interface HostSettings {
  /**
   * A copy persists its resume point after each range of data. The first range holds this
   * many bytes; later ones are sized from the measured throughput to last about
   * `copyRangeSeconds`, so range boundaries cost little on fast storage and a crash never
   * loses more than a few seconds of copying on slow storage.
   */
  copyChunkBytes: number;
  copyRangeSeconds: number;
  /** Bytes per second a copy may move (spares the storage for running VMs); unlimited when null. */
  copyRateLimit: number | null;
  /** How often a step's progress is written to the image's record and sent to its workflow. */
  progressIntervalMs: number;
  /** Chains longer than this are offered an optimize fix that collapses them. */
  maxChainLength: number;
  /**
   * The most one answer holds, as JSON (Temporal refuses payloads over 2 MB by default): a check
   * answers the most urgent fixes that fit, a listing of images comes in pages of this size.
   */
  answerBytes: number;
  /** The key that signs fix data (DISKFLOW_FIX_KEY, shared by a cluster). */
  fixKey: Buffer;
}

/** Identifies a repository on its task queue: every host that has it connected knows it by uuid. */
export interface OnRepository {
  repoUuid: string;
}

/** A step of an operation on one image; `operationId` is the workflow id of the operation. */
export interface ImageStep extends OnRepository {
  imageId: string;
  operationId: string;
}
