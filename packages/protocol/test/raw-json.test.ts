import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalJsonText,
  rawItems,
  rawMember,
  withoutMember,
  withRawMembers,
} from '../src/raw-json.js';

describe('raw JSON members', () => {
  it('finds the exact text of a top-level member', () => {
    const text =
      '{ "a" : 1.0 , "payload":{"id":1234567890123456789,"s":"x\\"}y"} ,"b":[1,{"c":"]"}]}';
    expect(rawMember(text, 'payload')).toBe('{"id":1234567890123456789,"s":"x\\"}y"}');
    expect(rawMember(text, 'a')).toBe('1.0');
    expect(rawMember(text, 'b')).toBe('[1,{"c":"]"}]');
    expect(rawMember(text, 'missing')).toBeUndefined();
    expect(rawMember('[1,2]', 'a')).toBeUndefined();
    expect(rawMember('{"a":1,"a":2}', 'a')).toBe('2');
    expect(rawMember('{"\\u0061":true}', 'a')).toBe('true');
  });

  it('agrees with JSON.parse on any object, however it is spaced', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string(), fc.jsonValue()),
        fc.constantFrom(undefined, 2, '\t'),
        (obj, space) => {
          const text = JSON.stringify(obj, null, space);
          for (const key of Object.keys(obj)) {
            const raw = rawMember(text, key);
            expect(raw).toBeDefined();
            expect(JSON.parse(raw!)).toEqual(JSON.parse(text)[key]);
          }
        },
      ),
    );
  });

  it('splices raw members into an object', () => {
    expect(withRawMembers({ id: 'x' }, { payload: '{"n":1.0}', result: null })).toBe(
      '{"id":"x","payload":{"n":1.0},"result":null}',
    );
    expect(withRawMembers({}, { value: '12345678901234567890' })).toBe(
      '{"value":12345678901234567890}',
    );
  });
});

describe('canonical JSON text', () => {
  const same = (a: string, b: string): void =>
    expect(canonicalJsonText(a)).toBe(canonicalJsonText(b));
  const differ = (a: string, b: string): void =>
    expect(canonicalJsonText(a)).not.toBe(canonicalJsonText(b));

  it('compares numbers as exact decimals, not as doubles', () => {
    differ('{"id":12345678901234567890}', '{"id":12345678901234567891}');
    differ('[0.1000000000000000000001]', '[0.1]');
    same('[1.0, 1, 1e0, 10E-1, 0.1e1, 1.000e+0]', '[1,1,1,1,1,1]');
    same('[-0, 0.0, 0e5]', '[0,0,0]');
    same('[-12.50]', '[-1250e-2]');
    differ('[-1]', '[1]');
  });

  it('ignores spacing, key order and escapes; a repeated key is its last value', () => {
    same('{ "b" : [ 1 , {"d":2,"c":3} ], "a":"\\u0041" }', '{"a":"\\u0041","b":[1,{"c":3,"d":2}]}');
    same('{"a":"\u0041"}', '{"a":"A"}');
    same('{"a":1,"a":2}', '{"a":2}');
    differ('{"a":[1,2]}', '{"a":[2,1]}');
    differ('{"a":"1"}', '{"a":1}');
  });

  it('denotes the value it was given, whatever the spacing and key order', () => {
    const reordered = (v: unknown): unknown => {
      if (Array.isArray(v)) return v.map(reordered);
      if (v === null || typeof v !== 'object') return v;
      return Object.fromEntries(
        Object.entries(v)
          .reverse()
          .map(([k, x]) => [k, reordered(x)]),
      );
    };
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const text = JSON.stringify(v);
        const canonical = canonicalJsonText(text);
        expect(JSON.parse(canonical)).toEqual(JSON.parse(text));
        expect(canonicalJsonText(JSON.stringify(reordered(v), null, 2))).toBe(canonical);
      }),
    );
  });
});

describe('raw JSON items and a member left out (batches, issue 21)', () => {
  it('gives the exact text of each item of an array', () => {
    expect(rawItems(' [ 1.0 , {"a":[1,"]"]} ,"x\\"]" ,[] ]')).toEqual([
      '1.0',
      '{"a":[1,"]"]}',
      '"x\\"]"',
      '[]',
    ]);
    expect(rawItems('[]')).toEqual([]);
    expect(rawItems('{"a":1}')).toBeUndefined();
  });

  it('agrees with JSON.parse on any array, however it is spaced', () => {
    fc.assert(
      fc.property(fc.array(fc.jsonValue()), fc.constantFrom(undefined, 2), (arr, space) => {
        const text = JSON.stringify(arr, null, space);
        const items = rawItems(text)!;
        expect(items.map((t) => JSON.parse(t))).toEqual(JSON.parse(text));
      }),
    );
  });

  it('leaves a member out, every other kept as written', () => {
    expect(withoutMember('{ "k" : "x", "payload":1.0 ,"k":2, "b":[1]}', 'k')).toBe(
      '{"payload":1.0,"b":[1]}',
    );
    expect(withoutMember('{"a":1}', 'k')).toBe('{"a":1}');
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), fc.string(), (obj, key) => {
        const rest = { ...obj };
        delete rest[key];
        expect(JSON.parse(withoutMember(JSON.stringify(obj, null, 1), key))).toEqual(
          JSON.parse(JSON.stringify(rest)),
        );
      }),
    );
  });
});
