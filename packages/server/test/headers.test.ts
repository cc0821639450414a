/**
 * Response headers on every answer, request ids, wire times and /health
 * (PROTOCOL.md §1, §5, §5.2, §5.3).
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, publish, startTestBus, type ApiResponse, type TestBus } from './helpers.js';

const SECURITY_HEADERS: Record<string, string> = {
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'x-intent-version': '2.1',
};

const REQUEST_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

function expectSecurityHeaders(r: ApiResponse, what: string): void {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
    expect(r.headers.get(name), `${what}: ${name}`).toBe(value);
  }
}

/** Writes raw bytes on a fresh socket; returns the status and headers of the answer. */
function rawExchange(url: string, data: string): Promise<{ status: number; headers: Headers }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    socket.setTimeout(5000, () => socket.destroy(new Error('raw request timed out')));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      const all = Buffer.concat(chunks).toString('utf8');
      if (all === '') return reject(new Error('no response'));
      const [statusLine, ...lines] = all.split('\r\n\r\n')[0]!.split('\r\n');
      const headers = new Headers();
      for (const line of lines) {
        const colon = line.indexOf(':');
        if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
      }
      resolve({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1]), headers });
    });
    socket.write(data);
  });
}

const withId = (id: string): { headers: Record<string, string> } => ({
  headers: { 'x-request-id': id },
});

/** Seconds since the epoch, as the wire speaks them. */
const nowSeconds = (): number => Date.now() / 1000;

/** A wire time: a JSON number in unix seconds within `slack` s of `expected`. */
function expectWireTime(value: unknown, expected: number, what: string, slack = 5): void {
  expect(typeof value, `${what} is a number`).toBe('number');
  expect(Number.isFinite(value as number), what).toBe(true);
  expect(Math.abs((value as number) - expected), `${what}=${String(value)}`).toBeLessThan(slack);
}

describe('headers on every response', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  it('carries the security and version headers on 200, 201, 204, 400, 401, 404, 405, 413, 415 and 422', async () => {
    const seen = new Map<number, ApiResponse>();
    const record = (r: ApiResponse): void => {
      seen.set(r.status, r);
    };

    record(await t.api('GET', '/health', { key: null }));
    record(await t.api('POST', '/claim?namespace=headers-empty'));
    const created = await t.api('POST', '/intent', {
      body: { goal: 'headers', payload: {}, namespace: 'headers' },
    });
    record(created);
    record(await t.api('GET', `/status/${created.json.id}`));
    record(
      await t.api('POST', '/intent', {
        raw: '{"goal": ',
        headers: { 'content-type': 'application/json' },
      }),
    );
    record(await t.api('POST', '/claim', { key: null }));
    record(await t.api('GET', '/no/such/route'));
    record(await t.api('GET', '/intent'));
    record(
      await t.api('POST', '/intent', {
        body: { goal: 'huge', payload: 'x'.repeat(70_000) },
      }),
    );
    record(
      await t.api('POST', '/intent', {
        raw: '{"goal": "x", "payload": {}}',
        headers: { 'content-type': 'text/plain' },
      }),
    );
    const idem = { 'idempotency-key': 'headers-conflict' };
    await t.api('POST', '/intent', { body: { goal: 'a', payload: 1 }, headers: idem });
    record(await t.api('POST', '/intent', { body: { goal: 'a', payload: 2 }, headers: idem }));

    expect([...seen.keys()].sort((a, b) => a - b)).toEqual([
      200, 201, 204, 400, 401, 404, 405, 413, 415, 422,
    ]);
    for (const [status, r] of seen) {
      expectSecurityHeaders(r, String(status));
      expect(r.headers.get('x-request-id'), String(status)).toMatch(REQUEST_ID);
      if (status >= 400) errorCode(r);
    }
  });

  it('carries them on 403 and on 503 (maintenance)', async () => {
    const k = await t.newKey('headers-403');
    const forbidden = await t.api('POST', '/claim?publisher=main', { key: k.api_key });
    expect(forbidden.status).toBe(403);
    errorCode(forbidden);
    expectSecurityHeaders(forbidden, '403');

    const m = await startTestBus({ env: { BUS_MAINTENANCE_MODE: 'true' } });
    try {
      const busy = await m.api('POST', '/claim');
      expect(busy.status).toBe(503);
      expect(errorCode(busy)).toBe('maintenance');
      expectSecurityHeaders(busy, '503');
      const health = await m.api('GET', '/health', { key: null });
      expect(health.status).toBe(200);
      expectSecurityHeaders(health, 'health in maintenance');
    } finally {
      await m.close();
    }
  });

  it('carries them on the errors of malformed URLs (bad percent-encoding, over-long segments)', async () => {
    for (const path of [
      '/get/%zz',
      '/status/%',
      `/get/${'a'.repeat(1100)}`,
      `/status/${'a'.repeat(1100)}`,
    ]) {
      const r = await t.api('GET', path, withId('bad-url'));
      expect(r.status, path).toBeGreaterThanOrEqual(400);
      expect(r.status, path).toBeLessThan(500);
      expectSecurityHeaders(r, path.slice(0, 20));
      expect(r.headers.get('x-request-id'), path.slice(0, 20)).toBe('bad-url');
      errorCode(r);
    }
  });

  it('carries them on the 400 answered to a request that is not HTTP', async () => {
    const r = await rawExchange(t.url, 'NOT HTTP AT ALL\r\n\r\n');
    expect(r.status).toBe(400);
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
      expect(r.headers.get(name), name).toBe(value);
    }
  });

  it('carries them on admin answers too, errors included', async () => {
    const ok = await t.api('GET', '/admin/keys', { admin: true });
    expect(ok.status).toBe(200);
    expectSecurityHeaders(ok, 'admin 200');
    const denied = await t.api('GET', '/admin/keys', { key: null });
    expect(denied.status).toBe(401);
    expectSecurityHeaders(denied, 'admin 401');
  });
});

describe('X-Request-ID', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  it('echoes a safe request id', async () => {
    for (const id of ['abc', 'req-123_x.y:z', 'A', 'r'.repeat(128), '0f8fad5b-d9cb-469f-a165']) {
      const r = await t.api('GET', '/health', withId(id));
      expect(r.headers.get('x-request-id')).toBe(id);
    }
  });

  it('echoes it on errors as well', async () => {
    const notFound = await t.api('GET', '/nowhere', withId('trace-404'));
    expect(notFound.status).toBe(404);
    expect(notFound.headers.get('x-request-id')).toBe('trace-404');
    const bad = await t.api('POST', '/intent', {
      body: { goal: 1, payload: {} },
      ...withId('trace-400'),
    });
    expect(bad.status).toBe(400);
    expect(bad.headers.get('x-request-id')).toBe('trace-400');
    const unauth = await t.api('POST', '/claim', { key: 'wrong', ...withId('trace-401') });
    expect(unauth.status).toBe(401);
    expect(unauth.headers.get('x-request-id')).toBe('trace-401');
  });

  it('is in the one log line of each request, with the method, route, status and time', async () => {
    await t.api('POST', '/intent', { body: { goal: 'g', payload: {} }, ...withId('trace-log') });
    await t.api('GET', '/nowhere', withId('trace-log-404'));
    const lines = readFileSync(t.logFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === 'request');
    expect(lines.find((l) => l.reqId === 'trace-log')).toMatchObject({
      level: 30,
      method: 'POST',
      route: '/intent',
      status: 201,
      ms: expect.any(Number),
    });
    expect(lines.find((l) => l.reqId === 'trace-log-404')).toMatchObject({
      route: 'unmatched',
      status: 404,
    });
  });

  it('generates one when absent', async () => {
    const a = await t.api('GET', '/health');
    const b = await t.api('GET', '/health');
    const idA = a.headers.get('x-request-id');
    const idB = b.headers.get('x-request-id');
    expect(idA).toMatch(REQUEST_ID);
    expect(idB).toMatch(REQUEST_ID);
    expect(idA).not.toBe(idB);
  });

  it('replaces one that is too long or unsafe', async () => {
    for (const given of [
      'r'.repeat(129),
      'has space',
      'has"quote',
      "has'quote",
      'semi;colon',
      '<script>',
      'slash/id',
    ]) {
      const r = await t.api('GET', '/health', withId(given));
      const id = r.headers.get('x-request-id');
      expect(id, given).not.toBe(given);
      expect(id, given).toMatch(REQUEST_ID);
    }
  });
});

describe('times on the wire are unix seconds', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  it('gives run_at, created_at, expires_at, claim_expires_at and completed_at as seconds', async () => {
    const publishedAt = nowSeconds();
    const id = await publish(t.api, { goal: 'times', namespace: 'times' });

    const open = await t.api('GET', `/status/${id}`);
    expect(open.status).toBe(200);
    expectWireTime(open.json.created_at, publishedAt, 'created_at');
    expectWireTime(open.json.run_at, publishedAt, 'run_at');
    expectWireTime(open.json.expires_at, publishedAt + 86_400, 'expires_at');
    expect(open.json.claim_expires_at).toBeNull();

    const claim = await t.api('POST', '/claim?namespace=times');
    expect(claim.status).toBe(200);
    expect(claim.json.claim_timeout).toBe(60);
    expectWireTime(claim.json.claim_expires_at, nowSeconds() + 60, 'claim_expires_at (claim)');

    const claimed = await t.api('GET', `/status/${id}`);
    expectWireTime(claimed.json.claim_expires_at, nowSeconds() + 60, 'claim_expires_at (status)');

    const extended = await t.api('POST', `/extend_claim/${id}`, {
      body: { claim_token: claim.json.claim_token, seconds: 120 },
    });
    expect(extended.status).toBe(200);
    expectWireTime(extended.json.claim_expires_at, nowSeconds() + 120, 'claim_expires_at (extend)');

    const done = await t.api('POST', `/fulfill/${id}`, {
      body: { claim_token: claim.json.claim_token, result: { ok: true } },
    });
    expect(done.status).toBe(200);
    const result = await t.api('GET', `/result/${id}`);
    expect(result.status).toBe(200);
    expectWireTime(result.json.completed_at, nowSeconds(), 'completed_at');
    expectWireTime(result.json.created_at, publishedAt, 'created_at (result)');
    expectWireTime(result.json.run_at, publishedAt, 'run_at (result)');
  });

  it('puts run_at and expires_at after the delay', async () => {
    const at = nowSeconds();
    const id = await publish(t.api, {
      goal: 'times',
      namespace: 'times-delay',
      delay: 30,
      ttl: 600,
    });
    const s = await t.api('GET', `/status/${id}`);
    expectWireTime(s.json.created_at, at, 'created_at');
    expectWireTime(s.json.run_at, at + 30, 'run_at');
    expectWireTime(s.json.expires_at, at + 30 + 600, 'expires_at');
  });

  it('sends the times as JSON numbers, not strings', async () => {
    const id = await publish(t.api, { goal: 'times', namespace: 'times-text' });
    const s = await t.api('GET', `/status/${id}`);
    for (const field of ['run_at', 'created_at', 'expires_at']) {
      expect(s.text).toMatch(new RegExp(`"${field}":\\s*\\d+(\\.\\d+)?[,}]`));
    }
  });
});

describe('GET /health', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  it('answers 200 {ok: true, ts, version} without credentials', async () => {
    const before = nowSeconds();
    const r = await t.api('GET', '/health', { key: null });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    expect(r.json.ok).toBe(true);
    expectWireTime(r.json.ts, before, 'ts');
    expect(typeof r.json.version).toBe('string');
    expect(r.json.version.length).toBeGreaterThan(0);
    expectSecurityHeaders(r, 'health');
  });
});
