/** The search attributes every operation's workflow carries, so the Web UI can filter by them. */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const DiskflowRepo = defineSearchAttributeKey('DiskflowRepo', SearchAttributeType.KEYWORD);
export const DiskflowImage = defineSearchAttributeKey('DiskflowImage', SearchAttributeType.KEYWORD);
export const DiskflowOperation = defineSearchAttributeKey('DiskflowOperation', SearchAttributeType.KEYWORD);
export const DiskflowHost = defineSearchAttributeKey('DiskflowHost', SearchAttributeType.KEYWORD);

export const SEARCH_ATTRIBUTES = [DiskflowRepo, DiskflowImage, DiskflowOperation, DiskflowHost];
