import { describe, expect, it } from 'vitest';
import { randomHex128 } from '../../src/ids.js';

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
