/**
 * Transport settings of PRODUCT.md "Configuration": BUS_ENFORCE_HTTPS with and without
 * BUS_TRUST_PROXY, direct TLS (BUS_TLS_CERT / BUS_TLS_KEY), BUS_MAINTENANCE_MODE, and
 * the socket timeouts that keep a slow client from holding a connection.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  MAIN_KEY,
  errorCode,
  startTestBus,
  type ApiResponse,
  type TestBus,
  selfSignedCert,
} from './helpers.js';
import { SERVER_TIMEOUTS } from '../src/http/app.js';

const CANARY = 'PAYLOAD_CANARY';
const FOREIGN_IP = '203.0.113.7';

function expectError(r: ApiResponse, status: number, code: string): void {
  expect(r.status, r.text).toBe(status);
  expect(errorCode(r)).toBe(code);
}

const intentBody = (goal: string): Record<string, unknown> => ({
  goal,
  payload: { canary: CANARY },
});

describe('BUS_ENFORCE_HTTPS behind a trusted proxy (BUS_TRUST_PROXY=true)', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus({ env: { BUS_ENFORCE_HTTPS: 'true', BUS_TRUST_PROXY: 'true' } });
  });
  afterAll(async () => t.close());

  it('refuses a forwarded client without X-Forwarded-Proto with 403 https_required', async () => {
    const r = await t.api('POST', '/intent', {
      body: intentBody('https-refused'),
      headers: { 'x-forwarded-for': FOREIGN_IP },
    });
    expectError(r, 403, 'https_required');
    expect(r.headers.get('x-intent-version')).toBe('2.1');
    // Nothing was published.
    const claim = await t.api('POST', '/claim?goal=https-refused');
    expect(claim.status).toBe(204);
  });

  it('refuses a forwarded client that came over plain HTTP (X-Forwarded-Proto: http)', async () => {
    const r = await t.api('GET', '/get/anything', {
      headers: { 'x-forwarded-for': FOREIGN_IP, 'x-forwarded-proto': 'http' },
    });
    expectError(r, 403, 'https_required');
  });

  it('refuses the admin API to a forwarded plain-HTTP client too', async () => {
    const r = await t.api('GET', '/admin/keys', {
      admin: true,
      headers: { 'x-forwarded-for': FOREIGN_IP },
    });
    expectError(r, 403, 'https_required');
  });

  it('passes a forwarded client with X-Forwarded-Proto: https', async () => {
    const r = await t.api('POST', '/intent', {
      body: intentBody('https-forwarded'),
      headers: { 'x-forwarded-for': FOREIGN_IP, 'x-forwarded-proto': 'https' },
    });
    expect(r.status, r.text).toBe(201);
    const admin = await t.api('GET', '/admin/keys', {
      admin: true,
      headers: { 'x-forwarded-for': FOREIGN_IP, 'x-forwarded-proto': 'https' },
    });
    expect(admin.status, admin.text).toBe(200);
  });

  it('always answers /health', async () => {
    const r = await t.api('GET', '/health', {
      key: null,
      headers: { 'x-forwarded-for': FOREIGN_IP },
    });
    expect(r.status, r.text).toBe(200);
    expect(r.json).toMatchObject({ ok: true });
  });

  it('takes the client from the last X-Forwarded-For entry, which the proxy wrote', async () => {
    // A proxy that appends: the client claims to be 127.0.0.1, the proxy adds its address.
    const r = await t.api('POST', '/intent', {
      body: intentBody('https-spoofed'),
      headers: { 'x-forwarded-for': `127.0.0.1, ${FOREIGN_IP}` },
    });
    expectError(r, 403, 'https_required');
  });

  it('passes a loopback client without forwarding headers', async () => {
    const r = await t.api('POST', '/intent', { body: intentBody('https-loopback') });
    expect(r.status, r.text).toBe(201);
    const claim = await t.api('POST', '/claim?goal=https-loopback');
    expect(claim.status).toBe(200);
  });
});

describe('BUS_ENFORCE_HTTPS without BUS_TRUST_PROXY', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus({ env: { BUS_ENFORCE_HTTPS: 'true' } });
  });
  afterAll(async () => t.close());

  it('ignores X-Forwarded-For: the client is the loopback peer and passes', async () => {
    const r = await t.api('POST', '/intent', {
      body: intentBody('https-untrusted-xff'),
      headers: { 'x-forwarded-for': FOREIGN_IP },
    });
    expect(r.status, r.text).toBe(201);
    const g = await t.api('GET', '/get/nothing', {
      headers: { 'x-forwarded-for': FOREIGN_IP, 'x-forwarded-proto': 'http' },
    });
    expectError(g, 404, 'not_found');
  });
});

interface RawResponse {
  status: number;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- tests read arbitrary shapes
}

/** One request over node:https, accepting the self-signed test certificate. */
function overHttps(
  url: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: unknown,
): Promise<RawResponse> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url + path,
      {
        method,
        rejectUnauthorized: false,
        agent: false,
        headers: {
          ...headers,
          ...(data === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) }),
        },
        timeout: 5000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('https request timed out')));
    req.on('error', reject);
    req.end(data);
  });
}

/** A plain-HTTP GET; resolves with the status, or rejects on a transport error. */
function overPlainHttp(url: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url + path, { method: 'GET', agent: false, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('plain request timed out')));
    req.on('error', reject);
    req.end();
  });
}

describe('direct TLS (BUS_TLS_CERT, BUS_TLS_KEY)', () => {
  let certDir: string;
  let cert: string;
  let key: string;
  beforeAll(() => {
    certDir = mkdtempSync(join(tmpdir(), 'intent-bus-tls-'));
    ({ cert, key } = selfSignedCert(certDir));
  });
  afterAll(() => rmSync(certDir, { recursive: true, force: true }));

  describe('a bus serving HTTPS', () => {
    let t: TestBus;
    beforeAll(async () => {
      t = await startTestBus({ env: { BUS_TLS_CERT: cert, BUS_TLS_KEY: key } });
    });
    afterAll(async () => t.close());

    it('announces an https:// URL', () => {
      expect(t.url.startsWith('https://'), t.url).toBe(true);
    });

    it('answers /health over TLS', async () => {
      const r = await overHttps(t.url, 'GET', '/health');
      expect(r.status, r.text).toBe(200);
      expect(r.json).toMatchObject({ ok: true });
    });

    it('takes a publish with the main key over TLS, and the intent can be claimed', async () => {
      const r = await overHttps(
        t.url,
        'POST',
        '/intent',
        { 'x-api-key': MAIN_KEY },
        intentBody('tls-publish'),
      );
      expect(r.status, r.text).toBe(201);
      expect(r.json).toMatchObject({ status: 'published' });
      const claim = await overHttps(t.url, 'POST', '/claim?goal=tls-publish', {
        'x-api-key': MAIN_KEY,
      });
      expect(claim.status, claim.text).toBe(200);
      expect(claim.json).toMatchObject({ id: r.json.id, payload: { canary: CANARY } });
      const admin = await overHttps(t.url, 'GET', '/admin/keys', { 'x-admin-token': ADMIN_TOKEN });
      expect(admin.status, admin.text).toBe(200);
    });

    it('does not answer plain HTTP on the TLS port', async () => {
      const plainUrl = t.url.replace(/^https:/, 'http:');
      let outcome: string;
      try {
        outcome = `answered ${await overPlainHttp(plainUrl, '/health')}`;
      } catch (err) {
        outcome = `failed: ${(err as Error).message}`;
      }
      expect(outcome).toMatch(/^failed: /);
      // The TLS listener is still fine afterwards.
      expect((await overHttps(t.url, 'GET', '/health')).status).toBe(200);
    });
  });

  /** Starts a bus that must fail; returns the error. */
  async function startFailure(env: Record<string, string>): Promise<Error> {
    const dir = mkdtempSync(join(tmpdir(), 'intent-bus-tls-fail-'));
    try {
      let bus: TestBus | undefined;
      try {
        bus = await startTestBus({ env, dir });
      } catch (err) {
        return err as Error;
      }
      await bus.close();
      throw new Error(`the bus started with ${JSON.stringify(env)}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('refuses to start with a missing certificate file, naming BUS_TLS_CERT', async () => {
    const err = await startFailure({
      BUS_TLS_CERT: join(certDir, 'missing.pem'),
      BUS_TLS_KEY: key,
    });
    expect(err.name).toBe('ConfigError');
    expect(err.message).toContain('BUS_TLS_CERT');
  });

  it('refuses to start with a missing key file, naming BUS_TLS_KEY', async () => {
    const err = await startFailure({ BUS_TLS_CERT: cert, BUS_TLS_KEY: join(certDir, 'none.pem') });
    expect(err.name).toBe('ConfigError');
    expect(err.message).toContain('BUS_TLS_KEY');
  });

  it('refuses to start with only BUS_TLS_CERT set, naming BUS_TLS_CERT', async () => {
    const err = await startFailure({ BUS_TLS_CERT: cert });
    expect(err.name).toBe('ConfigError');
    expect(err.message).toContain('BUS_TLS_CERT');
  });

  it('refuses to start with only BUS_TLS_KEY set, naming BUS_TLS_CERT', async () => {
    const err = await startFailure({ BUS_TLS_KEY: key });
    expect(err.name).toBe('ConfigError');
    expect(err.message).toContain('BUS_TLS_CERT');
  });

  it('refuses to start with a file that is not a certificate, naming the variable', async () => {
    const junk = join(certDir, `junk-${randomBytes(4).toString('hex')}.pem`);
    writeFileSync(junk, 'not a certificate\n');
    const err = await startFailure({ BUS_TLS_CERT: junk, BUS_TLS_KEY: key });
    expect(err.name).toBe('ConfigError');
    expect(err.message).toMatch(/BUS_TLS_(CERT|KEY)/);
  });
});

describe('BUS_MAINTENANCE_MODE=true', () => {
  let t: TestBus;
  let tester: string;
  beforeAll(async () => {
    t = await startTestBus({ env: { BUS_MAINTENANCE_MODE: 'true' } });
    tester = (await t.newKey('maintenance')).api_key;
  });
  afterAll(async () => t.close());

  const id = randomBytes(16).toString('hex');
  const clientCalls: Array<[string, string, unknown]> = [
    ['POST', '/intent', intentBody('maintenance')],
    ['POST', '/claim', undefined],
    ['POST', `/extend_claim/${id}`, { claim_token: id, seconds: 60 }],
    ['POST', `/fulfill/${id}`, { claim_token: id }],
    ['POST', `/fail/${id}`, { claim_token: id }],
    ['GET', `/result/${id}`, undefined],
    ['GET', `/status/${id}`, undefined],
    ['POST', '/set/maintenance', { value: 1 }],
    ['GET', '/get/maintenance', undefined],
  ];

  for (const [method, path, body] of clientCalls) {
    it(`answers ${method} ${path.replace(id, '<id>')} with 503 maintenance`, async () => {
      for (const key of [undefined, tester]) {
        const r = await t.api(method, path, { key, body });
        expectError(r, 503, 'maintenance');
        expect(r.headers.get('x-intent-version')).toBe('2.1');
      }
    });
  }

  it('still answers /health with 200', async () => {
    const r = await t.api('GET', '/health', { key: null });
    expect(r.status, r.text).toBe(200);
    expect(r.json).toMatchObject({ ok: true });
  });

  it('still answers the admin API with 200', async () => {
    const keys = await t.api('GET', '/admin/keys', { admin: true });
    expect(keys.status, keys.text).toBe(200);
    const cleanup = await t.api('POST', '/admin/cleanup', { admin: true });
    expect(cleanup.status, cleanup.text).toBe(200);
    const dead = await t.api('GET', '/admin/dead', { admin: true });
    expect(dead.status, dead.text).toBe(200);
  });
});

describe('slow clients', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  it('disconnects a client that trickles its headers, and keeps serving others', async () => {
    // The server must cut the socket soon after its headers timeout (plus the checking
    // interval); the test gives up at 18 s, within its 20 s bound.
    const limitMs = SERVER_TIMEOUTS.headersTimeout + 2_000 + 500;
    expect(SERVER_TIMEOUTS.headersTimeout).toBeLessThanOrEqual(10_000);
    const { hostname, port } = new URL(t.url);
    const socket = connect(Number(port), hostname);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const start = Date.now();
    let weClosed = false;
    let serverClosedAt: number | null = null;
    let received = '';
    socket.on('data', (c: Buffer) => {
      received += c.toString('utf8');
    });
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => {
      socket.once('close', () => {
        if (!weClosed) serverClosedAt = Date.now();
        resolve();
      });
    });
    socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trickle: ');
    const trickle = setInterval(() => {
      if (socket.writable) socket.write('a');
    }, 500);

    // Meanwhile, normal requests are served.
    const served: number[] = [];
    let n = 0;
    const others = (async () => {
      while (serverClosedAt === null && Date.now() - start < 17_000 && !weClosed) {
        const h = await t.api('GET', '/health', { key: null });
        const p = await t.api('POST', '/intent', { body: intentBody(`slow-${++n}`) });
        served.push(h.status, p.status);
        await sleep(1000);
      }
    })();

    const giveUp = sleep(18_000).then(() => 'timeout' as const);
    const outcome = await Promise.race([closed.then(() => 'closed' as const), giveUp]);
    clearInterval(trickle);
    if (outcome === 'timeout') {
      weClosed = true;
      socket.destroy();
    }
    await others;

    expect(outcome, 'the server closed the trickling socket').toBe('closed');
    expect(serverClosedAt, 'closed by the server, not by the test').not.toBeNull();
    const elapsed = serverClosedAt! - start;
    expect(elapsed, `closed after ${elapsed} ms`).toBeLessThanOrEqual(limitMs);
    // Never answered as if the request were complete.
    expect(received).not.toMatch(/^HTTP\/1\.1 200/);
    expect(served.length).toBeGreaterThanOrEqual(4);
    expect(
      served.every((s) => s === 200 || s === 201),
      served.join(','),
    ).toBe(true);
  }, 20_000);
});
