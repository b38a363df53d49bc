/** Search attributes, so operators can find an operation's workflows by repository, image and host. */
import { upsertSearchAttributes } from '@temporalio/workflow';
import { DiskflowHost, DiskflowImage, DiskflowOperation, DiskflowRepo } from '../api/search-attributes';

export interface OperationTags {
  operation: string;
  repo?: string;
  image?: string;
  host?: string;
}

export function tagOperation(tags: OperationTags): void {
  upsertSearchAttributes([
    { key: DiskflowOperation, value: tags.operation },
    ...(tags.repo ? [{ key: DiskflowRepo, value: tags.repo }] : []),
    ...(tags.image ? [{ key: DiskflowImage, value: tags.image }] : []),
    ...(tags.host ? [{ key: DiskflowHost, value: tags.host }] : []),
  ]);
}
