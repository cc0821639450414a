/**
 * What the wire must refuse, found by an outside security review, and what it must still
 * take. Each refusal is a 4xx in the protocol's error shape with the standard headers.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
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

/** The HTTP responses in what a socket received (1xx included; bodies by Content-Length). */
function parseResponses(data: string): ApiResponse[] {
  const out: ApiResponse[] = [];
  let rest = data;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return out;
    const [statusLine, ...lines] = rest.slice(0, end).split('\r\n');
    const headers = new Headers();
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    }
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0);
    let length = status < 200 ? 0 : Number(headers.get('content-length') ?? 0);
    let text = rest.slice(end + 4, end + 4 + length);
    if (text.length < length) return out;
    if (headers.get('transfer-encoding') === 'chunked') {
      // Node's own answers (such as its bare 400) are chunked; the bus's have a length.
      text = '';
      for (let at = end + 4; ;) {
        const eol = rest.indexOf('\r\n', at);
        if (eol < 0) return out;
        const size = parseInt(rest.slice(at, eol), 16);
        length = eol + 2 + size + 2 - (end + 4);
        if (!(size > 0)) break;
        text += rest.slice(eol + 2, eol + 2 + size);
        at = eol + 2 + size + 2;
      }
    }
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    out.push({ status, headers, text, json });
    rest = rest.slice(end + 4 + length);
  }
}

/** A raw socket to the bus: write bytes, then wait for the responses. */
function openSocket(url: string): {
  write(data: string | Buffer): void;
  /** The responses received once one is final (not 1xx), the socket closed, or 3 s passed. */
  untilFinal(): Promise<ApiResponse[]>;
  /** The responses received once there are `n` of them (1xx included), or as above. */
  until(n: number): Promise<ApiResponse[]>;
  close(): void;
} {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  let data = '';
  let closed = false;
  const wake = new Set<() => void>();
  socket.on('data', (c: Buffer) => {
    // latin1: one character per byte, so Content-Length counts characters here.
    data += c.toString('latin1');
    for (const w of wake) w();
  });
  socket.on('close', () => {
    closed = true;
    for (const w of wake) w();
  });
  socket.on('error', () => undefined);
  const wait = (done: (rs: ApiResponse[]) => boolean): Promise<ApiResponse[]> =>
    new Promise((resolve) => {
      const check = (): void => {
        const rs = parseResponses(data);
        if (closed || done(rs)) {
          wake.delete(check);
          clearTimeout(timer);
          resolve(rs);
        }
      };
      const timer = setTimeout(() => {
        wake.delete(check);
        resolve(parseResponses(data));
      }, 3000);
      wake.add(check);
      check();
    });
  return {
    write: (d) => void socket.write(d),
    untilFinal: () => wait((rs) => rs.some((r) => r.status >= 200)),
    until: (n) => wait((rs) => rs.length >= n),
    close: () => socket.destroy(),
  };
}

/** Writes one raw request on a fresh socket; the responses until the final one. */
async function rawRequest(url: string, data: string): Promise<ApiResponse[]> {
  const s = openSocket(url);
  s.write(data);
  try {
    return await s.untilFinal();
  } finally {
    s.close();
  }
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

describe('the Host header', () => {
  let t: TestBus;
  let host: string;
  beforeAll(async () => {
    t = await startTestBus();
    host = new URL(t.url).host;
  });
  afterAll(async () => t.close());

  const final = (rs: ApiResponse[]): ApiResponse => {
    expect(rs.length).toBeGreaterThan(0);
    return rs[rs.length - 1]!;
  };

  it('answers an HTTP/1.1 request without Host with 400 invalid_request in the error shape', async () => {
    const r = final(await rawRequest(t.url, 'GET /health HTTP/1.1\r\nConnection: close\r\n\r\n'));
    expectError(r, 400, 'invalid_request');
    expect(r.json.error.message).toMatch(/Host/);
    const post = final(
      await rawRequest(
        t.url,
        `POST /claim HTTP/1.1\r\nX-API-KEY: ${MAIN_KEY}\r\nConnection: close\r\n\r\n`,
      ),
    );
    expectError(post, 400, 'invalid_request');
  });

  it('answers two Host headers with 400 invalid_request, the same value twice too', async () => {
    for (const second of ['evil.example', host]) {
      const r = final(
        await rawRequest(
          t.url,
          `GET /health HTTP/1.1\r\nHost: ${host}\r\nhost: ${second}\r\nConnection: close\r\n\r\n`,
        ),
      );
      expectError(r, 400, 'invalid_request');
      expect(r.json.error.message).toMatch(/Host/);
    }
  });

  it('still answers HTTP/1.0 without Host, and HTTP/1.1 with one Host', async () => {
    const old = final(await rawRequest(t.url, 'GET /health HTTP/1.0\r\n\r\n'));
    expect(old.status, old.text).toBe(200);
    const one = final(
      await rawRequest(t.url, `GET /health HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`),
    );
    expect(one.status, one.text).toBe(200);
  });
});

describe('Sec-Fetch-Site on admin mutations', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  it('refuses cross-site in any letter case with 403 forbidden', async () => {
    for (const value of ['Cross-Site', 'CROSS-SITE', 'cross-Site']) {
      const r = await t.api('POST', '/admin/generate_key', {
        admin: true,
        body: { owner: 'site' },
        headers: { 'sec-fetch-site': value },
      });
      expectError(r, 403, 'forbidden');
    }
    const same = await t.api('POST', '/admin/generate_key', {
      admin: true,
      body: { owner: 'site' },
      headers: { 'sec-fetch-site': 'Same-Origin' },
    });
    expect(same.status, same.text).toBe(201);
  });
});

describe('numbers in query strings', () => {
  let t: TestBus;
  let id: string;
  beforeAll(async () => {
    t = await startTestBus();
    id = await publish(t.api, { goal: 'query_numbers', namespace: 'query-numbers' });
  });
  afterAll(async () => t.close());

  // Each would be read as a small number by a coercion that takes what Number() takes.
  const NOT_DECIMAL = ['0x1', '1e0', '%201', '1%20', '+1', '1.', '.5', '0b1', '0o1', '1%0A'];

  it('refuses wait written other than as a plain decimal, on /claim and /result, as wait=abc', async () => {
    const claimAbc = await t.api('POST', '/claim?namespace=query-empty&wait=abc');
    expectError(claimAbc, 400, 'invalid_request');
    const resultAbc = await t.api('GET', `/result/${id}?wait=abc`);
    expectError(resultAbc, 400, 'invalid_request');
    for (const wait of NOT_DECIMAL) {
      const claim = await t.api('POST', `/claim?namespace=query-empty&wait=${wait}`);
      expectError(claim, 400, 'invalid_request');
      expect(claim.json.error, `claim wait=${wait}`).toEqual(claimAbc.json.error);
      const result = await t.api('GET', `/result/${id}?wait=${wait}`);
      expectError(result, 400, 'invalid_request');
      expect(result.json.error, `result wait=${wait}`).toEqual(resultAbc.json.error);
    }
  });

  it('refuses an admin limit written other than as a plain decimal', async () => {
    for (const path of ['/admin/intents', '/admin/dead']) {
      for (const limit of ['0x5', '5e0', '%205']) {
        const r = await t.api('GET', `${path}?limit=${limit}`, { admin: true });
        expectError(r, 400, 'invalid_request');
      }
      const ok = await t.api('GET', `${path}?limit=5`, { admin: true });
      expect(ok.status, ok.text).toBe(200);
    }
  });

  it('takes plain decimals', async () => {
    for (const wait of ['0', '0.0', '-0']) {
      const claim = await t.api('POST', `/claim?namespace=query-empty&wait=${wait}`);
      expect(claim.status, `wait=${wait}: ${claim.text}`).toBe(204);
    }
    const result = await t.api('GET', `/result/${id}?wait=0`);
    expect(result.status, result.text).toBeLessThan(300);
    const claim = await t.api('POST', '/claim?namespace=query-numbers&wait=0.5');
    expect(claim.status, claim.text).toBe(200);
    expect(claim.json.id).toBe(id);
  });
});

describe('Expect: 100-continue', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus({ env: { BUS_MAX_BODY_BYTES: '8192' } });
  });
  afterAll(async () => t.close());

  const head = (path: string, length: number, extra = ''): string =>
    `POST ${path} HTTP/1.1\r\nHost: ${new URL(t.url).host}\r\nX-API-KEY: ${MAIN_KEY}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${length}\r\n` +
    `Expect: 100-continue\r\n${extra}\r\n`;

  it('answers a Content-Length over the limit with 413 payload_too_large, never 100 Continue', async () => {
    const before = await countIntents(t);
    for (const [path, extra] of [
      ['/intent', ''],
      ['/set/big', ''],
      ['/admin/generate_key', `X-Admin-Token: ${ADMIN_TOKEN}\r\n`],
    ] as const) {
      const s = openSocket(t.url);
      s.write(head(path, 8193, extra));
      const rs = await s.untilFinal();
      s.close();
      expect(
        rs.map((r) => r.status),
        path,
      ).toEqual([413]);
      expectError(rs[0]!, 413, 'payload_too_large');
    }
    expect(await countIntents(t)).toBe(before);
    expect((await t.api('GET', '/health', { key: null })).status).toBe(200);
  });

  it('sends 100 Continue for a body within the limit and takes the publish', async () => {
    const body = JSON.stringify({ goal: 'expect_continue', payload: { blob: 'x'.repeat(2000) } });
    const s = openSocket(t.url);
    s.write(head('/intent', Buffer.byteLength(body), 'Connection: close\r\n'));
    const first = await s.until(1);
    expect(first.map((r) => r.status)).toEqual([100]);
    s.write(body);
    const rs = await s.untilFinal();
    s.close();
    expect(rs.map((r) => r.status)).toEqual([100, 201]);
    const id = rs[1]!.json.id as string;
    expect((await t.api('GET', `/status/${id}`)).json.goal).toBe('expect_continue');
  });

  it('ignores an expectation it does not know: the answer has the protocol’s shape, not a bare 417', async () => {
    const body = JSON.stringify({ goal: 'expect_other', payload: {} });
    const rs = await rawRequest(
      t.url,
      head('/intent', Buffer.byteLength(body)).replace('100-continue', 'something-else') + body,
    );
    expect(rs.map((r) => r.status)).toEqual([201]);
    expect(rs[0]!.headers.get('x-intent-version')).toBe('2.1');
  });

  it('takes a publish that sends its body without waiting for 100 Continue', async () => {
    const body = JSON.stringify({ goal: 'expect_eager', payload: {} });
    const rs = await rawRequest(t.url, head('/intent', Buffer.byteLength(body)) + body);
    expect(rs.map((r) => r.status)).toEqual([100, 201]);
  });
});
