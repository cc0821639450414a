/**
 * Bad input of every kind (PROTOCOL.md §1, §5, §5.1, §10, §11): the exact error shape,
 * a 4xx and never a 500, nothing stored, and a server that keeps serving afterwards.
 */
import { connect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  MAIN_KEY,
  errorCode,
  publish,
  startTestBus,
  type ApiResponse,
  type TestBus,
} from './helpers.js';

/** Sends raw bytes over a fresh socket and parses the one HTTP response that comes back. */
function rawRequest(url: string, data: string | Buffer): Promise<ApiResponse> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    let failure: Error | null = null;
    socket.setTimeout(5000, () => socket.destroy(new Error('raw request timed out')));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err) => (failure = err));
    socket.on('close', () => {
      const all = Buffer.concat(chunks).toString('utf8');
      if (all === '') return reject(failure ?? new Error('no response'));
      const split = all.indexOf('\r\n\r\n');
      const head = split < 0 ? all : all.slice(0, split);
      let text = split < 0 ? '' : all.slice(split + 4);
      const [statusLine, ...lines] = head.split('\r\n');
      const headers = new Headers();
      for (const line of lines) {
        const colon = line.indexOf(':');
        if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
      }
      if (headers.get('transfer-encoding')?.toLowerCase() === 'chunked') {
        let out = '';
        let rest = text;
        for (;;) {
          const eol = rest.indexOf('\r\n');
          const size = parseInt(rest.slice(0, eol), 16);
          if (!(size > 0)) break;
          out += rest.slice(eol + 2, eol + 2 + size);
          rest = rest.slice(eol + 2 + size + 2);
        }
        text = out;
      }
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0);
      resolve({ status, headers, text, json });
    });
    socket.write(data);
  });
}

/** One HTTP/1.1 request with exactly the given headers and body bytes. */
function raw(
  t: TestBus,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<ApiResponse> {
  const { host } = new URL(t.url);
  const lines = [`${method} ${path} HTTP/1.1`, `Host: ${host}`, 'Connection: close'];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  return rawRequest(t.url, `${lines.join('\r\n')}\r\n\r\n${body ?? ''}`);
}

const JSON_TYPE = { 'content-type': 'application/json' };

/** A 4xx in the exact error shape with the expected status and code. */
function expectError(r: ApiResponse, status: number, code: string): void {
  expect(r.status, r.text).toBe(status);
  expect(errorCode(r)).toBe(code);
  expect(Object.keys(r.json)).toEqual(['error']);
  expect(r.json.error.message.length).toBeGreaterThan(0);
}

/** Arrays and objects nested `depth` levels deep around a scalar. */
function nested(depth: number): unknown {
  let v: unknown = 'leaf';
  for (let i = 0; i < depth; i++) v = i % 2 === 0 ? { k: v } : [v];
  return v;
}

/** Every intent the store holds, whatever its state (asked of the bus's own store). */
async function countIntents(t: TestBus): Promise<number> {
  return (await t.bus.store.intentsCount()).reduce((sum, c) => sum + c.n, 0);
}

describe('bad input answers 4xx in the error shape and the bus keeps serving', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());
  afterEach(async () => {
    const health = await t.api('GET', '/health', { key: null });
    expect(health.status).toBe(200);
    expect(health.json.ok).toBe(true);
  });

  describe('bodies that are not JSON objects', () => {
    it('answers malformed JSON with 400 invalid_json', async () => {
      for (const raw of ['{"goal": "x", "payload":', '{goal: x}', "{'a': 1}", 'nope', '{"a":1}}']) {
        const r = await t.api('POST', '/intent', { raw, headers: JSON_TYPE });
        expectError(r, 400, 'invalid_json');
      }
      const kv = await t.api('POST', '/set/broken', { raw: '{"value": ', headers: JSON_TYPE });
      expectError(kv, 400, 'invalid_json');
    });

    it('answers JSON that is not an object (array, string, number) with 400 invalid_request', async () => {
      const id = '0123456789abcdef0123456789abcdef';
      const routes = ['/intent', '/set/not-object', `/fulfill/${id}`, `/fail/${id}`];
      for (const path of routes) {
        for (const raw of ['[1, 2, 3]', '[]', '"a string"', '42', '3.5', 'true', 'null']) {
          const r = await t.api('POST', path, { raw, headers: JSON_TYPE });
          expectError(r, 400, 'invalid_request');
        }
      }
    });
  });

  describe('publish fields of §5.1 with wrong types or out of range', () => {
    const ns = 'bad-fields';
    const valid = { goal: 'bad_fields', payload: { n: 1 }, namespace: ns, visibility: 'public' };
    const cases: Array<[string, Record<string, unknown>]> = [
      ['goal as a number', { goal: 42 }],
      ['goal as an object', { goal: { a: 1 } }],
      ['goal as null', { goal: null }],
      ['priority as the string "5"', { priority: '5' }],
      ['priority 1.5', { priority: 1.5 }],
      ['priority -1', { priority: -1 }],
      ['priority 1001', { priority: 1001 }],
      ['delay as a string', { delay: '10' }],
      ['delay -1', { delay: -1 }],
      ['delay 2592001', { delay: 2_592_001 }],
      ['max_attempts 0', { max_attempts: 0 }],
      ['max_attempts 21', { max_attempts: 21 }],
      ['max_attempts as a string', { max_attempts: '3' }],
      ['backoff_base 0.5', { backoff_base: 0.5 }],
      ['backoff_base 3601', { backoff_base: 3601 }],
      ['backoff_base as a string', { backoff_base: '5' }],
      ['ttl 0', { ttl: 0 }],
      ['ttl as a string', { ttl: '60' }],
      ['namespace "bad ns!"', { namespace: 'bad ns!' }],
      ['namespace of 65 chars', { namespace: 'n'.repeat(65) }],
      ['namespace as a number', { namespace: 7 }],
      ['visibility "secret"', { visibility: 'secret' }],
      ['target_worker with a space', { target_worker: 'worker one' }],
      ['target_worker as a number', { target_worker: 5 }],
      ['required_capability of 65 chars', { required_capability: 'c'.repeat(65) }],
    ];

    for (const [name, override] of cases) {
      it(`refuses ${name} with 400 and stores nothing`, async () => {
        const before = await countIntents(t);
        const r = await t.api('POST', '/intent', { body: { ...valid, ...override } });
        expect(r.status, r.text).toBe(400);
        const code = errorCode(r);
        expect(code === 'invalid_request' || code.startsWith('invalid_')).toBe(true);
        expect(code).not.toBe('invalid_json');
        expect(await countIntents(t)).toBe(before);
        const claim = await t.api('POST', `/claim?namespace=${ns}`);
        expect(claim.status, claim.text).toBe(204);
      });
    }

    it('accepts the same body without the bad field (the cases above fail only for it)', async () => {
      const before = await countIntents(t);
      const id = await publish(t.api, { ...valid, namespace: 'bad-fields-control' });
      expect(await countIntents(t)).toBe(before + 1);
      const claim = await t.api('POST', '/claim?namespace=bad-fields-control');
      expect(claim.status).toBe(200);
      expect(claim.json.id).toBe(id);
    });

    it('refuses a goal that is empty, only spaces or 257 chars long', async () => {
      for (const goal of ['', '   ', '\t \n', 'g'.repeat(257), ` ${'g'.repeat(257)} `]) {
        const before = await countIntents(t);
        const r = await t.api('POST', '/intent', { body: { ...valid, goal } });
        expect(r.status, r.text).toBe(400);
        expect(errorCode(r)).not.toBe('invalid_json');
        expect(await countIntents(t)).toBe(before);
      }
      const claim = await t.api('POST', `/claim?namespace=${ns}`);
      expect(claim.status).toBe(204);
    });

    it('accepts a goal of 256 chars, also with spaces around it', async () => {
      const r = await t.api('POST', '/intent', {
        body: { ...valid, namespace: 'goal-256', goal: `  ${'g'.repeat(256)}  ` },
      });
      expect(r.status, r.text).toBe(201);
    });

    it('refuses a payload nested 11 deep and accepts one nested 10 deep', async () => {
      const before = await countIntents(t);
      const deep = await t.api('POST', '/intent', {
        body: { ...valid, namespace: 'depth', payload: nested(11) },
      });
      expect(deep.status, deep.text).toBe(400);
      errorCode(deep);
      expect(await countIntents(t)).toBe(before);
      const deepObjects = await t.api('POST', '/intent', {
        body: {
          ...valid,
          namespace: 'depth',
          payload: JSON.parse('{"a":'.repeat(11) + '1' + '}'.repeat(11)),
        },
      });
      expect(deepObjects.status, deepObjects.text).toBe(400);
      expect(await countIntents(t)).toBe(before);

      const ok = await t.api('POST', '/intent', {
        body: { ...valid, namespace: 'depth', payload: nested(10) },
      });
      expect(ok.status, ok.text).toBe(201);
      const claim = await t.api('POST', '/claim?namespace=depth');
      expect(claim.status).toBe(200);
      expect(claim.json.payload).toEqual(nested(10));
    });

    it('refuses a payload nested thousands of levels deep with 400, never 500', async () => {
      const deep = '['.repeat(30_000) + ']'.repeat(30_000);
      for (const headers of [JSON_TYPE, { ...JSON_TYPE, 'idempotency-key': 'deep-payload' }]) {
        const before = await countIntents(t);
        const r = await t.api('POST', '/intent', {
          raw: `{"goal":"deep","namespace":"deep","payload":${deep}}`,
          headers,
        });
        expectError(r, 400, 'invalid_request');
        expect(await countIntents(t)).toBe(before);
      }
      const kv = await t.api('POST', '/set/deep', { raw: `{"value":${deep}}`, headers: JSON_TYPE });
      expect(kv.status, kv.text).toBe(400);
      errorCode(kv);
    });

    it('refuses a body nested deeper than the limit, unknown fields included (400, never 500)', async () => {
      const deep = '['.repeat(30_000) + ']'.repeat(30_000);
      const raw = `{"goal":"deep_unknown","namespace":"deep-unknown","payload":1,"extra":${deep}}`;
      const idem = { ...JSON_TYPE, 'idempotency-key': 'deep-unknown' };
      for (const headers of [JSON_TYPE, idem]) {
        const before = await countIntents(t);
        const r = await t.api('POST', '/intent', { raw, headers });
        expectError(r, 400, 'invalid_request');
        expect(r.json.error.message).toContain('nests deeper');
        expect(await countIntents(t)).toBe(before);
      }
      // A shallow unknown field is ignored.
      const ok = await t.api('POST', '/intent', {
        raw: '{"goal":"deep_unknown","namespace":"deep-unknown","payload":1,"extra":[[1]]}',
        headers: idem,
      });
      expect(ok.status, ok.text).toBe(201);
    });

    it('says "Missing" when goal or payload is absent', async () => {
      const { goal: _g, ...noGoal } = valid;
      const { payload: _p, ...noPayload } = valid;
      for (const body of [noGoal, noPayload, {}]) {
        const before = await countIntents(t);
        const r = await t.api('POST', '/intent', { body });
        expectError(r, 400, 'invalid_request');
        expect(r.json.error.message).toContain('Missing');
        expect(await countIntents(t)).toBe(before);
      }
    });

    it('accepts payloads of every JSON type, null included (present but null is not missing)', async () => {
      for (const payload of [null, 0, 'text', false, [], {}]) {
        const r = await t.api('POST', '/intent', {
          body: { goal: 'payload_types', payload, namespace: 'payload-types' },
        });
        expect(r.status, r.text).toBe(201);
      }
    });
  });

  describe('content types, sizes and empty bodies', () => {
    it('answers a body with a non-JSON Content-Type with 415 unsupported_media_type', async () => {
      const body = JSON.stringify({ goal: 'typed', payload: {} });
      for (const type of [
        'text/plain',
        'text/plain; charset=utf-8',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/xml',
      ]) {
        const before = await countIntents(t);
        const r = await t.api('POST', '/intent', { raw: body, headers: { 'content-type': type } });
        expectError(r, 415, 'unsupported_media_type');
        expect(await countIntents(t)).toBe(before);
      }
      const form = await t.api('POST', '/intent', {
        raw: 'goal=typed&payload=x',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expectError(form, 415, 'unsupported_media_type');
      const kv = await t.api('POST', '/set/typed', {
        raw: '{"value": 1}',
        headers: { 'content-type': 'text/plain' },
      });
      expectError(kv, 415, 'unsupported_media_type');
    });

    it('takes an empty POST /claim with Content-Type: application/json, as the Python SDK sends it', async () => {
      const id = await publish(t.api, { goal: 'sdk_claim', namespace: 'sdk-empty' });
      const r = await t.api('POST', '/claim?namespace=sdk-empty', {
        raw: '',
        headers: { ...JSON_TYPE, 'user-agent': 'intent-bus-python/2.1' },
      });
      expect(r.status, r.text).toBe(200);
      expect(r.json.id).toBe(id);
      const again = await t.api('POST', '/claim?namespace=sdk-empty', {
        raw: '',
        headers: JSON_TYPE,
      });
      expect(again.status, again.text).toBe(204);
    });

    it('takes a POST /claim with Content-Length: 0 and Content-Type: application/json', async () => {
      const id = await publish(t.api, { goal: 'sdk_claim', namespace: 'sdk-zero' });
      const r = await raw(t, 'POST', '/claim?namespace=sdk-zero', {
        'X-API-KEY': MAIN_KEY,
        'Content-Type': 'application/json',
        'Content-Length': '0',
      });
      expect(r.status, r.text).toBe(200);
      expect(r.json.id).toBe(id);
    });

    it('takes a POST /claim with Content-Type: application/json and no body at all', async () => {
      const id = await publish(t.api, { goal: 'sdk_claim', namespace: 'sdk-nobody' });
      const r = await t.api('POST', '/claim?namespace=sdk-nobody', { headers: JSON_TYPE });
      expect(r.status, r.text).toBe(200);
      expect(r.json.id).toBe(id);
      // No Content-Length and no Transfer-Encoding: a request without a body on the wire.
      const bare = await raw(t, 'POST', '/claim?namespace=sdk-nobody', {
        'X-API-KEY': MAIN_KEY,
        'Content-Type': 'application/json',
      });
      expect(bare.status, bare.text).toBe(204);
      expect(bare.headers.get('retry-after')).toBe('1');
    });

    it('treats an empty body as no body whatever its Content-Type', async () => {
      const r = await t.api('POST', '/claim?namespace=sdk-text', {
        raw: '',
        headers: { 'content-type': 'text/plain' },
      });
      expect(r.status, r.text).toBe(204);
    });

    it('answers a body over BUS_MAX_BODY_BYTES with 413 payload_too_large', async () => {
      const small = await startTestBus({ env: { BUS_MAX_BODY_BYTES: '8192' } });
      try {
        const big = { goal: 'big', payload: { blob: 'x'.repeat(9000) } };
        const before = await countIntents(small);
        const r = await small.api('POST', '/intent', { body: big });
        expectError(r, 413, 'payload_too_large');
        const kv = await small.api('POST', '/set/big', { body: { value: 'x'.repeat(9000) } });
        expectError(kv, 413, 'payload_too_large');
        // Without a Content-Length, counted as it arrives.
        const text = JSON.stringify(big);
        const size = Buffer.byteLength(text).toString(16);
        const chunked = await raw(
          small,
          'POST',
          '/intent',
          {
            'X-API-KEY': MAIN_KEY,
            'Content-Type': 'application/json',
            'Transfer-Encoding': 'chunked',
          },
          `${size}\r\n${text}\r\n0\r\n\r\n`,
        );
        expectError(chunked, 413, 'payload_too_large');
        expect(await countIntents(small)).toBe(before);
        // Just under the limit is fine.
        const fits = await small.api('POST', '/intent', {
          body: { goal: 'fits', payload: { blob: 'x'.repeat(7000) } },
        });
        expect(fits.status, fits.text).toBe(201);
        expect((await small.api('GET', '/health', { key: null })).status).toBe(200);
      } finally {
        await small.close();
      }
    });
  });

  describe('routes and methods', () => {
    it('answers unknown routes with 404 not_found', async () => {
      for (const [method, path] of [
        ['GET', '/index.html'],
        ['GET', '/nope'],
        ['POST', '/publish'],
        ['GET', '/status'],
        ['GET', '/intent/extra/segments'],
        ['POST', '/claim/extra'],
        ['DELETE', '/no/such/route'],
      ] as const) {
        const r = await t.api(method, path);
        expectError(r, 404, 'not_found');
      }
      const unauthenticated = await t.api('GET', '/nope', { key: null });
      expect(unauthenticated.status).toBe(404);
      expect(errorCode(unauthenticated)).toBe('not_found');
    });

    it('answers wrong methods on known routes with 405 method_not_allowed and an Allow header', async () => {
      const id = '0123456789abcdef0123456789abcdef';
      for (const [method, path, allowed] of [
        ['GET', '/intent', 'POST'],
        ['DELETE', '/claim', 'POST'],
        ['PUT', `/fulfill/${id}`, 'POST'],
        ['POST', '/health', 'GET'],
        ['DELETE', `/status/${id}`, 'GET'],
        ['PATCH', '/set/name', 'POST'],
      ] as const) {
        const r = await t.api(method, path);
        expectError(r, 405, 'method_not_allowed');
        const allow = r.headers.get('allow');
        expect(allow, `${method} ${path}`).not.toBeNull();
        const methods = allow!.split(',').map((m) => m.trim());
        expect(methods).toContain(allowed);
        expect(methods).not.toContain(method);
      }
    });

    it('refuses a body on GET with 400', async () => {
      const id = await publish(t.api, { goal: 'get_body', namespace: 'get-body' });
      for (const path of ['/health', `/status/${id}`, `/result/${id}`, '/get/anything']) {
        const r = await raw(
          t,
          'GET',
          path,
          { 'X-API-KEY': MAIN_KEY, ...JSON_TYPE, 'Content-Length': '2' },
          '{}',
        );
        expect(r.status, `${path}: ${r.text}`).toBe(400);
        errorCode(r);
      }
      // The intent is still there and readable without a body.
      const ok = await t.api('GET', `/status/${id}`);
      expect(ok.status).toBe(200);
    });

    it('answers malformed intent ids in paths with 404', async () => {
      const token = { claim_token: '0123456789abcdef0123456789abcdef' };
      const checks: Array<[string, string, unknown]> = [
        ['GET', '/status/xyz', undefined],
        ['GET', '/result/xyz', undefined],
        ['GET', `/status/${'A'.repeat(32)}`, undefined],
        ['GET', `/status/${'a'.repeat(33)}`, undefined],
        ['POST', '/fulfill/not-hex', token],
        ['POST', '/fail/not-hex', token],
        ['POST', '/extend_claim/not-hex', { ...token, seconds: 30 }],
      ];
      for (const [method, path, body] of checks) {
        const r = await t.api(method, path, { body });
        expectError(r, 404, 'not_found');
      }
    });
  });

  describe('malformed paths', () => {
    it('answers malformed percent-encoding in a path with 400 in the error shape', async () => {
      for (const [method, path] of [
        ['GET', '/get/%zz'],
        ['GET', '/status/%zz'],
        ['GET', '/get/%E0%A4%A'],
        ['POST', '/set/%'],
        ['GET', '/nope/%zz'],
      ] as const) {
        const r = await t.api(method, path, { body: method === 'POST' ? { value: 1 } : undefined });
        expect(r.status, `${method} ${path}: ${r.text}`).toBe(400);
        expect(errorCode(r), `${method} ${path}`).toBe('invalid_request');
        expect(r.headers.get('x-content-type-options'), `${method} ${path}`).toBe('nosniff');
      }
    });

    it('answers over-long path segments in the error shape: 400 for a KV name, 404 for an intent id', async () => {
      const long = 'a'.repeat(1100);
      const name = await t.api('GET', `/get/${long}`);
      expect(name.status, name.text.slice(0, 200)).toBe(400);
      expect(errorCode(name)).toBe('invalid_request');
      const set = await t.api('POST', `/set/${long}`, { body: { value: 1 } });
      expect(set.status, set.text.slice(0, 200)).toBe(400);
      expect(errorCode(set)).toBe('invalid_request');
      for (const [method, path, body] of [
        ['GET', `/status/${long}`, undefined],
        ['POST', `/fulfill/${long}`, { claim_token: 'x' }],
      ] as const) {
        const r = await t.api(method, path, { body });
        expect(r.status, `${method}: ${r.text.slice(0, 200)}`).toBe(404);
        expect(errorCode(r)).toBe('not_found');
      }
    });
  });

  describe('claim queries and headers', () => {
    it('refuses wait=31, wait=abc and wait=-1 with 400', async () => {
      for (const wait of ['31', 'abc', '-1', '30.5']) {
        const r = await t.api('POST', `/claim?namespace=waits&wait=${wait}`);
        expectError(r, 400, 'invalid_request');
      }
      const ok = await t.api('POST', '/claim?namespace=waits&wait=0');
      expect(ok.status).toBe(204);
    });

    it('takes any worker name a device may have, but refuses control characters and over-long ones', async () => {
      // PROTOCOL.md §4 sets no format for a claimer's id or capabilities.
      for (const path of [
        '/claim?namespace=workers&worker_id=Pixel%207',
        '/claim?namespace=workers&capabilities=ffmpeg%2F6,gpu',
      ]) {
        expect((await t.api('POST', path)).status).toBe(204);
      }
      const spaced = await t.api('POST', '/claim?namespace=workers', {
        headers: { 'x-worker-id': 'Pixel 7' },
      });
      expect(spaced.status).toBe(204);
      const empty = await t.api('POST', '/claim?namespace=workers', {
        headers: { 'x-worker-id': '' },
      });
      expect(empty.status).toBe(204);
      for (const path of [
        '/claim?namespace=workers&worker_id=bad%0Aworker',
        `/claim?namespace=workers&worker_id=${'w'.repeat(129)}`,
        '/claim?namespace=workers&capabilities=ok,bad%00cap',
      ]) {
        expectError(await t.api('POST', path), 400, 'invalid_request');
      }
    });

    it('ignores unknown fields in the body and the query', async () => {
      const r = await t.api('POST', '/intent?unknown=1&also=two', {
        body: {
          goal: 'extra_fields',
          payload: { a: 1 },
          namespace: 'extras',
          colour: 'blue',
          nested_unknown: { deep: [1, 2, 3] },
          priority_hint: 'high',
        },
      });
      expect(r.status, r.text).toBe(201);
      const claim = await t.api('POST', '/claim?namespace=extras&foo=bar&limit=5&sort=desc');
      expect(claim.status, claim.text).toBe(200);
      expect(claim.json.id).toBe(r.json.id);
      const done = await t.api('POST', `/fulfill/${r.json.id}?x=1`, {
        body: { claim_token: claim.json.claim_token, result: { ok: 1 }, unknown_field: true },
      });
      expect(done.status, done.text).toBe(200);
      const set = await t.api('POST', '/set/extras?x=1', { body: { value: 1, extra: 'x' } });
      expect(set.status, set.text).toBe(200);
      const get = await t.api('GET', '/get/extras?x=1');
      expect(get.json).toEqual({ value: 1 });
    });
  });

  describe('credentials', () => {
    const id = '0123456789abcdef0123456789abcdef';
    const routes: Array<[string, string, unknown]> = [
      ['POST', '/intent', { goal: 'x', payload: {} }],
      ['POST', '/claim', undefined],
      ['GET', `/status/${id}`, undefined],
      ['GET', `/result/${id}`, undefined],
      ['POST', `/fulfill/${id}`, { claim_token: id }],
      ['POST', '/set/name', { value: 1 }],
      ['GET', '/get/name', undefined],
    ];

    it('answers a missing X-API-KEY with 401 unauthorized', async () => {
      const before = await countIntents(t);
      for (const [method, path, body] of routes) {
        const r = await t.api(method, path, { key: null, body });
        expectError(r, 401, 'unauthorized');
      }
      const empty = await t.api('POST', '/claim', { key: '' });
      expectError(empty, 401, 'unauthorized');
      expect(await countIntents(t)).toBe(before);
    });

    it('answers a wrong X-API-KEY with 401 unauthorized', async () => {
      const before = await countIntents(t);
      for (const key of [
        'wrong-key',
        `${MAIN_KEY}x`,
        'tk_0123456789abcdef0123456789abcdef',
        'k'.repeat(300),
      ]) {
        for (const [method, path, body] of routes) {
          const r = await t.api(method, path, { key, body });
          expectError(r, 401, 'unauthorized');
        }
      }
      expect(await countIntents(t)).toBe(before);
    });

    it('answers a revoked tester key with 401 unauthorized', async () => {
      const k = await t.newKey('revoked');
      expect((await t.api('POST', '/claim', { key: k.api_key })).status).toBe(204);
      const revoke = await t.api('POST', '/admin/revoke_key', {
        admin: true,
        body: { key_id: k.key_id },
      });
      expect(revoke.status).toBe(200);
      expectError(await t.api('POST', '/claim', { key: k.api_key }), 401, 'unauthorized');
    });
  });

  describe('garbage on the socket', () => {
    it('answers bytes that are not HTTP with 400 and keeps serving', async () => {
      const inputs: Array<string | Buffer> = [
        'HELLO THERE\r\n\r\n',
        'this is not http at all\r\n\r\n',
        Buffer.from([0x00, 0x01, 0x02, 0xff, 0xfe, 0x0d, 0x0a, 0x0d, 0x0a]),
        'GET /health HTTP/9.9\r\n\r\n',
        'POST /intent HTTP/1.1\r\nContent-Length: abc\r\n\r\n',
        '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03',
      ];
      for (const data of inputs) {
        const r = await rawRequest(t.url, data);
        expect(r.status, JSON.stringify(String(data))).toBe(400);
        const health = await t.api('GET', '/health', { key: null });
        expect(health.status).toBe(200);
      }
      // And real work still goes through.
      const id = await publish(t.api, { goal: 'after_garbage', namespace: 'after-garbage' });
      const claim = await t.api('POST', '/claim?namespace=after-garbage');
      expect(claim.json.id).toBe(id);
    });

    it('survives a burst of bad requests in parallel', async () => {
      const bad = await Promise.all([
        ...Array.from({ length: 20 }, () =>
          t.api('POST', '/intent', { raw: '{"goal":', headers: JSON_TYPE }),
        ),
        ...Array.from({ length: 20 }, () =>
          t.api('POST', '/intent', { body: { goal: 5, payload: {} } }),
        ),
        ...Array.from({ length: 10 }, () => rawRequest(t.url, 'garbage\r\n\r\n')),
      ]);
      for (const r of bad) {
        expect(r.status).toBe(400);
        errorCode(r);
      }
    });
  });
});
