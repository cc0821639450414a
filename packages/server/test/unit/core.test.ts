import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { afterFailure, backoffMs } from '../../src/core/lifecycle.js';
import {
  matchesClaim,
  parseCapabilities,
  type ClaimFilter,
  type RoutingAttrs,
} from '../../src/core/routing.js';
import {
  clampKvTtl,
  nestingExceeds,
  normalizePublish,
  truncateError,
} from '../../src/core/validate.js';
import { BusError } from '../../src/core/errors.js';

describe('backoff and failure outcome', () => {
  it('is base * 2^n plus jitter in [0, 2) seconds', () => {
    expect(backoffMs(5, 1, () => 0)).toBe(10_000);
    expect(backoffMs(5, 2, () => 0.5)).toBe(21_000);
    fc.assert(
      fc.property(
        fc.double({ min: 1, max: 3600, noNaN: true }),
        fc.integer({ min: 1, max: 20 }),
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        (base, n, r) => {
          const ms = backoffMs(base, n, () => r);
          const floor = base * 2 ** n * 1000;
          return ms >= Math.round(floor) && ms <= Math.round(floor + 2000);
        },
      ),
    );
  });

  it('goes back to open while attempts remain, dead after the last', () => {
    const row = { claimAttempts: 1, maxAttempts: 3, backoffBase: 5 };
    expect(afterFailure(row, 1_000_000, () => 0)).toEqual({ status: 'open', runAt: 1_010_000 });
    expect(afterFailure({ ...row, claimAttempts: 3 }, 1_000_000, () => 0)).toEqual({
      status: 'dead',
    });
  });
});

describe('routing predicate', () => {
  const intent: RoutingAttrs = {
    namespace: 'default',
    goal: 'g',
    visibility: 'private',
    publisher: 'kid_a',
    targetWorker: null,
    requiredCapability: null,
  };
  const claim: ClaimFilter = {
    keyId: 'kid_a',
    namespace: 'default',
    goal: null,
    publisher: null,
    workerId: null,
    capabilities: [],
  };

  it('applies every rule of §4', () => {
    expect(matchesClaim(intent, claim)).toBe(true);
    expect(matchesClaim(intent, { ...claim, namespace: 'other' })).toBe(false);
    expect(matchesClaim(intent, { ...claim, goal: 'h' })).toBe(false);
    expect(matchesClaim(intent, { ...claim, keyId: 'kid_b' })).toBe(false);
    expect(matchesClaim({ ...intent, visibility: 'public' }, { ...claim, keyId: 'kid_b' })).toBe(
      true,
    );
    expect(
      matchesClaim({ ...intent, visibility: 'public' }, { ...claim, publisher: 'kid_b' }),
    ).toBe(false);
    expect(matchesClaim(intent, { ...claim, keyId: 'main', publisher: 'kid_a' })).toBe(true);
    expect(matchesClaim({ ...intent, targetWorker: 'w1' }, claim)).toBe(false);
    expect(matchesClaim({ ...intent, targetWorker: 'w1' }, { ...claim, workerId: 'w1' })).toBe(
      true,
    );
    expect(
      matchesClaim({ ...intent, requiredCapability: 'gpu' }, { ...claim, capabilities: ['GPU'] }),
    ).toBe(false);
    expect(
      matchesClaim(
        { ...intent, requiredCapability: 'gpu' },
        { ...claim, capabilities: ['a', 'gpu'] },
      ),
    ).toBe(true);
  });

  it('parses capability lists', () => {
    expect(parseCapabilities(' whisper, ffmpeg ,gpu,, ')).toEqual(['whisper', 'ffmpeg', 'gpu']);
    expect(parseCapabilities(undefined)).toEqual([]);
  });
});

describe('validation', () => {
  const nest = (depth: number): unknown => {
    let v: unknown = 1;
    for (let i = 0; i < depth; i++) v = [v];
    return v;
  };

  it('measures nesting without recursion', () => {
    expect(nestingExceeds(nest(10), 10)).toBe(false);
    expect(nestingExceeds(nest(11), 10)).toBe(true);
    expect(nestingExceeds(nest(100_000), 10)).toBe(true);
    expect(nestingExceeds({ a: { b: 'x' } }, 2)).toBe(false);
    expect(nestingExceeds('text', 0)).toBe(false);
  });

  it('resolves publish defaults and times', () => {
    const n = normalizePublish(
      { goal: '  send  ', payload: { a: 1 }, delay: 2, ttl: 10 },
      { id: 'x', publisher: 'kid_a', now: 1_000_000 },
    );
    expect(n).toMatchObject({
      goal: 'send',
      payload: '{"a":1}',
      namespace: 'default',
      visibility: 'private',
      priority: 100,
      maxAttempts: 3,
      backoffBase: 5,
      runAt: 1_002_000,
      expiresAt: 1_012_000,
      targetWorker: null,
    });
    expect(() =>
      normalizePublish({ goal: '   ', payload: 1 }, { id: 'x', publisher: 'p', now: 0 }),
    ).toThrow(BusError);
  });

  it('sets every member of a new intent: what was sent, else the default of §5.1', () => {
    const ctx = { id: 'x', publisher: 'kid_a', now: 1_000_000 };
    expect(normalizePublish({ goal: 'g', payload: null }, ctx)).toEqual({
      id: 'x',
      namespace: 'default',
      goal: 'g',
      payload: 'null',
      publisher: 'kid_a',
      visibility: 'private',
      priority: 100,
      runAt: 1_000_000,
      createdAt: 1_000_000,
      expiresAt: 1_000_000 + 86_400_000,
      maxAttempts: 3,
      backoffBase: 5,
      ttl: 86_400,
      targetWorker: null,
      requiredCapability: null,
      schedule: null,
      scheduledFor: null,
    });
    const sent = {
      goal: 'g',
      payload: [1],
      namespace: 'ns',
      visibility: 'public',
      priority: 7,
      delay: 0.5,
      max_attempts: 9,
      backoff_base: 1.5,
      target_worker: 'w1',
      required_capability: 'gpu',
      ttl: 2,
    } as const;
    expect(normalizePublish(sent, ctx)).toEqual({
      id: 'x',
      publisher: 'kid_a',
      goal: 'g',
      payload: '[1]',
      namespace: 'ns',
      visibility: 'public',
      priority: 7,
      runAt: 1_000_500,
      createdAt: 1_000_000,
      expiresAt: 1_002_500,
      maxAttempts: 9,
      backoffBase: 1.5,
      ttl: 2,
      targetWorker: 'w1',
      requiredCapability: 'gpu',
      schedule: null,
      scheduledFor: null,
    });
    // A null worker or capability is none, as an absent one.
    expect(
      normalizePublish(
        { goal: 'g', payload: 1, target_worker: null, required_capability: null },
        ctx,
      ),
    ).toMatchObject({ targetWorker: null, requiredCapability: null });
  });

  it('clamps KV ttl and cuts errors', () => {
    expect(clampKvTtl(undefined)).toBe(600);
    expect(clampKvTtl(0)).toBe(1);
    expect(clampKvTtl(10 ** 9)).toBe(86_400);
    expect(truncateError('x'.repeat(600))).toHaveLength(500);
    expect(truncateError(null)).toBeNull();
  });
});
