import { describe, expect, it } from 'vitest';
import { randomHex128, timeOrderedId } from '../../src/ids.js';

describe('randomHex128', () => {
  it('gives 32 lowercase hex characters, never the same twice across pool refills', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const id = randomHex128();
      expect(id).toMatch(/^[0-9a-f]{32}$/);
      seen.add(id);
    }
    expect(seen.size).toBe(2000);
  });

  it('spreads its bits: every hex digit appears in every position', () => {
    const digits = Array.from({ length: 32 }, () => new Set<string>());
    for (let i = 0; i < 2000; i++) [...randomHex128()].forEach((c, p) => digits[p]!.add(c));
    for (const d of digits) expect(d.size).toBe(16);
  });
});

describe('timeOrderedId', () => {
  it('is 12 hex digits of the time in ms, then 20 random ones', () => {
    const at = Date.UTC(2026, 11, 2, 1, 30);
    const ids = Array.from({ length: 2000 }, () => timeOrderedId(at));
    for (const id of ids) {
      expect(id).toMatch(/^[0-9a-f]{32}$/);
      expect(parseInt(id.slice(0, 12), 16)).toBe(at);
    }
    expect(new Set(ids).size).toBe(2000);
    const digits = Array.from({ length: 20 }, () => new Set<string>());
    for (const id of ids) [...id.slice(12)].forEach((c, p) => digits[p]!.add(c));
    for (const d of digits) expect(d.size).toBe(16);
  });

  it('sorts as the times do, a later millisecond after an earlier one', () => {
    const times = [0, 1, 255, 256, 1_700_000_000_000, 1_700_000_000_001, 2 ** 48 - 1];
    const ids = times.map((t) => timeOrderedId(t));
    expect([...ids].sort()).toEqual(ids);
    expect(ids[0]!.slice(0, 12)).toBe('000000000000');
    expect(ids.at(-1)!.slice(0, 12)).toBe('ffffffffffff');
  });
});
