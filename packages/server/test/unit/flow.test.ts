/** Flow control's pure part (core/flow.ts): what a change makes of a control, and holds. */
import { describe, expect, it } from 'vitest';
import { holdOf, mergeFlow, windowTime, type FlowControl } from '../../src/core/flow.js';

const T = 1_800_000_000_000;
const base: FlowControl = {
  namespace: 'n',
  goal: 'g',
  paused: false,
  maxInFlight: null,
  rate: null,
  updatedAt: T,
};
const idle = { inFlight: 0, recent: 0, oldestRecentAt: null };

describe('flow controls', () => {
  it('merge a change: members not given stay, null clears, nothing left is no control', () => {
    const a = mergeFlow(null, 'n', 'g', { paused: true }, T)!;
    expect(a).toEqual({ ...base, paused: true });
    const b = mergeFlow(a, 'n', 'g', { maxInFlight: 3 }, T + 1)!;
    expect(b).toEqual({ ...base, paused: true, maxInFlight: 3, updatedAt: T + 1 });
    const c = mergeFlow(b, 'n', 'g', { rate: { limit: 5, per: 2 }, paused: false }, T + 2)!;
    expect(c).toMatchObject({ paused: false, maxInFlight: 3, rate: { limit: 5, per: 2 } });
    expect(mergeFlow(c, 'n', 'g', { maxInFlight: null }, T)).toMatchObject({ maxInFlight: null });
    expect(mergeFlow(c, 'n', 'g', { maxInFlight: null, rate: null }, T)).toBeNull();
    expect(mergeFlow(null, 'n', 'g', {}, T)).toBeNull();
  });

  it('hold a claim: paused first, then in flight, then the rate with its next slot', () => {
    const all = { ...base, paused: true, maxInFlight: 2, rate: { limit: 3, per: 10 } };
    const busy = { inFlight: 2, recent: 3, oldestRecentAt: T - 4000 };
    expect(holdOf(all, busy, T)).toEqual({ by: 'paused', retryAt: null });
    expect(holdOf({ ...all, paused: false }, busy, T)).toEqual({
      by: 'max_in_flight',
      retryAt: T + 1000,
    });
    expect(holdOf({ ...all, paused: false, maxInFlight: 3 }, busy, T)).toEqual({
      by: 'rate',
      retryAt: T + 6000,
    });
    expect(holdOf({ ...all, paused: false }, idle, T)).toBeNull();
    expect(holdOf(base, busy, T)).toBeNull();
  });

  it('reckon a rate window at the later of now and its newest claim', () => {
    expect(windowTime(T, null)).toBe(T);
    expect(windowTime(T, T - 5)).toBe(T);
    expect(windowTime(T, T + 5)).toBe(T + 5);
  });
});
