/**
 * The per-key KV store (PROTOCOL.md §5, §8, §10) and publish idempotency (§5.1).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, startTestBus, type ApiResponse, type TestBus } from './helpers.js';

const SECOND = 1000;
const HOUR = 3600 * SECOND;

function expectError(r: ApiResponse, status: number, code: string): void {
  expect(r.status, r.text).toBe(status);
  expect(errorCode(r)).toBe(code);
}

describe('KV: set and get', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  const values: Array<[string, unknown]> = [
    ['an object', { a: 1, b: [true, null, 'x'], c: { d: 2.5 } }],
    ['an empty object', {}],
    ['an array', [1, 'two', { three: 3 }, [4], null]],
    ['an empty array', []],
    ['a string', 'hello world'],
    ['an empty string', ''],
    ['a string that looks like JSON', '{"a": 1}'],
    ['a string that looks like a number', '42'],
    ['a unicode string', 'héllo ✓ 日本 🚀'],
    ['an integer', 42],
    ['zero', 0],
    ['a negative float', -3.25],
    ['true', true],
    ['false', false],
    ['null', null],
  ];

  for (const [name, value] of values) {
    it(`returns ${name} exactly as stored`, async () => {
      const key = `kv-${name.replace(/\W+/g, '-')}`;
      const set = await t.api('POST', `/set/${key}`, { body: { value } });
      expect(set.status, set.text).toBe(200);
      expect(set.json).toEqual({ ok: true });
      const get = await t.api('GET', `/get/${key}`);
      expect(get.status, get.text).toBe(200);
      expect(Object.prototype.hasOwnProperty.call(get.json, 'value')).toBe(true);
      expect(get.json.value).toStrictEqual(value);
    });
  }

  it('overwrites a value set again under the same name', async () => {
    await t.api('POST', '/set/overwrite', { body: { value: 'first' } });
    await t.api('POST', '/set/overwrite', { body: { value: { second: true } } });
    const get = await t.api('GET', '/get/overwrite');
    expect(get.json).toEqual({ value: { second: true } });
  });

  it('scopes names per API key', async () => {
    const a = await t.newKey('kv-a');
    const b = await t.newKey('kv-b');
    expect(
      (await t.api('POST', '/set/shared', { key: a.api_key, body: { value: 'from a' } })).status,
    ).toBe(200);
    expect(
      (await t.api('POST', '/set/shared', { key: b.api_key, body: { value: { from: 'b' } } }))
        .status,
    ).toBe(200);
    expect((await t.api('GET', '/get/shared', { key: a.api_key })).json).toEqual({
      value: 'from a',
    });
    expect((await t.api('GET', '/get/shared', { key: b.api_key })).json).toEqual({
      value: { from: 'b' },
    });
    // The main key has its own space too.
    expectError(await t.api('GET', '/get/shared'), 404, 'not_found');

    await t.api('POST', '/set/only-a', { key: a.api_key, body: { value: 1 } });
    expectError(await t.api('GET', '/get/only-a', { key: b.api_key }), 404, 'not_found');
    expectError(await t.api('GET', '/get/only-a'), 404, 'not_found');
    expect((await t.api('GET', '/get/only-a', { key: a.api_key })).json).toEqual({ value: 1 });
  });

  it('answers an absent name with 404 not_found', async () => {
    expectError(await t.api('GET', '/get/never-set'), 404, 'not_found');
  });

  it('refuses ttl as a string with 400', async () => {
    const r = await t.api('POST', '/set/ttl-string', { body: { value: 1, ttl: '60' } });
    expect(r.status, r.text).toBe(400);
    errorCode(r);
    expectError(await t.api('GET', '/get/ttl-string'), 404, 'not_found');
  });

  it('refuses a missing value with 400', async () => {
    for (const body of [{}, { ttl: 60 }, { val: 1 }]) {
      const r = await t.api('POST', '/set/no-value', { body });
      expect(r.status, r.text).toBe(400);
      errorCode(r);
    }
    const noBody = await t.api('POST', '/set/no-value');
    expect(noBody.status, noBody.text).toBe(400);
    errorCode(noBody);
    expectError(await t.api('GET', '/get/no-value'), 404, 'not_found');
  });

  it('accepts a name of 256 chars and refuses 257', async () => {
    const name256 = 'n'.repeat(256);
    const set = await t.api('POST', `/set/${name256}`, { body: { value: 'long' } });
    expect(set.status, set.text).toBe(200);
    expect((await t.api('GET', `/get/${name256}`)).json).toEqual({ value: 'long' });

    const name257 = 'n'.repeat(257);
    const tooLong = await t.api('POST', `/set/${name257}`, { body: { value: 'x' } });
    expect(tooLong.status, tooLong.text).toBe(400);
    errorCode(tooLong);
    const get = await t.api('GET', `/get/${name257}`);
    expect(get.status, get.text).toBe(400);
    errorCode(get);
  });

  it('counts name length in characters, not in percent-encoded bytes', async () => {
    const name = 'é'.repeat(256);
    const set = await t.api('POST', `/set/${encodeURIComponent(name)}`, {
      body: { value: 'accent' },
    });
    expect(set.status, set.text).toBe(200);
    const get = await t.api('GET', `/get/${encodeURIComponent(name)}`);
    expect(get.json).toEqual({ value: 'accent' });
  });

  it('decodes percent-encoded names: /set/node%20status and /get/node%20status', async () => {
    const set = await t.api('POST', '/set/node%20status', { body: { value: { up: true } } });
    expect(set.status, set.text).toBe(200);
    const get = await t.api('GET', '/get/node%20status');
    expect(get.status, get.text).toBe(200);
    expect(get.json).toEqual({ value: { up: true } });
    // It is one name, "node status", not the literal text "node%20status".
    expectError(await t.api('GET', '/get/node%2520status'), 404, 'not_found');
  });
});

describe('KV: expiry and ttl clamping (manual clock)', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus({ manualClock: true });
  });
  afterAll(async () => t.close());

  const get = (name: string): Promise<ApiResponse> => t.api('GET', `/get/${name}`);

  it('answers an expired name with 404', async () => {
    await t.api('POST', '/set/short', { body: { value: 'soon gone', ttl: 5 } });
    t.manual!.advance(4 * SECOND);
    expect((await get('short')).json).toEqual({ value: 'soon gone' });
    t.manual!.advance(2 * SECOND);
    expectError(await get('short'), 404, 'not_found');
  });

  it('keeps a value 600 s by default', async () => {
    await t.api('POST', '/set/default-ttl', { body: { value: 1 } });
    t.manual!.advance(599 * SECOND);
    expect((await get('default-ttl')).status).toBe(200);
    t.manual!.advance(2 * SECOND);
    expectError(await get('default-ttl'), 404, 'not_found');
  });

  it('clamps ttl 0 (and below) to 1 s', async () => {
    for (const ttl of [0, -10]) {
      const name = `ttl-low${ttl}`;
      const set = await t.api('POST', `/set/${name}`, { body: { value: ttl, ttl } });
      expect(set.status, set.text).toBe(200);
      t.manual!.advance(500);
      expect((await get(name)).json, `ttl ${ttl}`).toEqual({ value: ttl });
      t.manual!.advance(1000);
      expectError(await get(name), 404, 'not_found');
    }
  });

  it('clamps ttl 999999 to 86400 s', async () => {
    const set = await t.api('POST', '/set/ttl-high', { body: { value: 'day', ttl: 999_999 } });
    expect(set.status, set.text).toBe(200);
    t.manual!.advance(86_399 * SECOND);
    expect((await get('ttl-high')).json).toEqual({ value: 'day' });
    t.manual!.advance(2 * SECOND);
    expectError(await get('ttl-high'), 404, 'not_found');
  });

  it('a new set renews the ttl', async () => {
    await t.api('POST', '/set/renewed', { body: { value: 1, ttl: 10 } });
    t.manual!.advance(8 * SECOND);
    await t.api('POST', '/set/renewed', { body: { value: 2, ttl: 10 } });
    t.manual!.advance(8 * SECOND);
    expect((await get('renewed')).json).toEqual({ value: 2 });
    t.manual!.advance(3 * SECOND);
    expectError(await get('renewed'), 404, 'not_found');
  });
});

describe('publish idempotency', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  const post = (key: string, idem: string, body: unknown): Promise<ApiResponse> =>
    t.api('POST', '/intent', { key, body, headers: { 'idempotency-key': idem } });

  it('answers the same key and body (in any key order) with the first response', async () => {
    const k = await t.newKey('idem-same');
    const ns = 'idem-same';
    const first = await t.api('POST', '/intent', {
      key: k.api_key,
      raw: JSON.stringify({
        goal: 'once',
        payload: { a: 1, b: [1, 2], c: { x: 1, y: 2 } },
        namespace: ns,
      }),
      headers: { 'content-type': 'application/json', 'idempotency-key': 'same-1' },
    });
    expect(first.status, first.text).toBe(201);
    expect(first.json).toMatchObject({ status: 'published', namespace: ns });

    const reordered = await t.api('POST', '/intent', {
      key: k.api_key,
      raw: JSON.stringify({
        namespace: ns,
        payload: { c: { y: 2, x: 1 }, b: [1, 2], a: 1 },
        goal: 'once',
      }),
      headers: { 'content-type': 'application/json', 'idempotency-key': 'same-1' },
    });
    expect(reordered.status, reordered.text).toBe(201);
    expect(reordered.json).toEqual(first.json);

    const compact = await t.api('POST', '/intent', {
      key: k.api_key,
      raw: '{"goal":"once","namespace":"idem-same","payload":{"a":1,"b":[1,2],"c":{"x":1,"y":2}}}',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'same-1' },
    });
    expect(compact.status, compact.text).toBe(201);
    expect(compact.json.id).toBe(first.json.id);

    const claim = await t.api('POST', `/claim?namespace=${ns}`, { key: k.api_key });
    expect(claim.status, claim.text).toBe(200);
    expect(claim.json.id).toBe(first.json.id);
    const again = await t.api('POST', `/claim?namespace=${ns}`, { key: k.api_key });
    expect(again.status, again.text).toBe(204);
  });

  it('answers a different body under the same key with 422 idempotency_conflict', async () => {
    const k = await t.newKey('idem-conflict');
    const ns = 'idem-conflict';
    const first = await post(k.api_key, 'conflict-1', {
      goal: 'g',
      payload: { n: 1 },
      namespace: ns,
    });
    expect(first.status).toBe(201);
    for (const body of [
      { goal: 'g', payload: { n: 2 }, namespace: ns },
      { goal: 'other', payload: { n: 1 }, namespace: ns },
      { goal: 'g', payload: { n: 1 }, namespace: ns, priority: 7 },
    ]) {
      const r = await post(k.api_key, 'conflict-1', body);
      expectError(r, 422, 'idempotency_conflict');
      expect(r.json.error.message).toContain('Key reused with different payload');
    }
    expect((await t.api('POST', `/claim?namespace=${ns}`, { key: k.api_key })).status).toBe(200);
    expect((await t.api('POST', `/claim?namespace=${ns}`, { key: k.api_key })).status).toBe(204);
  });

  it('compares numbers exactly: beyond a double they differ, equal decimals do not', async () => {
    const raw = (idem: string, payload: string): Promise<ApiResponse> =>
      t.api('POST', '/intent', {
        raw: `{"goal":"exact","payload":${payload}}`,
        headers: { 'content-type': 'application/json', 'idempotency-key': idem },
      });
    const first = await raw('exact-1', '{"id":12345678901234567890}');
    expect(first.status, first.text).toBe(201);
    // One double, two numbers: a different payload.
    expectError(await raw('exact-1', '{"id":12345678901234567891}'), 422, 'idempotency_conflict');
    const same = await raw('exact-1', '{ "id" : 12345678901234567890 }');
    expect(same.status).toBe(201);
    expect(same.json.id).toBe(first.json.id);
    // The same decimal written another way is the same payload.
    const one = await raw('exact-2', '{"n":1.0}');
    expect(one.status).toBe(201);
    const other = await raw('exact-2', '{"n":1}');
    expect(other.status, other.text).toBe(201);
    expect(other.json.id).toBe(one.json.id);
    expectError(await raw('exact-2', '{"n":1.0000000000000000001}'), 422, 'idempotency_conflict');
  });

  it('keeps idempotency keys per API key: two tester keys make two intents', async () => {
    const a = await t.newKey('idem-a');
    const b = await t.newKey('idem-b');
    const ns = 'idem-two-keys';
    const body = { goal: 'shared_idem', payload: { same: true }, namespace: ns };
    const ra = await post(a.api_key, 'shared-key', body);
    const rb = await post(b.api_key, 'shared-key', body);
    expect(ra.status).toBe(201);
    expect(rb.status).toBe(201);
    expect(ra.json.id).not.toBe(rb.json.id);
    // A different body is no conflict either: the other key's record is not consulted.
    const c = await t.newKey('idem-c');
    const rc = await post(c.api_key, 'shared-key', { ...body, payload: { same: false } });
    expect(rc.status, rc.text).toBe(201);

    const claimA = await t.api('POST', `/claim?namespace=${ns}`, { key: a.api_key });
    const claimB = await t.api('POST', `/claim?namespace=${ns}`, { key: b.api_key });
    expect(claimA.json.id).toBe(ra.json.id);
    expect(claimB.json.id).toBe(rb.json.id);
  });

  it('accepts an Idempotency-Key of 128 chars and refuses 129 with 400', async () => {
    const k = await t.newKey('idem-length');
    const ns = 'idem-length';
    const body = { goal: 'len', payload: {}, namespace: ns };
    const long = await post(k.api_key, 'i'.repeat(129), body);
    expect(long.status, long.text).toBe(400);
    errorCode(long);
    expect((await t.api('POST', `/claim?namespace=${ns}`, { key: k.api_key })).status).toBe(204);

    const ok = await post(k.api_key, 'i'.repeat(128), body);
    expect(ok.status, ok.text).toBe(201);
    const replay = await post(k.api_key, 'i'.repeat(128), body);
    expect(replay.json.id).toBe(ok.json.id);
  });

  it('makes one intent of concurrent publishes with the same key and body', async () => {
    const k = await t.newKey('idem-concurrent');
    const ns = 'idem-concurrent';
    const body = { goal: 'race', payload: { r: 1 }, namespace: ns };
    const all = await Promise.all(
      Array.from({ length: 10 }, () => post(k.api_key, 'race-1', body)),
    );
    for (const r of all) {
      expect(r.status, r.text).toBe(201);
      expect(r.json.id).toBe(all[0]!.json.id);
    }
    expect((await t.api('POST', `/claim?namespace=${ns}`, { key: k.api_key })).status).toBe(200);
    expect((await t.api('POST', `/claim?namespace=${ns}`, { key: k.api_key })).status).toBe(204);
  });

  it('does not spend the key on a refused publish', async () => {
    const k = await t.newKey('idem-refused');
    const ns = 'idem-refused';
    const bad = await post(k.api_key, 'refused-1', { goal: 5, payload: {}, namespace: ns });
    expect(bad.status).toBe(400);
    const good = await post(k.api_key, 'refused-1', { goal: 'fixed', payload: {}, namespace: ns });
    expect(good.status, good.text).toBe(201);
    const conflict = await post(k.api_key, 'refused-1', {
      goal: 'other',
      payload: {},
      namespace: ns,
    });
    expect(conflict.status).toBe(422);
  });

  it('without an Idempotency-Key every publish is new', async () => {
    const k = await t.newKey('idem-none');
    const body = { goal: 'plain', payload: {}, namespace: 'idem-none' };
    const a = await t.api('POST', '/intent', { key: k.api_key, body });
    const b = await t.api('POST', '/intent', { key: k.api_key, body });
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    expect(a.json.id).not.toBe(b.json.id);
  });
});

describe('publish idempotency window (manual clock)', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus({ manualClock: true });
  });
  afterAll(async () => t.close());

  it('replays within 24 h and creates a new intent after', async () => {
    const k = await t.newKey('idem-window');
    const body = { goal: 'daily', payload: { d: 1 }, namespace: 'idem-window' };
    const send = (): Promise<ApiResponse> =>
      t.api('POST', '/intent', { key: k.api_key, body, headers: { 'idempotency-key': 'daily-1' } });

    const first = await send();
    expect(first.status).toBe(201);
    t.manual!.advance(23 * HOUR);
    const within = await send();
    expect(within.status).toBe(201);
    expect(within.json.id).toBe(first.json.id);

    t.manual!.advance(1 * HOUR + 1 * SECOND);
    const after = await send();
    expect(after.status, after.text).toBe(201);
    expect(after.json.id).not.toBe(first.json.id);
    // And the new one is the key's record now.
    const replay = await send();
    expect(replay.json.id).toBe(after.json.id);
  });
});
