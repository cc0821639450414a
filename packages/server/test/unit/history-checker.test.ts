import { describe, expect, it } from 'vitest';
import { check, violations, type History } from '../reliability/history.js';

/** One intent claimed with token t1 at 10 and fulfilled with it at 20: a clean history. */
function clean(): History {
  return {
    acknowledged: new Set(['a', 'b']),
    claims: [
      { id: 'a', token: 't1', at: 10 },
      { id: 'b', token: 'u1', at: 11 },
    ],
    fulfils: [
      { id: 'a', token: 't1', sentAt: 20, status: 200 },
      { id: 'b', token: 'u1', sentAt: 21, status: 0 },
    ],
    finals: new Map([
      ['a', { status: 'fulfilled', result: 't1' }],
      ['b', { status: 'dead', dead_reason: 'lease expired' }],
    ]),
  };
}

describe('the history checker', () => {
  it('passes a clean history and counts how it ended', () => {
    const v = check(clean());
    expect(violations(v)).toBe(0);
    expect(v).toMatchObject({ checked: 2, fulfilled: 1, dead: 1 });
  });

  it('finds an acknowledged intent that is missing, unfinished, or dead without a reason', () => {
    for (const final of [undefined, { status: 'open' }, { status: 'dead' }]) {
      const h = clean();
      if (final) h.finals.set('b', final);
      else h.finals.delete('b');
      expect(check(h).lost).toEqual(['b']);
    }
  });

  it('finds an intent fulfilled twice', () => {
    const h = clean();
    h.claims.push({ id: 'a', token: 't2', at: 30 });
    h.fulfils.push({ id: 'a', token: 't2', sentAt: 40, status: 200 });
    h.finals.set('a', { status: 'fulfilled', result: 't2' });
    expect(check(h).doubleFulfilled).toEqual(['a']);
  });

  it('finds a token that succeeded after a later claim had been handed out', () => {
    const h = clean();
    h.claims.push({ id: 'a', token: 't2', at: 15 });
    expect(check(h).staleSuccesses).toEqual(['a']);
    // A claim handed out only after the fulfil was sent does not make it stale.
    const later = clean();
    later.claims.push({ id: 'a', token: 't2', at: 25 });
    expect(check(later).staleSuccesses).toEqual([]);
  });

  it('finds a fulfil answered 200 that the final state does not show', () => {
    const h = clean();
    h.finals.set('a', { status: 'open' });
    expect(check(h).undurable).toEqual(['a']);
    const other = clean();
    other.finals.set('a', { status: 'fulfilled', result: 'someone else' });
    expect(check(other).undurable).toEqual(['a']);
  });

  it('finds a fulfil answered 200 for a token no claim handed out', () => {
    const h = clean();
    h.fulfils.push({ id: 'b', token: 'forged', sentAt: 50, status: 200 });
    expect(check(h).unknownTokens).toEqual(['b']);
  });
});
