/**
 * Strict auth (PROTOCOL.md §3) against a real bus over real HTTP: every worked example of
 * hmac-vectors.json verifies, any changed byte is refused, the table of refusals of §3,
 * BUS_REQUIRE_SIGNATURES, canonical forms, nonces, and a Python-SDK-style round trip (§11).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalPath, signingPrefix, splitTarget } from '@intent-bus/protocol';
import { hashKey } from '../src/http/auth.js';
import { MAIN_KEY, errorCode, startTestBus, type ApiResponse, type TestBus } from './helpers.js';
import { AMBIGUOUS_VECTORS, VECTORS, type Vector } from '../../protocol/test/vectors.js';

/** The main key and the tester key the vectors are signed with. */
const VECTOR_MAIN_KEY = 'k_main_0123456789abcdef';
const VECTOR_TESTER_KEY = 'tk_4f1c2a9e8b7d6c5a4f3e2d1c0b9a8f7e';
/** The made-up intent id of the vectors' /fulfill and /result requests. */
const MADE_UP_ID = '0123456789abcdef0123456789abcdef';

const MANY = { BUS_RATE_LIMIT_PER_MINUTE: '100000' };

// ---------------------------------------------------------------------------------------
// A signer, as a 2.1 client does it: HMAC-SHA256 keyed by the API key over
// METHOD \n CANONICAL_PATH \n TIMESTAMP \n NONCE \n BODY.

function sign(
  key: string,
  method: string,
  target: string,
  timestamp: string,
  nonce: string,
  body = '',
): string {
  const { path, query } = splitTarget(target);
  return createHmac('sha256', key)
    .update(signingPrefix(method, canonicalPath(path, query), timestamp, nonce))
    .update(Buffer.from(body, 'utf8'))
    .digest('hex');
}

type SigHeader = 'x-timestamp' | 'x-nonce' | 'x-signature';

interface SignedRequest {
  key: string;
  method: string;
  /** Path and query exactly as on the request line. */
  target: string;
  /** The exact body sent; none when undefined. */
  body?: string;
  timestamp: string | number;
  nonce: string;
  /** Sends Content-Type: application/json; by default only with a body. */
  contentType?: boolean;
  /** What the signature covers, where it differs from what is sent. */
  signed?: { method?: string; target?: string; body?: string; timestamp?: string; nonce?: string };
  /** Sends this signature instead of the computed one. */
  signature?: string;
  /** Leaves these headers out. */
  omit?: SigHeader[];
  headers?: Record<string, string>;
}

async function send(t: TestBus, r: SignedRequest): Promise<ApiResponse> {
  const timestamp = String(r.timestamp);
  const s = r.signed ?? {};
  const signature =
    r.signature ??
    sign(
      r.key,
      s.method ?? r.method,
      s.target ?? r.target,
      s.timestamp ?? timestamp,
      s.nonce ?? r.nonce,
      s.body ?? r.body ?? '',
    );
  const headers: Record<string, string> = {
    'x-timestamp': timestamp,
    'x-nonce': r.nonce,
    'x-signature': signature,
  };
  for (const h of r.omit ?? []) delete headers[h];
  if (r.contentType ?? r.body !== undefined) headers['content-type'] = 'application/json';
  Object.assign(headers, r.headers);
  if (r.target.includes('#')) return sendRaw(t, r.method, r.target, r.key, headers, r.body);
  return t.api(r.method, r.target, { key: r.key, raw: r.body, headers });
}

/** fetch drops a fragment from the URL; node:http sends the request target as it is. */
function sendRaw(
  t: TestBus,
  method: string,
  target: string,
  key: string,
  headers: Record<string, string>,
  body?: string,
): Promise<ApiResponse> {
  return new Promise((resolve, reject) => {
    const url = new URL(t.url);
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method,
        path: target,
        headers: { ...headers, 'x-api-key': key },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          const h = new Headers();
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h.set(k, v);
          resolve({ status: res.statusCode ?? 0, headers: h, text, json: JSON.parse(text) });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function expectRefused(r: ApiResponse, status: number, code: string, message: string): void {
  expect(r.status, r.text).toBe(status);
  expect(errorCode(r)).toBe(code);
  expect(r.json.error.message).toContain(message);
}

const expectBadSignature = (r: ApiResponse): void =>
  expectRefused(r, 403, 'invalid_signature', 'Bad signature');

/** Passed the signature check: any 2xx (a status is never 401 or 403 here). */
function expectAccepted(r: ApiResponse): void {
  expect(r.status, r.text).toBeGreaterThanOrEqual(200);
  expect(r.status, r.text).toBeLessThan(300);
}

const freshNonce = (): string => randomBytes(16).toString('hex');

/** The same text with its character at `i` replaced by another of the same kind. */
function changeAt(s: string, i: number): string {
  const c = s[i]!;
  let d: string;
  if (/[0-9]/.test(c)) d = c === '9' ? '8' : String(Number(c) + 1);
  else if (/[a-f]/.test(c) && /^[0-9a-f]+$/.test(s)) d = c === 'f' ? 'e' : 'f';
  else if (/[a-z]/.test(c)) d = c === 'z' ? 'y' : String.fromCharCode(c.charCodeAt(0) + 1);
  else if (/[A-Z]/.test(c)) d = c === 'Z' ? 'Y' : String.fromCharCode(c.charCodeAt(0) + 1);
  else d = c === 'x' ? 'y' : 'x';
  return s.slice(0, i) + d + s.slice(i + 1);
}
const changeLast = (s: string): string => changeAt(s, s.length - 1);

/** Sorted compact JSON with non-ASCII unescaped, as the Python SDK writes bodies (§11). */
function sdkJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(sdkJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0,
    );
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${sdkJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

// ---------------------------------------------------------------------------------------

describe('hmac-vectors.json against the real server', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus({
      manualClock: true,
      env: { BUS_SECRET: VECTOR_MAIN_KEY, ...MANY },
    });
    const key = VECTOR_TESTER_KEY;
    await t.bus.store.keyCreate({
      keyId: 'kid_vectors',
      keyHash: hashKey(key),
      prefix: key.slice(0, 8),
      owner: 'vectors',
      createdAt: Date.now(),
      lastUsedAt: null,
      requests: 0,
    });
  });
  afterAll(async () => t.close());

  const target = (v: Vector): string => v.raw_path + (v.raw_query ? `?${v.raw_query}` : '');

  /** The vector's exact request, with the vector's own signature; `change` alters it. */
  function vectorRequest(v: Vector, change: Partial<SignedRequest> = {}): SignedRequest {
    return {
      key: v.api_key,
      method: v.method,
      target: target(v),
      body: v.body_utf8 === '' ? undefined : v.body_utf8,
      timestamp: v.timestamp,
      nonce: v.nonce,
      signature: v.signature,
      ...change,
    };
  }

  const named = VECTORS.map((v) => [`${v.nonce} ${v.method} ${target(v)}`, v] as const);

  describe('each vector as sent verifies, once', () => {
    it.each(named)('%s', async (_name, v) => {
      expect(VECTORS.length).toBeGreaterThanOrEqual(9);
      t.manual!.set(Number(v.timestamp) * 1000);
      const r = await send(t, vectorRequest(v));
      if (v.raw_path.includes(MADE_UP_ID)) {
        // Passed the signature check; the intent does not exist.
        expect([200, 404], r.text).toContain(r.status);
        if (r.status === 404) expect(errorCode(r)).toBe('not_found');
      } else expectAccepted(r);
      // The same request again: its nonce is spent for this key.
      const again = await send(t, vectorRequest(v));
      expectRefused(again, 403, 'invalid_signature', 'Replay detected');
    });

    it('did what the signed requests asked (KV set, publish)', async () => {
      // Vector n-0007 set node status for the main key: read it back, signed.
      const ts = VECTORS.find((v) => v.nonce === 'n-0007')!.timestamp;
      t.manual!.set(Number(ts) * 1000 + 1000);
      const r = await send(t, {
        key: VECTOR_MAIN_KEY,
        method: 'GET',
        target: '/get/node%20status',
        timestamp: Number(ts) + 1,
        nonce: freshNonce(),
      });
      expect(r.status, r.text).toBe(200);
      expect(r.json).toEqual({ value: 'active' });
      // Vector n-0008 published a notify intent with a non-ASCII payload: claim it, signed.
      const claim = await send(t, {
        key: VECTOR_MAIN_KEY,
        method: 'POST',
        target: '/claim?goal=notify&namespace=default',
        timestamp: Number(ts) + 1,
        nonce: freshNonce(),
      });
      expect(claim.status, claim.text).toBe(200);
      expect(claim.json).toMatchObject({ goal: 'notify', payload: { msg: 'héllo ☃' } });
    });
  });

  describe('[ext] hmac-ambiguous.json: the twin is refused, the vector accepted', () => {
    it.each(AMBIGUOUS_VECTORS.map((v) => [`${v.nonce} ${v.method} ${v.raw_path}`, v]))(
      '%s',
      async (_name, v) => {
        t.manual!.set(Number(v.timestamp) * 1000);
        // The same signature over another request: refused before its nonce is spent.
        const twin = await send(t, { ...vectorRequest(v), target: v.refused_twin });
        expectRefused(twin, 403, 'invalid_signature', 'Unsignable request');
        const r = await send(t, vectorRequest(v));
        if (r.status === 404) expect(errorCode(r)).toBe('not_found');
        else expectAccepted(r);
      },
    );

    it('did what the accepted vectors asked, and nothing their twins would have', async () => {
      const get = (name: string): Promise<ApiResponse> =>
        t.api('GET', `/get/${name}`, { key: VECTOR_TESTER_KEY });
      expect((await get('x%3Fq%3D1')).json).toEqual({ value: 'for x?q=1' });
      expect((await get('x%23y')).json).toEqual({ value: 'for x#y' });
      expect((await get('x')).status).toBe(404);
    });
  });

  describe('each vector with one byte changed is refused with Bad signature', () => {
    it.each(named)('%s: the signature', async (_name, v) => {
      t.manual!.set(Number(v.timestamp) * 1000);
      for (const i of [0, 31, 63]) {
        expectBadSignature(
          await send(t, vectorRequest(v, { signature: changeAt(v.signature, i) })),
        );
      }
    });

    it.each(named)('%s: the body', async (_name, v) => {
      t.manual!.set(Number(v.timestamp) * 1000);
      if (v.method === 'GET') {
        // A GET carries no body at all (§1 answers 400 before any signature check), so a
        // changed byte can only be a changed key: the vector sent with the other key.
        const other = v.api_key === VECTOR_MAIN_KEY ? VECTOR_TESTER_KEY : VECTOR_MAIN_KEY;
        expectBadSignature(await send(t, vectorRequest(v, { key: other })));
        return;
      }
      if (v.body_utf8 === '') {
        // Signed over the empty body, sent with one.
        expectBadSignature(await send(t, vectorRequest(v, { body: '{}' })));
        return;
      }
      // A letter inside the first key's string: still valid JSON.
      expect(v.body_utf8.slice(0, 2)).toBe('{"');
      const body = changeAt(v.body_utf8, 2);
      expect(() => JSON.parse(body) as unknown).not.toThrow();
      expectBadSignature(await send(t, vectorRequest(v, { body })));
      // The same body with one more byte of white space.
      expectBadSignature(await send(t, vectorRequest(v, { body: `${v.body_utf8} ` })));
    });

    it.each(named)('%s: the path or the query', async (_name, v) => {
      t.manual!.set(Number(v.timestamp) * 1000);
      if (v.raw_path.split('/').length > 2) {
        // A character of the path parameter (the route still matches).
        const path = changeLast(v.raw_path);
        const changed = path + (v.raw_query ? `?${v.raw_query}` : '');
        expectBadSignature(await send(t, vectorRequest(v, { target: changed })));
      }
      if (v.raw_query) {
        // The last character of the last value.
        const changed = `${v.raw_path}?${changeLast(v.raw_query)}`;
        expectBadSignature(await send(t, vectorRequest(v, { target: changed })));
        // A query pair left out.
        const fewer = v.raw_query.split('&').slice(1).join('&');
        const shorter = fewer ? `${v.raw_path}?${fewer}` : v.raw_path;
        expectBadSignature(await send(t, vectorRequest(v, { target: shorter })));
      } else {
        // A query added where none was signed (on a route that reads none, refused as
        // ambiguous before the signature is compared).
        const added = await send(t, vectorRequest(v, { target: `${v.raw_path}?x=1` }));
        expectRefused(added, 403, 'invalid_signature', '');
        expect(added.json.error.message).toMatch(/^(Bad signature|Unsignable request)/);
      }
    });

    it.each(named)('%s: the timestamp and the nonce', async (_name, v) => {
      t.manual!.set(Number(v.timestamp) * 1000);
      expectBadSignature(await send(t, vectorRequest(v, { timestamp: changeLast(v.timestamp) })));
      expectBadSignature(await send(t, vectorRequest(v, { nonce: changeLast(v.nonce) })));
      expectBadSignature(await send(t, vectorRequest(v, { nonce: `${v.nonce}x` })));
    });

    const withOtherMethod = named.filter(([, v]) => v.method === 'GET');
    it.each(withOtherMethod)('%s: the method (HEAD for GET)', async (_name, v) => {
      t.manual!.set(Number(v.timestamp) * 1000);
      const r = await send(t, vectorRequest(v, { method: 'HEAD', nonce: changeLast(v.nonce) }));
      // A HEAD answer has no body to carry the error code: its status must still be 403.
      expect(r.status).toBe(403);
      const same = await send(t, vectorRequest(v, { method: 'HEAD' }));
      expect(same.status).toBe(403);
    });
  });
});

// ---------------------------------------------------------------------------------------

describe('the refusals of §3', () => {
  let t: TestBus;
  let tester: string;
  let other: string;
  /** The server's time, whole seconds. */
  let now: number;
  beforeAll(async () => {
    t = await startTestBus({ manualClock: true, env: MANY });
    now = Math.floor(Date.now() / 1000);
    t.manual!.set(now * 1000);
    tester = (await t.newKey('sig-tester')).api_key;
    other = (await t.newKey('sig-other')).api_key;
  });
  afterAll(async () => t.close());

  const claim = (key: string, change: Partial<SignedRequest> = {}): Promise<ApiResponse> =>
    send(t, {
      key,
      method: 'POST',
      target: '/claim?namespace=sig-empty',
      timestamp: now,
      nonce: freshNonce(),
      ...change,
    });

  it('an unsigned request passes when signatures are not required', async () => {
    const r = await t.api('POST', '/claim?namespace=sig-empty', { key: tester });
    expect(r.status, r.text).toBe(204);
  });

  it('a correctly signed request passes, main key and tester key', async () => {
    expect((await claim(tester)).status).toBe(204);
    expect((await claim(MAIN_KEY)).status).toBe(204);
  });

  const SUBSETS: SigHeader[][] = [
    ['x-timestamp'],
    ['x-nonce'],
    ['x-signature'],
    ['x-timestamp', 'x-nonce'],
    ['x-timestamp', 'x-signature'],
    ['x-nonce', 'x-signature'],
  ];
  it.each(SUBSETS.map((s) => [s.join(' and '), s] as const))(
    'missing %s: 403 Missing required signature headers',
    async (_name, omit) => {
      expectRefused(
        await claim(tester, { omit }),
        403,
        'invalid_signature',
        'Missing required signature headers',
      );
    },
  );

  // NOW stands for the server's time, filled in when the test runs.
  it.each(['abc', '1.5', 'NOW.0', 'NOWabc', 'NOW.5'])(
    'timestamp %s (not an integer): 403 Invalid timestamp',
    async (text) => {
      const timestamp = text.replace('NOW', String(now));
      expectRefused(
        await claim(tester, { timestamp }),
        403,
        'invalid_signature',
        'Invalid timestamp',
      );
    },
  );

  it.each([-301, 301, -1000, 100_000])(
    'timestamp %i s from server time: 403 Stale timestamp',
    async (offset) => {
      expectRefused(
        await claim(tester, { timestamp: now + offset }),
        403,
        'invalid_signature',
        'Stale timestamp',
      );
    },
  );

  it.each([-300, -299, 299, 300])('timestamp %i s from server time passes', async (offset) => {
    expect((await claim(tester, { timestamp: now + offset })).status).toBe(204);
  });

  it('a signature that does not match: 403 Bad signature', async () => {
    const wrong = createHmac('sha256', tester).update('something else').digest('hex');
    expectBadSignature(await claim(tester, { signature: wrong }));
    expectBadSignature(await claim(tester, { signature: 'zz'.repeat(32) }));
    expectBadSignature(await claim(tester, { signature: 'abcd' }));
    // Signed with another key's secret.
    expectBadSignature(
      await claim(tester, {
        signature: sign(other, 'POST', '/claim?namespace=sig-empty', String(now), 'n-other'),
        nonce: 'n-other',
      }),
    );
  });

  it('the same nonce again by the same key: 403 Replay detected; by another key: accepted', async () => {
    const nonce = freshNonce();
    expect((await claim(tester, { nonce })).status).toBe(204);
    expectRefused(await claim(tester, { nonce }), 403, 'invalid_signature', 'Replay detected');
    // Another request, another timestamp, the same nonce: still a replay.
    expectRefused(
      await claim(tester, { nonce, target: '/claim?namespace=sig-other', timestamp: now + 1 }),
      403,
      'invalid_signature',
      'Replay detected',
    );
    // Nonces are per key.
    expect((await claim(other, { nonce })).status).toBe(204);
    expect((await claim(MAIN_KEY, { nonce })).status).toBe(204);
    expectRefused(await claim(other, { nonce }), 403, 'invalid_signature', 'Replay detected');
  });

  it('a replayed publish is refused and publishes nothing', async () => {
    const body = sdkJson({ goal: 'sig-replay', namespace: 'sig-replay', payload: { n: 1 } });
    const publishReq: SignedRequest = {
      key: tester,
      method: 'POST',
      target: '/intent',
      body,
      timestamp: now,
      nonce: freshNonce(),
    };
    expect((await send(t, publishReq)).status).toBe(201);
    expectRefused(await send(t, publishReq), 403, 'invalid_signature', 'Replay detected');
    const c = (): Promise<ApiResponse> =>
      claim(tester, { target: '/claim?goal=sig-replay&namespace=sig-replay' });
    expect((await c()).status).toBe(200);
    expect((await c()).status).toBe(204);
  });

  it('a forged signature does not spend the nonce', async () => {
    const nonce = freshNonce();
    const forged = createHmac('sha256', 'not the key').update('x').digest('hex');
    expectBadSignature(await claim(tester, { nonce, signature: forged }));
    expectBadSignature(await claim(tester, { nonce, signature: forged }));
    expect((await claim(tester, { nonce })).status).toBe(204);
    expectRefused(await claim(tester, { nonce }), 403, 'invalid_signature', 'Replay detected');
  });

  it('a refusal for a stale or bad timestamp does not spend the nonce either', async () => {
    const nonce = freshNonce();
    expectRefused(
      await claim(tester, { nonce, timestamp: now - 301 }),
      403,
      'invalid_signature',
      'Stale timestamp',
    );
    expectRefused(
      await claim(tester, { nonce, timestamp: 'abc' }),
      403,
      'invalid_signature',
      'Invalid timestamp',
    );
    expect((await claim(tester, { nonce })).status).toBe(204);
  });

  it('a signature over a different body than the one sent: 403', async () => {
    const body = sdkJson({ goal: 'sig-body', payload: { text: 'PAYLOAD_CANARY a' } });
    const signedBody = sdkJson({ goal: 'sig-body', payload: { text: 'PAYLOAD_CANARY b' } });
    const publishReq = (change: Partial<SignedRequest>): Promise<ApiResponse> =>
      send(t, {
        key: tester,
        method: 'POST',
        target: '/intent',
        body,
        timestamp: now,
        nonce: freshNonce(),
        ...change,
      });
    expectBadSignature(await publishReq({ signed: { body: signedBody } }));
    // The same JSON, re-serialised: the exact bytes count, never the parsed value.
    expectBadSignature(
      await publishReq({ signed: { body: JSON.stringify(JSON.parse(body), null, 1) } }),
    );
    // Signed with no body, sent with one; signed with one, sent with none.
    expectBadSignature(await publishReq({ signed: { body: '' } }));
    expectBadSignature(await claim(tester, { signed: { body: '{}' } }));
    expect((await publishReq({})).status).toBe(201);
  });

  it('the query reordered in the request still verifies with the same signature', async () => {
    const signedTarget = '/claim?namespace=default&goal=x';
    expect(
      (
        await claim(tester, {
          target: '/claim?goal=x&namespace=default',
          signed: { target: signedTarget },
        })
      ).status,
    ).toBe(204);
    expect(
      (
        await claim(tester, {
          target: signedTarget,
          signed: { target: '/claim?goal=x&namespace=default' },
        })
      ).status,
    ).toBe(204);
  });

  it('equivalent encodings of the query verify with the same signature', async () => {
    const cases: [sent: string, signed: string][] = [
      ['/claim?goal=hello+world', '/claim?goal=hello%20world'],
      ['/claim?goal=caf%c3%a9%7Ex', '/claim?goal=caf%C3%A9~x'],
      ['/claim?goal=a%2Fb&capabilities=ffmpeg,gpu', '/claim?capabilities=ffmpeg%2Cgpu&goal=a/b'],
      ['/claim?namespace=sig-empty&flag', '/claim?namespace=sig-empty&flag='],
    ];
    for (const [sent, signedTarget] of cases) {
      const r = await claim(tester, { target: sent, signed: { target: signedTarget } });
      expect([200, 204], `${sent}: ${r.text}`).toContain(r.status);
    }
  });

  it('a percent-encoded path verifies (/set/node%20status signs as /set/node status)', async () => {
    const body = sdkJson({ ttl: 600, value: { note: 'PAYLOAD_CANARY kv' } });
    const set = await send(t, {
      key: tester,
      method: 'POST',
      target: '/set/node%20status',
      body,
      timestamp: now,
      nonce: freshNonce(),
    });
    expect(set.status, set.text).toBe(200);
    expect(set.json).toEqual({ ok: true });
    // Signed over the decoded path text, the signer's canonical form.
    const nonce = freshNonce();
    const get = await send(t, {
      key: tester,
      method: 'GET',
      target: '/get/node%20status',
      timestamp: now,
      nonce,
      signature: createHmac('sha256', tester)
        .update(`GET\n/get/node status\n${now}\n${nonce}\n`)
        .digest('hex'),
    });
    expect(get.status, get.text).toBe(200);
    expect(get.json).toEqual({ value: { note: 'PAYLOAD_CANARY kv' } });
    // Signed over the still-encoded path: refused.
    const bad = freshNonce();
    expectBadSignature(
      await send(t, {
        key: tester,
        method: 'GET',
        target: '/get/node%20status',
        timestamp: now,
        nonce: bad,
        signature: createHmac('sha256', tester)
          .update(`GET\n/get/node%20status\n${now}\n${bad}\n`)
          .digest('hex'),
      }),
    );
  });

  it('a request signed for another method or path is refused', async () => {
    expectBadSignature(await claim(tester, { signed: { method: 'GET' } }));
    expectBadSignature(await claim(tester, { signed: { target: '/claim?namespace=sig-emptz' } }));
    expectBadSignature(await claim(tester, { signed: { target: '/claim' } }));
  });
});

// ---------------------------------------------------------------------------------------

describe('BUS_REQUIRE_SIGNATURES=true', () => {
  let t: TestBus;
  let tester: string;
  let main: string;
  beforeAll(async () => {
    t = await startTestBus({ env: { BUS_REQUIRE_SIGNATURES: 'true', ...MANY } });
    tester = (await t.newKey('sig-required')).api_key;
    main = MAIN_KEY;
  });
  afterAll(async () => t.close());

  const nowSeconds = (): number => Math.floor(Date.now() / 1000);

  it('refuses unsigned client requests: 401 signature_required', async () => {
    for (const key of [main, tester]) {
      const requests: [string, string, unknown?][] = [
        ['POST', '/claim'],
        ['POST', '/intent', { goal: 'sig-req', payload: { text: 'PAYLOAD_CANARY' } }],
        ['GET', `/status/${MADE_UP_ID}`],
        ['GET', `/result/${MADE_UP_ID}`],
        ['POST', '/set/k', { value: 1 }],
        ['GET', '/get/k'],
        ['POST', `/fulfill/${MADE_UP_ID}`, { claim_token: 'abcd' }],
      ];
      for (const [method, path, body] of requests) {
        const r = await t.api(method, path, { key, body });
        expectRefused(r, 401, 'signature_required', 'Signed request required');
      }
    }
  });

  it('a half-signed request is still 403 Missing required signature headers', async () => {
    const r = await send(t, {
      key: tester,
      method: 'POST',
      target: '/claim',
      timestamp: nowSeconds(),
      nonce: freshNonce(),
      omit: ['x-signature'],
    });
    expectRefused(r, 403, 'invalid_signature', 'Missing required signature headers');
  });

  it('a correctly signed request passes', async () => {
    for (const key of [main, tester]) {
      const body = sdkJson({ goal: 'sig-req', payload: { text: 'PAYLOAD_CANARY' } });
      const pub = await send(t, {
        key,
        method: 'POST',
        target: '/intent',
        body,
        timestamp: nowSeconds(),
        nonce: freshNonce(),
      });
      expect(pub.status, pub.text).toBe(201);
      const status = await send(t, {
        key,
        method: 'GET',
        target: `/status/${pub.json.id as string}`,
        timestamp: nowSeconds(),
        nonce: freshNonce(),
      });
      expect(status.status, status.text).toBe(200);
      expect(status.json.status).toBe('open');
    }
  });

  it('/health and the admin routes are not affected', async () => {
    const health = await t.api('GET', '/health', { key: null });
    expect(health.status).toBe(200);
    expect(health.json.ok).toBe(true);
    const keys = await t.api('GET', '/admin/keys', { admin: true });
    expect(keys.status, keys.text).toBe(200);
    const minted = await t.api('POST', '/admin/generate_key', {
      admin: true,
      body: { owner: 'sig-required-2' },
    });
    expect(minted.status, minted.text).toBe(201);
  });
});

// ---------------------------------------------------------------------------------------

describe('a signed round trip as the Python SDK sends it (§11)', () => {
  let t: TestBus;
  let tester: string;
  beforeAll(async () => {
    t = await startTestBus({ env: { BUS_REQUIRE_SIGNATURES: 'true', ...MANY } });
    tester = (await t.newKey('python-sdk')).api_key;
  });
  afterAll(async () => t.close());

  const SDK_HEADERS = { 'user-agent': 'intent-bus-python-sdk/2.1 (test)' };

  /** Every request as the SDK sends it: Content-Type, User-Agent, a fresh 32-hex nonce. */
  const sdk = (
    method: string,
    target: string,
    body?: unknown,
    headers = {},
  ): Promise<ApiResponse> =>
    send(t, {
      key: tester,
      method,
      target,
      body: body === undefined ? undefined : sdkJson(body),
      contentType: true,
      timestamp: Math.floor(Date.now() / 1000),
      nonce: freshNonce(),
      headers: { ...SDK_HEADERS, ...headers },
    });

  it('publishes, claims, fulfils and reads the result, every request signed', async () => {
    const publishBody = {
      goal: 'sdk_roundtrip',
      payload: { instruction: 'PAYLOAD_CANARY héllo ☃', n: [1, 2, { b: true, a: null }] },
      namespace: 'default',
      visibility: 'private',
      priority: 100,
      delay: 0,
      max_attempts: 3,
      backoff_base: 5.0,
    };
    const idem = { 'idempotency-key': freshNonce() };
    const pub = await sdk('POST', '/intent', publishBody, idem);
    expect(pub.status, pub.text).toBe(201);
    const id = pub.json.id as string;
    expect(pub.json).toEqual({ id, status: 'published', namespace: 'default' });

    // A retry of the publish (same Idempotency-Key, fresh nonce and signature): same id.
    const retry = await sdk('POST', '/intent', publishBody, idem);
    expect(retry.status, retry.text).toBe(201);
    expect(retry.json.id).toBe(id);

    // No body, Content-Type: application/json, signed over the empty body; sorted query.
    const claim = await sdk('POST', '/claim?goal=sdk_roundtrip&namespace=default', undefined, {
      'x-worker-id': 'termux-phone-1',
    });
    expect(claim.status, claim.text).toBe(200);
    expect(claim.json).toMatchObject({ id, goal: 'sdk_roundtrip', payload: publishBody.payload });
    const token = claim.json.claim_token as string;

    const extend = await sdk('POST', `/extend_claim/${id}`, { claim_token: token, seconds: 30 });
    expect(extend.status, extend.text).toBe(200);

    const done = await sdk('POST', `/fulfill/${id}`, {
      claim_token: token,
      result: { ok: true, text: 'PAYLOAD_CANARY done ☃' },
      result_type: 'json',
    });
    expect(done.status, done.text).toBe(200);
    expect(done.json).toEqual({ ok: true, id, status: 'fulfilled' });

    const result = await sdk('GET', `/result/${id}`);
    expect(result.status, result.text).toBe(200);
    expect(result.json).toMatchObject({
      id,
      status: 'fulfilled',
      result: { ok: true, text: 'PAYLOAD_CANARY done ☃' },
      result_type: 'json',
      worker_id: 'termux-phone-1',
    });

    // Nothing more to claim; the 204 carries Retry-After.
    const empty = await sdk('POST', '/claim?goal=sdk_roundtrip&namespace=default');
    expect(empty.status, empty.text).toBe(204);
    expect(Number.parseFloat(empty.headers.get('retry-after') ?? '')).toBeGreaterThan(0);
  });

  it('signs the failure path too: claim, fail with an error, status reads it back', async () => {
    const pub = await sdk('POST', '/intent', {
      goal: 'sdk_fail',
      payload: { text: 'PAYLOAD_CANARY fail' },
      namespace: 'default',
      max_attempts: 1,
    });
    expect(pub.status, pub.text).toBe(201);
    const id = pub.json.id as string;
    const claim = await sdk('POST', '/claim?goal=sdk_fail&namespace=default');
    expect(claim.status, claim.text).toBe(200);
    const fail = await sdk('POST', `/fail/${id}`, {
      claim_token: claim.json.claim_token,
      error: 'boom ☃',
    });
    expect(fail.status, fail.text).toBe(200);
    expect(fail.json).toEqual({ ok: true, id, status: 'dead' });
    const status = await sdk('GET', `/status/${id}`);
    expect(status.status, status.text).toBe(200);
    expect(status.json).toMatchObject({ id, status: 'dead', error: 'boom ☃' });
  });
});
