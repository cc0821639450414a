import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { rawMember, withRawMembers } from '../../src/http/raw-json.js';

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
