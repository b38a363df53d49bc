/**
 * The registry of operations: each RFC operation's resolve-and-persist step is one module
 * (operation.ts), and the unions the workflows and activities speak are derived from here, so a
 * new operation is one file and one line below.
 */
import type { ActivityDeps } from '../deps';
import { acceptFix } from './accept-fix';
import { serveBackup } from './begin-backup-export';
import { copyImage } from './copy-image';
import { createSnapshot } from './create-snapshot';
import { createVirtualDisk } from './create-virtual-disk';
import { importImage } from './import-image';
import type { Operation } from './operation';
import { removeImage } from './remove-image';
import { resizeDisk } from './resize-disk';

export const OPERATIONS = {
  'create-virtual-disk': createVirtualDisk,
  'create-snapshot': createSnapshot,
  'copy-image': copyImage,
  'import-image': importImage,
  'mark-removed': removeImage,
  'accept-fix': acceptFix,
  'resize-disk': resizeDisk,
  'serve-backup': serveBackup,
};

type Registry = typeof OPERATIONS;
export type OperationName = keyof Registry;
type Parts<K extends OperationName> = Registry[K] extends Operation<infer Request, infer Step, infer Done> ? { request: Request; step: Step; persisted: Done } : never;

/** What a workflow asks for, in the caller's terms. */
export type PersistRequest = { [K in OperationName]: { op: K } & Parts<K>['request'] }[OperationName];
/** The same, resolved by the caller's host: repositories by identity, facts about sources. */
export type PersistStep = { [K in OperationName]: { op: K; input: Parts<K>['step'] } }[OperationName];
/** What the persist step answers the workflow. */
export type Persisted = { [K in OperationName]: { op: K } & Parts<K>['persisted'] }[OperationName];

/** The one place where the unions meet their modules: TypeScript cannot relate `op` to its module by itself. */
const operationFor = (op: OperationName) => OPERATIONS[op] as Operation<unknown, unknown, object>;

/** On the caller's host: the request resolved into the step that persists it. */
export async function resolveRequest(deps: ActivityDeps, targetRepoId: string, request: PersistRequest): Promise<PersistStep> {
  const { op, ...rest } = request;
  return { op, input: await operationFor(op).resolve(deps, targetRepoId, rest) } as PersistStep;
}

/**
 * Steps persisted by workflows started before steps carried `input` had their fields beside
 * `op` (removal and fix acceptance, sent to an SRM): read either way.
 */
export type LegacyPersistStep =
  | ({ op: 'mark-removed' } & Parts<'mark-removed'>['step'])
  | { op: 'accept-fix'; plan: Parts<'accept-fix'>['step']['plan']; operationId: string };

function inputOf(step: PersistStep | LegacyPersistStep): unknown {
  if ('input' in step) return step.input;
  const { op: _op, ...input } = step;
  return input;
}

export function createPersistActivities(deps: ActivityDeps) {
  return {
    /** Makes an operation's intent durable, where the repository allows object changes. */
    async persist({ repoUuid, step }: { repoUuid: string; step: PersistStep | LegacyPersistStep }): Promise<Persisted> {
      const repo = deps.connections.byUuid(repoUuid);
      return { op: step.op, ...(await operationFor(step.op).persist(deps, repo, inputOf(step))) } as Persisted;
    },
  };
}
