/** What activities need from the host process that runs them. */
import type { HostConnections } from './host/connections';
import type { OperationRegistry } from './images/claims';

export interface ActivityDeps {
  hostId: string;
  connections: HostConnections;
  operations: OperationRegistry;
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
