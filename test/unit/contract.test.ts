import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { DiskflowError, ERROR_CODES } from '../../api/errors';
import { codeOf, toApplicationFailure, toDiskflowError } from '../../api/failures';
import { CreateSnapshotInput } from '../../api/operations';
import { parseInput } from '../../api/validation';
import { renderJsonSchemas, SCHEMAS_DIR } from '../../scripts/json-schemas';

describe('the contract', () => {
  it('the committed JSON Schemas are what the zod schemas generate (run `npm run schemas` after changing them)', () => {
    const expected = renderJsonSchemas();
    const committed = Object.fromEntries(readdirSync(SCHEMAS_DIR).map((name) => [name, readFileSync(join(SCHEMAS_DIR, name), 'utf8')]));
    expect(committed).toEqual(expected);
  });

  it.each(ERROR_CODES)('%s survives the trip through a Temporal failure and back', (code) => {
    const failure = toApplicationFailure(new DiskflowError(code, 'why'));
    expect(failure.type).toBe(code);
    expect(codeOf(failure)).toBe(code);
    expect(toDiskflowError(failure)).toMatchObject({ code, message: 'why' });
    expect(failure.nonRetryable).toBe(code !== 'STORAGE_ERROR');
  });

  it('a failure without a code becomes STORAGE_ERROR with its causes in the message', () => {
    const error = toDiskflowError(ApplicationFailure.create({ message: 'outer', cause: new Error('inner') }));
    expect(error.code).toBe('STORAGE_ERROR');
    expect(error.message).toContain('outer');
  });

  it('createSnapshot refuses the options it could not honour: a strategy other than space, lookup options', () => {
    const snapshot = (options: Record<string, unknown>) => () =>
      parseInput(CreateSnapshotInput, { hostId: 'h', targetRepoId: 'r', baseVirtualDiskId: '00000000-0000-4000-8000-000000000000', userData: {}, options }, 'input');
    expect(snapshot({ strategy: 'space' })()).toMatchObject({ options: { strategy: 'space', autoFix: true } });
    for (const options of [{ strategy: 'performance' }, { imageHints: { '00000000-0000-4000-8000-000000000000': 'r' } }, { participatingRepositories: ['r'] }]) {
      expect(snapshot(options)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
  });
});
