/**
 * Request signing of PROTOCOL.md §3, unit level: every worked example of
 * hmac-vectors.json, and the corners of the canonical path (decoding, encoding, sorting).
 */
import { createHmac } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  NONCE_MAX_LENGTH,
  SIGNATURE_WINDOW_SECONDS,
  canonicalPath,
  percentDecode,
  rfc3986,
  signingPrefix,
  splitTarget,
  signingAmbiguity,
} from '../src/signing.js';
import { AMBIGUOUS_VECTORS, SPEC_VECTORS_URL, VECTORS, VECTORS_URL } from './vectors.js';

const hmac = (key: string, prefix: string, body: string): string =>
  createHmac('sha256', key).update(prefix).update(Buffer.from(body, 'utf8')).digest('hex');

describe('[ext] hmac-ambiguous.json: requests the 2.1 algorithm signs alike', () => {
  const readsQuery = (path: string): boolean => /^\/(claim|result\/)/.test(path);
  it.each(AMBIGUOUS_VECTORS.map((v) => [`${v.nonce} ${v.method} ${v.raw_path}`, v]))(
    '%s: its twin signs the same and is refused, the vector is not',
    (_name, v) => {
      const canonical = canonicalPath(v.raw_path, v.raw_query);
      expect(canonical).toBe(v.canonical_path);
      const twin = splitTarget(v.refused_twin);
      // A fragment never reaches canonicalPath: the router has dropped it by then.
      if (!v.refused_twin.includes('#'))
        expect(canonicalPath(twin.path, twin.query)).toBe(canonical);
      const prefix = signingPrefix(v.method, canonical, v.timestamp, v.nonce);
      expect(hmac(v.api_key, prefix, v.body_utf8)).toBe(v.signature);
      const target = v.raw_query ? `${v.raw_path}?${v.raw_query}` : v.raw_path;
      expect(signingAmbiguity(target, readsQuery(v.raw_path))).toBeNull();
      expect(signingAmbiguity(v.refused_twin, readsQuery(twin.path))).toMatch(/^Unsignable/);
    },
  );

  it('no vector of hmac-vectors.json is ambiguous', () => {
    for (const v of VECTORS) {
      const target = v.raw_query ? `${v.raw_path}?${v.raw_query}` : v.raw_path;
      expect(signingAmbiguity(target, readsQuery(v.raw_path)), v.nonce).toBeNull();
    }
  });
});

describe('hmac-vectors.json (PROTOCOL.md §3)', () => {
  it('holds vectors', () => {
    expect(VECTORS.length).toBeGreaterThanOrEqual(9);
  });

  describe.each(VECTORS.map((v) => [`${v.nonce} ${v.method} ${v.raw_path}?${v.raw_query}`, v]))(
    '%s',
    (_name, v) => {
      it('derives canonical_path from raw_path and raw_query', () => {
        expect(canonicalPath(v.raw_path, v.raw_query)).toBe(v.canonical_path);
      });

      it('splits the request target into raw_path and raw_query', () => {
        const target = v.raw_query ? `${v.raw_path}?${v.raw_query}` : v.raw_path;
        expect(splitTarget(target)).toEqual({ path: v.raw_path, query: v.raw_query });
      });

      it('signs to the vector signature (HMAC-SHA256 over prefix + body bytes)', () => {
        const canonical = canonicalPath(v.raw_path, v.raw_query);
        const prefix = signingPrefix(v.method, canonical, v.timestamp, v.nonce);
        expect(prefix).toBe(`${v.method}\n${v.canonical_path}\n${v.timestamp}\n${v.nonce}\n`);
        expect(hmac(v.api_key, prefix, v.body_utf8)).toBe(v.signature);
      });

      it('signs the lower-case method as its upper case', () => {
        const canonical = canonicalPath(v.raw_path, v.raw_query);
        const prefix = signingPrefix(v.method.toLowerCase(), canonical, v.timestamp, v.nonce);
        expect(hmac(v.api_key, prefix, v.body_utf8)).toBe(v.signature);
      });

      it('signs to something else when any part changes', () => {
        const canonical = canonicalPath(v.raw_path, v.raw_query);
        const other = (s: string): string => s.slice(0, -1) + (s.endsWith('x') ? 'y' : 'x');
        const variants = [
          hmac(
            v.api_key,
            signingPrefix(v.method, other(canonical), v.timestamp, v.nonce),
            v.body_utf8,
          ),
          hmac(
            v.api_key,
            signingPrefix(v.method, canonical, other(v.timestamp), v.nonce),
            v.body_utf8,
          ),
          hmac(
            v.api_key,
            signingPrefix(v.method, canonical, v.timestamp, other(v.nonce)),
            v.body_utf8,
          ),
          hmac(
            v.api_key,
            signingPrefix(v.method, canonical, v.timestamp, v.nonce),
            v.body_utf8 + ' ',
          ),
          hmac(
            other(v.api_key),
            signingPrefix(v.method, canonical, v.timestamp, v.nonce),
            v.body_utf8,
          ),
        ];
        for (const s of variants) expect(s).not.toBe(v.signature);
      });
    },
  );
});

describe('percentDecode', () => {
  it('decodes valid %XX sequences, either case of hex digit', () => {
    expect(percentDecode('node%20status')).toBe('node status');
    expect(percentDecode('a%2Fb')).toBe('a/b');
    expect(percentDecode('a%2fb')).toBe('a/b');
    expect(percentDecode('%41%42%43')).toBe('ABC');
  });

  it('keeps malformed sequences as they are', () => {
    expect(percentDecode('%zz')).toBe('%zz');
    expect(percentDecode('a%zzb')).toBe('a%zzb');
    expect(percentDecode('%2')).toBe('%2');
    expect(percentDecode('100%')).toBe('100%');
    expect(percentDecode('%%41')).toBe('%A');
    expect(percentDecode('%g1%41')).toBe('%g1A');
  });

  it('reads + as a space only when asked (queries), never %2B', () => {
    expect(percentDecode('hello+world')).toBe('hello+world');
    expect(percentDecode('hello+world', true)).toBe('hello world');
    expect(percentDecode('a%2Bb', true)).toBe('a+b');
    expect(percentDecode('a%2Bb')).toBe('a+b');
    expect(percentDecode('+%20+', true)).toBe('   ');
  });

  it('reads decoded bytes as UTF-8 and keeps raw non-ASCII text', () => {
    expect(percentDecode('caf%C3%A9')).toBe('café');
    expect(percentDecode('caf%c3%a9')).toBe('café');
    expect(percentDecode('%E2%98%83')).toBe('☃');
    expect(percentDecode('%F0%9F%98%80')).toBe('😀');
    expect(percentDecode('café')).toBe('café');
    expect(percentDecode('café%20☃')).toBe('café ☃');
    expect(percentDecode('😀%20x')).toBe('😀 x');
  });

  it('replaces bytes that are not UTF-8 with U+FFFD, as a lenient decoder does', () => {
    expect(percentDecode('%FF')).toBe('\uFFFD');
    expect(percentDecode('a%C3b')).toBe('a\uFFFDb');
  });

  it('leaves text without % (and without + in queries) unchanged', () => {
    expect(percentDecode('')).toBe('');
    expect(percentDecode('/intent')).toBe('/intent');
    expect(percentDecode('a.b-c_d~x', true)).toBe('a.b-c_d~x');
  });
});

describe('rfc3986', () => {
  it('leaves only A-Z a-z 0-9 - . _ ~ unescaped', () => {
    const unreserved = 'ABCXYZabcxyz0189-._~';
    expect(rfc3986(unreserved)).toBe(unreserved);
    expect(rfc3986('~')).toBe('~');
  });

  it("escapes ! ' ( ) * too, which encodeURIComponent would leave", () => {
    expect(rfc3986('!')).toBe('%21');
    expect(rfc3986("'")).toBe('%27');
    expect(rfc3986('(')).toBe('%28');
    expect(rfc3986(')')).toBe('%29');
    expect(rfc3986('*')).toBe('%2A');
    expect(rfc3986("a!b'c(d)e*f")).toBe('a%21b%27c%28d%29e%2Af');
  });

  it('escapes reserved characters and space with upper-case hex', () => {
    expect(rfc3986('/')).toBe('%2F');
    expect(rfc3986(',')).toBe('%2C');
    expect(rfc3986(' ')).toBe('%20');
    expect(rfc3986('+')).toBe('%2B');
    expect(rfc3986('=')).toBe('%3D');
    expect(rfc3986('&')).toBe('%26');
    expect(rfc3986('%')).toBe('%25');
    expect(rfc3986('?#[]@:;$')).toBe('%3F%23%5B%5D%40%3A%3B%24');
  });

  it('escapes non-ASCII as its UTF-8 bytes', () => {
    expect(rfc3986('é')).toBe('%C3%A9');
    expect(rfc3986('café~x')).toBe('caf%C3%A9~x');
    expect(rfc3986('☃')).toBe('%E2%98%83');
    expect(rfc3986('😀')).toBe('%F0%9F%98%80');
  });

  it('round-trips through percentDecode', () => {
    for (const s of ["a b/c,d+e!f'g(h)i*j~k", 'héllo ☃ 😀', '%zz', '=&?']) {
      expect(percentDecode(rfc3986(s))).toBe(s);
      expect(percentDecode(rfc3986(s), true)).toBe(s);
    }
  });
});

describe('canonicalPath', () => {
  it('is the decoded path alone when the query is empty', () => {
    expect(canonicalPath('/intent', '')).toBe('/intent');
    expect(canonicalPath('/set/node%20status', '')).toBe('/set/node status');
    expect(canonicalPath('/set/caf%C3%A9', '')).toBe('/set/café');
  });

  it('does not read + in the path as a space, nor re-encode the path', () => {
    expect(canonicalPath('/set/a+b', '')).toBe('/set/a+b');
    expect(canonicalPath('/set/a%2Fb', '')).toBe('/set/a/b');
    expect(canonicalPath('/set/%zz', '')).toBe('/set/%zz');
  });

  it('decodes + as a space in the query and re-encodes it as %20', () => {
    expect(canonicalPath('/claim', 'goal=hello+world')).toBe('/claim?goal=hello%20world');
    expect(canonicalPath('/claim', 'goal=hello%20world')).toBe('/claim?goal=hello%20world');
    expect(canonicalPath('/claim', 'goal=a%2Bb')).toBe('/claim?goal=a%2Bb');
  });

  it('sorts the pairs by key, upper case before lower case (code point order)', () => {
    expect(canonicalPath('/c', 'namespace=default&goal=x')).toBe('/c?goal=x&namespace=default');
    expect(canonicalPath('/c', 'b=1&B=2&a=3')).toBe('/c?B=2&a=3&b=1');
  });

  it('sorts by the decoded key', () => {
    expect(canonicalPath('/c', 'b=1&%61=2')).toBe('/c?a=2&b=1');
    expect(canonicalPath('/c', 'a%20b=1&a=2')).toBe('/c?a=2&a%20b=1');
  });

  it('keeps repeated keys in their order (stable sort, not by value)', () => {
    expect(canonicalPath('/c', 'a=2&a=1')).toBe('/c?a=2&a=1');
    expect(canonicalPath('/c', 'b=1&a=3&a=1&a=2')).toBe('/c?a=3&a=1&a=2&b=1');
    expect(canonicalPath('/c', 'z=9&a=b&m=0&a=a')).toBe('/c?a=b&a=a&m=0&z=9');
  });

  it('keeps blank values, and counts a pair without = as a blank value', () => {
    expect(canonicalPath('/c', 'z=&a=1')).toBe('/c?a=1&z=');
    expect(canonicalPath('/c', 'flag&a=1')).toBe('/c?a=1&flag=');
    expect(canonicalPath('/c', 'flag')).toBe('/c?flag=');
    expect(canonicalPath('/c', 'flag&flag=')).toBe('/c?flag=&flag=');
  });

  it('splits a pair at its first = only', () => {
    expect(canonicalPath('/c', 'a=b=c')).toBe('/c?a=b%3Dc');
  });

  it("escapes ! ' ( ) * , / and keeps ~ in keys and values", () => {
    expect(canonicalPath('/c', "q=!'()*&k~=~")).toBe('/c?k~=~&q=%21%27%28%29%2A');
    expect(canonicalPath('/c', 'capabilities=ffmpeg,gpu&goal=a/b')).toBe(
      '/c?capabilities=ffmpeg%2Cgpu&goal=a%2Fb',
    );
  });

  it('normalises the encoding: raw, lower-case and upper-case escapes sign alike', () => {
    const expected = '/claim?goal=caf%C3%A9~x';
    expect(canonicalPath('/claim', 'goal=caf%C3%A9~x')).toBe(expected);
    expect(canonicalPath('/claim', 'goal=caf%c3%a9%7Ex')).toBe(expected);
    expect(canonicalPath('/claim', 'goal=café~x')).toBe(expected);
  });

  it('keeps a malformed escape in the query as text (its % re-encoded)', () => {
    expect(canonicalPath('/c', 'a=%zz')).toBe('/c?a=%25zz');
    expect(canonicalPath('/c', 'a=100%')).toBe('/c?a=100%25');
  });
});

describe('splitTarget and signingPrefix', () => {
  it('splits at the first ?', () => {
    expect(splitTarget('/claim')).toEqual({ path: '/claim', query: '' });
    expect(splitTarget('/claim?')).toEqual({ path: '/claim', query: '' });
    expect(splitTarget('/claim?a=1?b')).toEqual({ path: '/claim', query: 'a=1?b' });
  });

  it('joins METHOD, canonical path, timestamp and nonce with newlines, body next', () => {
    expect(signingPrefix('post', '/intent', '1764216000', 'n-1')).toBe(
      'POST\n/intent\n1764216000\nn-1\n',
    );
  });

  it('uses the window and nonce length of §3', () => {
    expect(SIGNATURE_WINDOW_SECONDS).toBe(300);
    expect(NONCE_MAX_LENGTH).toBe(128);
  });
});

describe('the vectors kept in the repository', () => {
  it('are the spec’s own, when the spec folder is beside the repository', () => {
    if (!existsSync(SPEC_VECTORS_URL)) return; // a clone without ../shared: nothing to compare
    const read = (url: URL): unknown => JSON.parse(readFileSync(url, 'utf8'));
    expect(read(VECTORS_URL)).toEqual(read(SPEC_VECTORS_URL));
  });
});
