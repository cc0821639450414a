/**
 * How the CLI shows a JSON text to people: indented as JSON.stringify(value, null, 2) lays
 * it out, every string and number as written.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { indentJson, showJson } from '../src/output.js';

describe('indentJson', () => {
  it('lays out any JSON text as JSON.stringify(value, null, 2), however it was spaced', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.constantFrom(undefined, 1, 4, '\t', ' \r\n '), (v, space) => {
        expect(indentJson(JSON.stringify(v, null, space))).toBe(JSON.stringify(v, null, 2));
      }),
    );
  });

  it('keeps numbers and strings as written', () => {
    expect(indentJson('{"n":12345678901234567890, "r" : [1.0,1e400,-0.0],"e":{ },"l":[ ]}')).toBe(
      '{\n  "n": 12345678901234567890,\n  "r": [\n    1.0,\n    1e400,\n    -0.0\n  ],\n' +
        '  "e": {},\n  "l": []\n}',
    );
    expect(indentJson('{"s":"a\\"{,:}[\\\\","t":"\\u0041"}')).toBe(
      '{\n  "s": "a\\"{,:}[\\\\",\n  "t": "\\u0041"\n}',
    );
    expect(indentJson(' -98765432109876543210 ')).toBe('-98765432109876543210');
  });

  it('showJson shows a string as its text, anything else indented', () => {
    expect(showJson('"two\\nlines"')).toBe('two\nlines');
    expect(showJson('[0.1000000000000000000001]')).toBe('[\n  0.1000000000000000000001\n]');
  });
});
