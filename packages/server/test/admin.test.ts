/**
 * The admin API of PROTOCOL.md §3 (admin authentication, cross-site rule) and §6
 * (keys, purge, cleanup and retention, intents, dead letters), over real HTTP.
 */
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { CLEANUP_COUNTERS } from '@intent-bus/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  DASHBOARD_PASSWORD,
  errorCode,
  publish,
  startTestBus,
  type ApiResponse,
  type TestBus,
} from './helpers.js';

const REALM = 'Basic realm="IntentBus Admin"';
const basic = (user: string, password: string): string =>
  'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
const unknownId = (): string => randomBytes(16).toString('hex');

function expectAdminUnauthorized(r: ApiResponse): void {
  expect(r.status).toBe(401);
  expect(errorCode(r)).toBe('unauthorized');
  expect(r.headers.get('www-authenticate')).toBe(REALM);
}

function expectError(r: ApiResponse, status: number, code?: string): void {
  expect(r.status, r.text).toBe(status);
  const c = errorCode(r);
  if (code !== undefined) expect(c).toBe(code);
}

describe('admin authentication (§3)', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  it('accepts the right X-Admin-Token', async () => {
    const r = await t.api('GET', '/admin/keys', { admin: true });
    expect(r.status).toBe(200);
    expect(Array.isArray(r.json)).toBe(true);
  });

  it('refuses a wrong X-Admin-Token with 401 and the Basic challenge', async () => {
    const r = await t.api('GET', '/admin/keys', {
      key: null,
      headers: { 'x-admin-token': ADMIN_TOKEN + 'x' },
    });
    expectAdminUnauthorized(r);
  });

  it('lets a present X-Admin-Token alone decide, even beside valid Basic credentials', async () => {
    const r = await t.api('GET', '/admin/keys', {
      key: null,
      headers: {
        'x-admin-token': 'not-the-admin-token',
        authorization: basic('admin', DASHBOARD_PASSWORD),
      },
    });
    expectAdminUnauthorized(r);
  });

  it('accepts Basic admin:<DASHBOARD_PASSWORD>', async () => {
    const r = await t.api('GET', '/admin/keys', {
      key: null,
      headers: { authorization: basic('admin', DASHBOARD_PASSWORD) },
    });
    expect(r.status).toBe(200);
    expect(Array.isArray(r.json)).toBe(true);
  });

  it('refuses Basic with another user or a wrong password', async () => {
    for (const authorization of [
      basic('root', DASHBOARD_PASSWORD),
      basic('Admin', DASHBOARD_PASSWORD),
      basic('admin', DASHBOARD_PASSWORD + 'x'),
      basic('admin', ''),
      basic('admin', ADMIN_TOKEN),
    ]) {
      const r = await t.api('GET', '/admin/keys', { key: null, headers: { authorization } });
      expectAdminUnauthorized(r);
    }
  });

  it('never takes the main API key as an admin credential', async () => {
    const r = await t.api('GET', '/admin/keys'); // sends X-API-KEY: main key
    expectAdminUnauthorized(r);
    const post = await t.api('POST', '/admin/generate_key', { body: { owner: 'x' } });
    expectAdminUnauthorized(post);
  });

  it('never takes a tester key as an admin credential', async () => {
    const { api_key } = await t.newKey('someone');
    const r = await t.api('GET', '/admin/keys', { key: api_key });
    expectAdminUnauthorized(r);
  });

  it('refuses a request without credentials', async () => {
    const r = await t.api('GET', '/admin/keys', { key: null });
    expectAdminUnauthorized(r);
    const post = await t.api('POST', '/admin/cleanup', { key: null });
    expectAdminUnauthorized(post);
  });
});

describe('cross-site protection of admin mutations (§3)', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  const generate = (headers: Record<string, string>, raw?: string): Promise<ApiResponse> =>
    t.api(
      'POST',
      '/admin/generate_key',
      raw === undefined
        ? { admin: true, body: { owner: 'site' }, headers }
        : { admin: true, raw, headers },
    );

  it('refuses an Origin whose host differs from Host', async () => {
    expectError(await generate({ origin: 'http://evil.example' }), 403, 'forbidden');
    expectError(await generate({ origin: 'https://evil.example:8443' }), 403, 'forbidden');
  });

  it('refuses an Origin with the same host but another port', async () => {
    const port = Number(new URL(t.url).port);
    const other = `http://127.0.0.1:${port === 65535 ? port - 1 : port + 1}`;
    expectError(await generate({ origin: other }), 403, 'forbidden');
  });

  it('refuses a foreign Origin whatever the credentials (Basic too)', async () => {
    const r = await t.api('POST', '/admin/generate_key', {
      key: null,
      body: { owner: 'site' },
      headers: { authorization: basic('admin', DASHBOARD_PASSWORD), origin: 'http://evil.example' },
    });
    expectError(r, 403, 'forbidden');
  });

  it("allows the server's own origin", async () => {
    const r = await generate({ origin: t.url });
    expect(r.status, r.text).toBe(201);
  });

  it('refuses Sec-Fetch-Site: cross-site and allows same-origin', async () => {
    expectError(await generate({ 'sec-fetch-site': 'cross-site' }), 403, 'forbidden');
    const same = await generate({ 'sec-fetch-site': 'same-origin' });
    expect(same.status, same.text).toBe(201);
  });

  it('refuses form bodies', async () => {
    expectError(
      await generate({ 'content-type': 'application/x-www-form-urlencoded' }, 'owner=site'),
      403,
      'forbidden',
    );
    expectError(
      await generate(
        { 'content-type': 'multipart/form-data; boundary=xyz' },
        '--xyz\r\nContent-Disposition: form-data; name="owner"\r\n\r\nsite\r\n--xyz--\r\n',
      ),
      403,
      'forbidden',
    );
    expectError(
      await generate({ 'content-type': 'text/plain' }, '{"owner":"site"}'),
      403,
      'forbidden',
    );
    expectError(
      await generate({ 'content-type': 'text/plain;charset=UTF-8' }, '{"owner":"site"}'),
      403,
      'forbidden',
    );
  });

  it('applies to other mutating admin routes too', async () => {
    const id = await publish(t.api, { goal: 'x' });
    const headers = { origin: 'http://evil.example' };
    expectError(
      await t.api('POST', `/admin/intents/${id}/cancel`, { admin: true, headers }),
      403,
      'forbidden',
    );
    expectError(
      await t.api('POST', '/admin/purge', { admin: true, headers, body: { confirm: true } }),
      403,
      'forbidden',
    );
    expectError(await t.api('POST', '/admin/cleanup', { admin: true, headers }), 403, 'forbidden');
    // Nothing changed.
    const status = await t.api('GET', `/status/${id}`);
    expect(status.json.status).toBe('open');
  });

  it('does not apply to GET admin routes', async () => {
    const r = await t.api('GET', '/admin/keys', {
      admin: true,
      headers: { origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' },
    });
    expect(r.status).toBe(200);
    const dead = await t.api('GET', '/admin/dead', {
      admin: true,
      headers: { origin: 'http://evil.example' },
    });
    expect(dead.status).toBe(200);
  });
});

describe('tester keys (§6)', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  it('generate_key answers 201 with a tk_ key, the owner and a key_id', async () => {
    const r = await t.api('POST', '/admin/generate_key', { admin: true, body: { owner: 'alice' } });
    expect(r.status).toBe(201);
    expect(r.json.api_key).toMatch(/^tk_/);
    expect(r.json.owner).toBe('alice');
    expect(typeof r.json.key_id).toBe('string');
    expect(r.json.key_id.length).toBeGreaterThan(0);
    expect(r.json.key_id).not.toBe(r.json.api_key);
    // Keys are distinct.
    const r2 = await t.api('POST', '/admin/generate_key', {
      admin: true,
      body: { owner: 'alice' },
    });
    expect(r2.json.api_key).not.toBe(r.json.api_key);
    expect(r2.json.key_id).not.toBe(r.json.key_id);
  });

  it('generate_key without an owner answers 400', async () => {
    expectError(await t.api('POST', '/admin/generate_key', { admin: true, body: {} }), 400);
    expectError(await t.api('POST', '/admin/generate_key', { admin: true }), 400);
  });

  it('a new key works as X-API-KEY', async () => {
    const { api_key } = await t.newKey('worker');
    const r = await t.api('POST', '/intent', {
      key: api_key,
      body: { goal: 'g', payload: { a: 1 } },
    });
    expect(r.status).toBe(201);
    const status = await t.api('GET', `/status/${r.json.id}`, { key: api_key });
    expect(status.status).toBe(200);
  });

  it('GET /admin/keys lists keys with a prefix, never the whole key', async () => {
    const { api_key, key_id } = await t.newKey('bob');
    const r = await t.api('GET', '/admin/keys', { admin: true });
    expect(r.status).toBe(200);
    expect(r.text).not.toContain(api_key);
    expect(r.text).not.toContain(api_key.slice(3));
    const entry = (r.json as Array<Record<string, unknown>>).find((k) => k.key_id === key_id);
    expect(entry).toBeDefined();
    expect(entry).toMatchObject({
      key_id,
      owner: 'bob',
      prefix: api_key.slice(0, 8),
      last_used_at: null,
      requests: 0,
    });
    expect(typeof entry!.created_at).toBe('number');
    const now = Date.now() / 1000;
    expect(entry!.created_at as number).toBeGreaterThan(now - 60);
    expect(entry!.created_at as number).toBeLessThanOrEqual(now + 1);
    for (const k of r.json as Array<Record<string, unknown>>) {
      expect(Object.keys(k)).toEqual(
        expect.arrayContaining(['key_id', 'owner', 'prefix', 'created_at', 'last_used_at']),
      );
      expect(k).not.toHaveProperty('api_key');
      expect(String(k.prefix)).toHaveLength(8);
    }
  });

  it('counts the requests of a key and sets last_used_at', async () => {
    const { api_key, key_id } = await t.newKey('counted');
    const before = Date.now() / 1000;
    await publish(t.api, { goal: 'count' }, api_key);
    await t.api('POST', '/claim?goal=nothing-here', { key: api_key });
    await t.api('GET', '/get/nothing', { key: api_key });
    const r = await t.api('GET', '/admin/keys', { admin: true });
    const entry = (r.json as Array<Record<string, unknown>>).find((k) => k.key_id === key_id)!;
    expect(entry.requests).toBe(3);
    expect(typeof entry.last_used_at).toBe('number');
    expect(entry.last_used_at as number).toBeGreaterThanOrEqual(before - 1);
    expect(entry.last_used_at as number).toBeLessThanOrEqual(Date.now() / 1000 + 1);
    expect(r.text).not.toContain(api_key);
  });

  async function revokeAndCheck(by: 'api_key' | 'key_id'): Promise<void> {
    const key = await t.newKey(`revoke-by-${by}`);
    // The key works first (and is cached as known).
    await publish(t.api, { goal: 'before-revoke' }, key.api_key);
    const r = await t.api('POST', '/admin/revoke_key', {
      admin: true,
      body: { [by]: key[by] },
    });
    expect(r.status, r.text).toBe(200);
    const after = await t.api('POST', '/intent', {
      key: key.api_key,
      body: { goal: 'after-revoke', payload: {} },
    });
    expectError(after, 401, 'unauthorized');
    const list = await t.api('GET', '/admin/keys', { admin: true });
    expect((list.json as Array<{ key_id: string }>).map((k) => k.key_id)).not.toContain(key.key_id);
    const again = await t.api('POST', '/admin/revoke_key', {
      admin: true,
      body: { [by]: key[by] },
    });
    expectError(again, 404, 'not_found');
    // The other handle of the same revoked key is unknown too.
    const other = by === 'api_key' ? 'key_id' : 'api_key';
    const byOther = await t.api('POST', '/admin/revoke_key', {
      admin: true,
      body: { [other]: key[other] },
    });
    expectError(byOther, 404, 'not_found');
  }

  it('revokes by api_key', async () => {
    await revokeAndCheck('api_key');
  });

  it('revokes by key_id', async () => {
    await revokeAndCheck('key_id');
  });

  it('revoking an unknown key answers 404', async () => {
    expectError(
      await t.api('POST', '/admin/revoke_key', { admin: true, body: { api_key: 'tk_nope' } }),
      404,
      'not_found',
    );
    expectError(
      await t.api('POST', '/admin/revoke_key', { admin: true, body: { key_id: 'kid_nope' } }),
      404,
      'not_found',
    );
  });

  it('revoke_key with neither field answers 400', async () => {
    expectError(await t.api('POST', '/admin/revoke_key', { admin: true, body: {} }), 400);
    expectError(await t.api('POST', '/admin/revoke_key', { admin: true }), 400);
  });

  it('revoking one key leaves the others working', async () => {
    const a = await t.newKey('a');
    const b = await t.newKey('b');
    const r = await t.api('POST', '/admin/revoke_key', {
      admin: true,
      body: { key_id: a.key_id },
    });
    expect(r.status).toBe(200);
    expect((await t.api('POST', '/claim', { key: b.api_key })).status).toBe(204);
    expect((await t.api('POST', '/claim', { key: a.api_key })).status).toBe(401);
  });
});

describe('purge (§6)', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  it('refuses without confirm: true', async () => {
    const id = await publish(t.api, { goal: 'keep' });
    for (const body of [{}, { confirm: false }, { confirm: 'true' }, { confirm: 1 }]) {
      expectError(await t.api('POST', '/admin/purge', { admin: true, body }), 400);
    }
    expectError(await t.api('POST', '/admin/purge', { admin: true }), 400);
    expect((await t.api('GET', `/status/${id}`)).status).toBe(200);
  });

  it('with a namespace deletes only that namespace', async () => {
    const a1 = await publish(t.api, { goal: 'g', namespace: 'purge-a' });
    const a2 = await publish(t.api, { goal: 'g', namespace: 'purge-a' });
    const b1 = await publish(t.api, { goal: 'g', namespace: 'purge-b' });
    const r = await t.api('POST', '/admin/purge', {
      admin: true,
      body: { confirm: true, namespace: 'purge-a' },
    });
    expect(r.status, r.text).toBe(200);
    expect(Object.values(r.json)).toContain(2);
    expect((await t.api('GET', `/status/${a1}`)).status).toBe(404);
    expect((await t.api('GET', `/status/${a2}`)).status).toBe(404);
    expect((await t.api('GET', `/status/${b1}`)).status).toBe(200);
    const claim = await t.api('POST', '/claim?namespace=purge-b');
    expect(claim.json.id).toBe(b1);
  });

  it('ends a result wait on a purged intent at once with 404', async () => {
    const id = await publish(t.api, { goal: 'g', namespace: 'purge-wait' });
    const started = performance.now();
    const waiting = t.api('GET', `/result/${id}?wait=25`);
    await new Promise((r) => setTimeout(r, 200));
    const r = await t.api('POST', '/admin/purge', {
      admin: true,
      body: { confirm: true, namespace: 'purge-wait' },
    });
    expect(r.status, r.text).toBe(200);
    const answer = await waiting;
    expect(answer.status).toBe(404);
    // Far short of the 25 s it asked to wait.
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it('with confirm: true deletes every intent and dead letter', async () => {
    const open = await publish(t.api, { goal: 'g', namespace: 'purge-all-1' });
    const dead = await publish(t.api, { goal: 'g', namespace: 'purge-all-2' });
    const cancel = await t.api('POST', `/admin/intents/${dead}/cancel`, { admin: true });
    expect(cancel.json.status).toBe('dead');
    expect((await t.api('GET', `/admin/dead/${dead}`, { admin: true })).status).toBe(200);
    const r = await t.api('POST', '/admin/purge', { admin: true, body: { confirm: true } });
    expect(r.status, r.text).toBe(200);
    const counts = Object.values(r.json).filter((v) => typeof v === 'number');
    expect(counts.length).toBeGreaterThan(0);
    expect((await t.api('GET', `/status/${open}`)).status).toBe(404);
    expect((await t.api('GET', `/status/${dead}`)).status).toBe(404);
    expect((await t.api('GET', `/admin/intents/${open}`, { admin: true })).status).toBe(404);
    expect((await t.api('GET', `/admin/dead/${dead}`, { admin: true })).status).toBe(404);
    const list = await t.api('GET', '/admin/dead', { admin: true });
    expect(list.json).toEqual([]);
    expect((await t.api('POST', '/claim?namespace=purge-all-1')).status).toBe(204);
  });
});

describe('cleanup (§6)', () => {
  it('answers every counter of §6 as a number', async () => {
    const t = await startTestBus();
    try {
      const r = await t.api('POST', '/admin/cleanup', { admin: true });
      expect(r.status, r.text).toBe(200);
      for (const name of CLEANUP_COUNTERS) {
        expect(typeof r.json[name], name).toBe('number');
        expect(r.json[name], name).toBe(0);
      }
    } finally {
      await t.close();
    }
  });

  it('deletes fulfilled and dead intents older than the retention (manual clock)', async () => {
    const t = await startTestBus({ manualClock: true });
    try {
      const clock = t.manual!;
      const oldDone = await publish(t.api, { goal: 'retained', payload: { n: 1 } });
      const claim = await t.api('POST', '/claim?goal=retained');
      expect(claim.json.id).toBe(oldDone);
      const done = await t.api('POST', `/fulfill/${oldDone}`, {
        body: { claim_token: claim.json.claim_token, result: { ok: true } },
      });
      expect(done.status).toBe(200);
      const oldDead = await publish(t.api, { goal: 'retained-dead' });
      expect(
        (await t.api('POST', `/admin/intents/${oldDead}/cancel`, { admin: true })).json.status,
      ).toBe('dead');

      const retention = 7 * 24 * 3600 * 1000;
      clock.advance(retention - 60_000);
      const young = await publish(t.api, { goal: 'young' });
      const c2 = await t.api('POST', '/claim?goal=young');
      await t.api('POST', `/fulfill/${young}`, { body: { claim_token: c2.json.claim_token } });

      const early = await t.api('POST', '/admin/cleanup', { admin: true });
      expect(early.json.fulfilled_deleted).toBe(0);
      expect(early.json.dead_deleted).toBe(0);
      expect((await t.api('GET', `/status/${oldDone}`)).status).toBe(200);
      expect((await t.api('GET', `/status/${oldDead}`)).status).toBe(200);

      clock.advance(120_000);
      const r = await t.api('POST', '/admin/cleanup', { admin: true });
      expect(r.status).toBe(200);
      expect(r.json.fulfilled_deleted).toBe(1);
      expect(r.json.dead_deleted).toBe(1);
      expect((await t.api('GET', `/status/${oldDone}`)).status).toBe(404);
      expect((await t.api('GET', `/status/${oldDead}`)).status).toBe(404);
      expect((await t.api('GET', `/result/${young}`)).json.status).toBe('fulfilled');
    } finally {
      await t.close();
    }
  });

  it('honours BUS_RETENTION_SECONDS', async () => {
    const t = await startTestBus({ manualClock: true, env: { BUS_RETENTION_SECONDS: '3600' } });
    try {
      const id = await publish(t.api, { goal: 'short' });
      await t.api('POST', `/admin/intents/${id}/cancel`, { admin: true });
      t.manual!.advance(3500_000);
      expect((await t.api('POST', '/admin/cleanup', { admin: true })).json.dead_deleted).toBe(0);
      t.manual!.advance(200_000);
      expect((await t.api('POST', '/admin/cleanup', { admin: true })).json.dead_deleted).toBe(1);
      expect((await t.api('GET', `/status/${id}`)).status).toBe(404);
    } finally {
      await t.close();
    }
  });

  it('counts an expired KV entry in store_deleted', async () => {
    const t = await startTestBus({ manualClock: true });
    try {
      expect((await t.api('POST', '/set/short', { body: { value: 1, ttl: 1 } })).status).toBe(200);
      expect((await t.api('POST', '/set/long', { body: { value: 2, ttl: 600 } })).status).toBe(200);
      t.manual!.advance(2000);
      expect((await t.api('GET', '/get/short')).status).toBe(404);
      const r = await t.api('POST', '/admin/cleanup', { admin: true });
      expect(r.json.store_deleted).toBe(1);
      expect((await t.api('GET', '/get/long')).json).toEqual({ value: 2 });
      const again = await t.api('POST', '/admin/cleanup', { admin: true });
      expect(again.json.store_deleted).toBe(0);
    } finally {
      await t.close();
    }
  });
});

describe('admin intents (§6, §2)', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  it('GET /admin/intents/<id> answers the full intent, payload and result included', async () => {
    const id = await publish(t.api, { goal: 'full', payload: { text: 'hi', n: [1, 2] } });
    const open = await t.api('GET', `/admin/intents/${id}`, { admin: true });
    expect(open.status).toBe(200);
    expect(open.json).toMatchObject({
      id,
      goal: 'full',
      namespace: 'default',
      status: 'open',
      payload: { text: 'hi', n: [1, 2] },
      result: null,
    });
    const claim = await t.api('POST', '/claim?goal=full');
    await t.api('POST', `/fulfill/${id}`, {
      body: { claim_token: claim.json.claim_token, result: { answer: 42 }, result_type: 'json' },
    });
    const r = await t.api('GET', `/admin/intents/${id}`, { admin: true });
    expect(r.json).toMatchObject({
      id,
      status: 'fulfilled',
      payload: { text: 'hi', n: [1, 2] },
      result: { answer: 42 },
      result_type: 'json',
      claim_attempts: 1,
    });
    expect(typeof r.json.completed_at).toBe('number');
  });

  it('GET /admin/intents/<id> of an unknown id answers 404', async () => {
    expectError(
      await t.api('GET', `/admin/intents/${unknownId()}`, { admin: true }),
      404,
      'not_found',
    );
    expectError(await t.api('GET', '/admin/intents/not-an-id', { admin: true }), 404, 'not_found');
  });

  it('cancel moves an open intent to dead with reason cancelled', async () => {
    const id = await publish(t.api, { goal: 'to-cancel' });
    const r = await t.api('POST', `/admin/intents/${id}/cancel`, { admin: true });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ ok: true, id, status: 'dead' });
    expect((await t.api('GET', `/status/${id}`)).json.status).toBe('dead');
    expect((await t.api('POST', '/claim?goal=to-cancel')).status).toBe(204);
    const dead = await t.api('GET', `/admin/dead/${id}`, { admin: true });
    expect(dead.json.reason).toBe('cancelled');
  });

  it('cancel of a claimed intent kills its token', async () => {
    const id = await publish(t.api, { goal: 'cancel-claimed' });
    const claim = await t.api('POST', '/claim?goal=cancel-claimed');
    const r = await t.api('POST', `/admin/intents/${id}/cancel`, { admin: true });
    expect(r.json).toMatchObject({ ok: true, id, status: 'dead' });
    const done = await t.api('POST', `/fulfill/${id}`, {
      body: { claim_token: claim.json.claim_token },
    });
    expectError(done, 404, 'not_found');
    expect((await t.api('GET', `/status/${id}`)).json.status).toBe('dead');
  });

  it('cancel of a fulfilled or dead intent changes nothing and answers 200', async () => {
    const id = await publish(t.api, { goal: 'cancel-done' });
    const claim = await t.api('POST', '/claim?goal=cancel-done');
    await t.api('POST', `/fulfill/${id}`, {
      body: { claim_token: claim.json.claim_token, result: 'x', result_type: 'text' },
    });
    const r = await t.api('POST', `/admin/intents/${id}/cancel`, { admin: true });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ ok: true, id, status: 'fulfilled' });
    expect((await t.api('GET', `/result/${id}`)).json).toMatchObject({
      status: 'fulfilled',
      result: 'x',
    });

    const dead = await publish(t.api, { goal: 'cancel-twice' });
    await t.api('POST', `/admin/intents/${dead}/cancel`, { admin: true });
    const again = await t.api('POST', `/admin/intents/${dead}/cancel`, { admin: true });
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ ok: true, id: dead, status: 'dead' });
  });

  it('retry brings a dead intent back to open, attempts and error cleared', async () => {
    const id = await publish(t.api, { goal: 'retry-dead', max_attempts: 1, payload: { p: 1 } });
    const claim = await t.api('POST', '/claim?goal=retry-dead');
    const fail = await t.api('POST', `/fail/${id}`, {
      body: { claim_token: claim.json.claim_token, error: 'boom' },
    });
    expect(fail.json.status).toBe('dead');
    expect((await t.api('GET', `/admin/dead/${id}`, { admin: true })).status).toBe(200);

    const r = await t.api('POST', `/admin/intents/${id}/retry`, { admin: true });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ ok: true, id, status: 'open' });
    const status = await t.api('GET', `/status/${id}`);
    expect(status.json).toMatchObject({ status: 'open', claim_attempts: 0 });
    expect(status.json.error ?? null).toBeNull();
    expect(status.json.run_at).toBeLessThanOrEqual(Date.now() / 1000 + 1);
    expectError(await t.api('GET', `/admin/dead/${id}`, { admin: true }), 404, 'not_found');
    const listed = await t.api('GET', '/admin/dead', { admin: true });
    expect((listed.json as Array<{ intent_id: string }>).map((d) => d.intent_id)).not.toContain(id);
    const again = await t.api('POST', '/claim?goal=retry-dead');
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ id, claim_attempts: 1, payload: { p: 1 } });
  });

  it('retry of a claimed intent kills the live token', async () => {
    const id = await publish(t.api, { goal: 'retry-claimed' });
    const claim = await t.api('POST', '/claim?goal=retry-claimed');
    const r = await t.api('POST', `/admin/intents/${id}/retry`, { admin: true });
    expect(r.json).toMatchObject({ ok: true, id, status: 'open' });
    expectError(
      await t.api('POST', `/fulfill/${id}`, { body: { claim_token: claim.json.claim_token } }),
      404,
      'not_found',
    );
    expectError(
      await t.api('POST', `/extend_claim/${id}`, {
        body: { claim_token: claim.json.claim_token, seconds: 30 },
      }),
      404,
      'not_found',
    );
    const again = await t.api('POST', '/claim?goal=retry-claimed');
    expect(again.json.id).toBe(id);
    expect(again.json.claim_token).not.toBe(claim.json.claim_token);
  });

  it('cancel and retry of an unknown id answer 404', async () => {
    const id = unknownId();
    expectError(
      await t.api('POST', `/admin/intents/${id}/cancel`, { admin: true }),
      404,
      'not_found',
    );
    expectError(
      await t.api('POST', `/admin/intents/${id}/retry`, { admin: true }),
      404,
      'not_found',
    );
  });
});

describe('dead letters (§6)', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus({ manualClock: true });
  });
  afterAll(async () => t.close());

  it('GET /admin/dead lists at most 100, newest first, with the fields of §6', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 101; i++) {
      const id = await publish(t.api, { goal: `dead-${i % 3}`, namespace: 'deadns' });
      t.manual!.advance(10);
      const r = await t.api('POST', `/admin/intents/${id}/cancel`, { admin: true });
      expect(r.json.status).toBe('dead');
      ids.push(id);
    }
    const r = await t.api('GET', '/admin/dead', { admin: true });
    expect(r.status).toBe(200);
    const list = r.json as Array<Record<string, unknown>>;
    expect(Array.isArray(list)).toBe(true);
    expect(list).toHaveLength(100);
    expect(list[0]!.intent_id).toBe(ids[100]);
    expect(list.map((d) => d.intent_id)).not.toContain(ids[0]);
    for (const d of list) {
      expect(d).toMatchObject({ namespace: 'deadns', reason: 'cancelled', attempts: 0 });
      expect(typeof d.intent_id).toBe('string');
      expect(typeof d.goal).toBe('string');
      expect(typeof d.created_at).toBe('number');
    }
    for (let i = 1; i < list.length; i++) {
      expect(list[i]!.created_at as number).toBeLessThan(list[i - 1]!.created_at as number);
    }
    // The order follows the order they died in.
    expect(list.map((d) => d.intent_id)).toEqual(ids.slice(1).reverse());
  });

  it('a failed last attempt is a dead letter with its attempts and error as the reason', async () => {
    const id = await publish(t.api, {
      goal: 'dies',
      namespace: 'deadns2',
      max_attempts: 1,
      payload: { why: 'test' },
    });
    const claim = await t.api('POST', '/claim?namespace=deadns2');
    t.manual!.advance(10);
    await t.api('POST', `/fail/${id}`, {
      body: { claim_token: claim.json.claim_token, error: 'it broke' },
    });
    const list = await t.api('GET', '/admin/dead', { admin: true });
    expect(list.json[0]).toMatchObject({
      intent_id: id,
      namespace: 'deadns2',
      goal: 'dies',
      attempts: 1,
      reason: 'it broke',
    });
    const one = await t.api('GET', `/admin/dead/${id}`, { admin: true });
    expect(one.status).toBe(200);
    expect(one.json).toMatchObject({
      intent_id: id,
      namespace: 'deadns2',
      goal: 'dies',
      attempts: 1,
      reason: 'it broke',
      payload: { why: 'test' },
    });
    expect(typeof one.json.created_at).toBe('number');
  });

  it('GET /admin/dead/<id> of an intent that is not dead answers 404', async () => {
    const open = await publish(t.api, { goal: 'alive', namespace: 'deadns3' });
    expectError(await t.api('GET', `/admin/dead/${open}`, { admin: true }), 404, 'not_found');
    const claim = await t.api('POST', '/claim?namespace=deadns3');
    expectError(await t.api('GET', `/admin/dead/${open}`, { admin: true }), 404, 'not_found');
    await t.api('POST', `/fulfill/${open}`, { body: { claim_token: claim.json.claim_token } });
    expectError(await t.api('GET', `/admin/dead/${open}`, { admin: true }), 404, 'not_found');
    expectError(
      await t.api('GET', `/admin/dead/${unknownId()}`, { admin: true }),
      404,
      'not_found',
    );
  });
});
