/**
 * Task queue names. Workflows are deterministic and run on any host; activities are routed to
 * where the repository's constraints let them run (see docs/ARCHITECTURE.md):
 *
 * - `diskflow.workflows`            every host's worker: workflow tasks only
 * - `diskflow.host.<hostId>`        one host: its connections (repoId handles), prepare/teardown
 * - `diskflow.repo.<repoUuid>`      every host that has the repository connected: I/O and metadata
 *                                   steps of formats without an SRM
 * - `diskflow.srm.<repoUuid>`       only the repository's SRM: object creation and deletion on
 *                                   formats that need an SRM
 *
 * Repositories are named by the uuid in their header, not by repoId: a repoId is a per-host handle.
 */
export const WORKFLOW_TASK_QUEUE = 'diskflow.workflows';
export const hostTaskQueue = (hostId: string): string => `diskflow.host.${hostId}`;
export const repoTaskQueue = (repoUuid: string): string => `diskflow.repo.${repoUuid}`;
export const srmTaskQueue = (repoUuid: string): string => `diskflow.srm.${repoUuid}`;
