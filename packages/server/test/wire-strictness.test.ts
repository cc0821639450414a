/**
 * What the wire must refuse, found by an outside security review, and what it must still
 * take. Each refusal is a 4xx in the protocol's error shape with the standard headers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MAIN_KEY,
  errorCode,
  publish,
  startTestBus,
  type ApiResponse,
  type TestBus,
} from './helpers.js';

/** A 4xx in the exact error shape, with the protocol's headers. */
function expectError(r: ApiResponse, status: number, code: string): void {
  expect(r.status, r.text).toBe(status);
  expect(errorCode(r)).toBe(code);
  expect(Object.keys(r.json)).toEqual(['error']);
  expect(r.headers.get('x-intent-version')).toBe('2.1');
  expect(r.headers.get('x-content-type-options')).toBe('nosniff');
  expect(r.headers.get('x-request-id')).toBeTruthy();
}

/** Every intent the store holds, whatever its state. */
async function countIntents(t: TestBus): Promise<number> {
  return (await t.bus.store.intentsCount()).reduce((sum, c) => sum + c.n, 0);
}

/** POSTs exactly these body bytes as application/json with the main key. */
async function postBytes(
  t: TestBus,
  path: string,
  body: Buffer,
  type = 'application/json',
): Promise<ApiResponse> {
  const res = await fetch(t.url + path, {
    method: 'POST',
    headers: { 'x-api-key': MAIN_KEY, 'content-type': type },
    body,
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

describe('request bodies: valid UTF-8, no lone surrogate', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  const utf8 = (...parts: Array<string | number[]>): Buffer =>
    Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));

  it('refuses bytes that are not UTF-8 with 400 invalid_json, on every route, storing nothing', async () => {
    const before = await countIntents(t);
    for (const [what, bad] of [
      ['0xff', [0xff]],
      ['a truncated sequence', [0xc3]],
      ['an encoded surrogate', [0xed, 0xa0, 0x80]],
      ['an overlong "/"', [0xc0, 0xaf]],
    ] as const) {
      for (const [path, body] of [
        ['/intent', utf8('{"goal":"utf8', [...bad], '","payload":{}}')],
        ['/intent', utf8('{"goal":"utf8","payload":{"s":"', [...bad], '"}}')],
        ['/set/utf8', utf8('{"value":"', [...bad], '"}')],
      ] as const) {
        const r = await postBytes(t, path, body);
        expectError(r, 400, 'invalid_json');
        expect(r.json.error.message, `${what} on ${path}`).toMatch(/not valid UTF-8/);
      }
    }
    expect(await countIntents(t)).toBe(before);
    expect((await t.api('GET', '/get/utf8')).status).toBe(404);
  });

  it('answers such bytes under a non-JSON Content-Type with 415, as any non-JSON body', async () => {
    const r = await postBytes(t, '/intent', Buffer.from([0x7b, 0xff, 0x7d]), 'text/plain');
    expectError(r, 415, 'unsupported_media_type');
  });

  it('takes multi-byte UTF-8 and gives it back unchanged', async () => {
    const text = '{"value":{"s":"é—ü 😀 中文"}}';
    const set = await postBytes(t, '/set/multibyte', Buffer.from(text));
    expect(set.status, set.text).toBe(200);
    const got = await t.api('GET', '/get/multibyte');
    expect(got.json.value).toEqual({ s: 'é—ü 😀 中文' });
    const id = await publish(t.api, { goal: 'café 😀' });
    expect((await t.api('GET', `/status/${id}`)).json.goal).toBe('café 😀');
  });

  it('refuses a lone surrogate escape in any string or key with 400 invalid_json', async () => {
    const before = await countIntents(t);
    for (const [path, body] of [
      ['/intent', '{"goal":"s\\ud800","payload":{}}'],
      ['/intent', '{"goal":"s\\uDFFF","payload":{}}'],
      ['/intent', '{"goal":"g","payload":{"\\udc00":1}}'],
      ['/intent', '{"goal":"g","payload":[1,["x\\ud83d"]]}'],
      ['/intent', '{"goal":"g","payload":{},"unknown":"\\ude00\\ud83d"}'],
      ['/set/surrogate', '{"value":"\\ud800"}'],
      ['/set/surrogate', '{"value":{"k":{"\\uDBFF":true}}}'],
    ] as const) {
      const r = await postBytes(t, path, Buffer.from(body));
      expectError(r, 400, 'invalid_json');
      expect(r.json.error.message, body).toMatch(/lone surrogate/);
    }
    expect(await countIntents(t)).toBe(before);
    expect((await t.api('GET', '/get/surrogate')).status).toBe(404);
  });

  it('takes an escaped backslash before "ud800" and a proper surrogate pair', async () => {
    const text = '{"value":{"escaped":"\\\\ud800","pair":"\\ud83d\\ude00","key\\ud83d\\ude00":1}}';
    const set = await postBytes(t, '/set/pairs', Buffer.from(text));
    expect(set.status, set.text).toBe(200);
    const got = await t.api('GET', '/get/pairs');
    expect(got.json.value).toEqual({ escaped: '\\ud800', pair: '😀', 'key😀': 1 });
    const r = await postBytes(t, '/intent', Buffer.from('{"goal":"\\ud83d\\ude00","payload":{}}'));
    expect(r.status, r.text).toBe(201);
    expect((await t.api('GET', `/status/${r.json.id}`)).json.goal).toBe('😀');
  });
});
