/**
 * What every entry point checks before any schema walks a value (api/validation.ts), the
 * userData limits, and the per-activity input schemas (activities/activity-inputs.ts).
 */
import { describe, expect, it } from 'vitest';
import { checkActivityInput } from '../../activities/activity-defaults';
import { requestIdentity } from '../../api/operations';
import { jsonShapeIssue, parseInput } from '../../api/validation';
import { UserData } from '../../api/values';

const nest = (levels: number): unknown => {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = [value];
  return value;
};

describe('values from outside', () => {
  it('a circular value is refused, naming where it loops, without exhausting the stack', () => {
    const loop: Record<string, unknown> = { a: { b: {} } };
    (loop.a as Record<string, Record<string, unknown>>).b.back = loop;
    expect(jsonShapeIssue({ userData: loop }, 'input')).toBe('input.userData.a.b.back: is circular (contains itself)');
    // Shared parts are no cycle (JSON writes them twice).
    const shared = { x: 1 };
    expect(jsonShapeIssue({ a: shared, b: shared })).toBeNull();
  });

  it('nesting beyond the limit is refused, also far beyond what a recursive walk survives', () => {
    expect(jsonShapeIssue(nest(40))).toBeNull();
    expect(jsonShapeIssue(nest(100_000), 'input')).toMatch(/^input(\.0)+: nests deeper than 48 levels$/);
    expect(() => parseInput(UserData, { d: nest(100_000) }, 'userData')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('__proto__, constructor and prototype keys are refused at any depth, as JSON.parse makes them', () => {
    for (const key of ['__proto__', 'constructor', 'prototype']) {
      const value = JSON.parse(`{"vm":{"tags":[{"${key}":{"admin":true}}]}}`) as unknown;
      expect(() => parseInput(UserData, value, 'userData')).toThrow(
        expect.objectContaining({ code: 'INVALID_ARGUMENT', message: `userData.vm.tags.0.${key}: the keys __proto__, constructor, prototype are not allowed` }),
      );
    }
  });

  it('objects that are not plain JSON objects are refused', () => {
    expect(jsonShapeIssue({ when: new Date(0) })).toBe('when: must be a plain JSON object');
    expect(jsonShapeIssue(Object.create({ inherited: true }))).toBe('value: must be a plain JSON object');
  });

  it('userData nests at most 32 levels of objects and arrays', () => {
    expect(parseInput(UserData, { d: nest(31) })).toBeTruthy();
    expect(() => parseInput(UserData, { d: nest(32) }, 'userData')).toThrow(expect.objectContaining({ message: 'userData: must nest at most 32 levels of objects and arrays' }));
  });
});

describe('activity inputs', () => {
  const step = { repoUuid: '00000000-0000-4000-8000-000000000001', imageId: '00000000-0000-4000-8000-000000000002', operationId: 'fix-1' };

  it('a step with the input diskflow gives it runs; one with a path for an id, an extra field or two inputs does not', () => {
    expect(() => checkActivityInput('mergeVolumes', [{ ...step, upper: step.imageId, lower: step.repoUuid }])).not.toThrow();
    expect(() => checkActivityInput('mergeVolumes', [{ ...step, upper: '../../etc/passwd', lower: step.repoUuid }])).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('mergeVolumes input.upper') }),
    );
    expect(() => checkActivityInput('mendImage', [{ ...step, extra: 1 }])).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => checkActivityInput('mendImage', [step, step])).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => checkActivityInput('cleanOrphans', [{ repoUuid: step.repoUuid, volumes: [], strays: ['../../etc/shadow'] }])).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
  });

  it('an activity diskflow does not have, or a name from Object.prototype, is refused', () => {
    expect(() => checkActivityInput('rm', [{}])).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: 'rm is not a diskflow step' }));
    expect(() => checkActivityInput('constructor', [{}])).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it("an SRM metadata change without diskflow's signature is refused before the SRM sees it", () => {
    expect(() => checkActivityInput('applyMetadataOnSrm', [{ repoUuid: step.repoUuid, call: { method: 'removeVolume', volumeId: step.imageId } }])).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
    expect(() => checkActivityInput('applyMetadataOnSrm', [{ repoUuid: step.repoUuid, operationId: 'x', call: { method: 'removeVolume', volumeId: 'diskflow_metadata' }, signature: 'A'.repeat(43) }])).toThrow(
      expect.objectContaining({ message: expect.stringContaining('volumeId') }),
    );
  });
});

describe('request identity', () => {
  const input = { hostId: 'h', targetRepoId: 'r', size: 1024 };
  it('is the validated input: defaults filled in, key order irrelevant; a fix is its data', () => {
    expect(requestIdentity('createVirtualDisk', input)).toBe(requestIdentity('createVirtualDisk', { size: 1024, targetRepoId: 'r', hostId: 'h', userData: {} }));
    expect(requestIdentity('createVirtualDisk', { ...input, size: 2048 })).not.toBe(requestIdentity('createVirtualDisk', input));
    const fix = { type: 'mend', imageIds: [], description: 'a', bytes: 1, data: 'x.y' };
    const request = { hostId: 'h', repositoryId: 'r', fix };
    expect(requestIdentity('fixStorageRepository', request)).toBe(requestIdentity('fixStorageRepository', { ...request, fix: { ...fix, description: 'b', bytes: 2 } }));
    expect(requestIdentity('createVirtualDisk', { nope: true })).toBeNull();
  });
});
