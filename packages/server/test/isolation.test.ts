/**
 * Key isolation over every endpoint (PROTOCOL.md §3, §4, §5, §6; PRODUCT.md "Reliability
 * and security"): a matrix of endpoints × actors, one test per cell, each on fresh data of
 * key A (a private open intent, a private claimed intent and its token, a dead intent, a
 * KV entry), plus the publisher filter of the claim and public intents. One actor is a key
 * that was used and then revoked: everywhere it is a stranger without a key.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  errorCode,
  publish,
  startTestBus,
  type ApiResponse,
  type RequestOptions,
  type TestBus,
} from './helpers.js';

const CANARY = 'PAYLOAD_CANARY';
const REALM = 'Basic realm="IntentBus Admin"';

type Actor = 'A' | 'B' | 'main' | 'admin' | 'none' | 'revoked';
const ACTORS: readonly Actor[] = ['A', 'B', 'main', 'admin', 'none', 'revoked'];

/** '2xx': allowed (the check says which answer exactly); 204: a claim that finds nothing. */
type Outcome = '2xx' | 204 | 401 | 403 | 404;

interface Key {
  api_key: string;
  key_id: string;
}

/** Fresh data of key A for one cell. */
interface Fixture {
  n: number;
  ns: string;
  /** A's private intent, open. */
  openId: string;
  openGoal: string;
  /** A's private intent, claimed by A. */
  claimedId: string;
  token: string;
  claimExpiresAt: number;
  /** A's private intent, cancelled by the admin (a dead letter). */
  deadId: string;
  /** A's worker, which holds the claim (the fleet, issue 18). */
  workerId: string;
  /** A's KV entry. */
  kvName: string;
  kvValue: unknown;
  /** A key the revoke row may revoke. */
  spare: Key;
  /** The owner the generate_key row mints. */
  newOwner: string;
}

interface Call {
  method: string;
  path: string;
  body?: unknown;
}

interface Cell {
  t: TestBus;
  f: Fixture;
  actor: Actor;
  opts: RequestOptions;
  r: ApiResponse;
  allowed: boolean;
}

interface Row {
  endpoint: string;
  call(f: Fixture): Call;
  expected: Record<Actor, Outcome>;
  /** Checks the effect of an allowed call, and that a refused one changed nothing. */
  check(c: Cell): Promise<void>;
}

const CLIENT_OWN = (a: Outcome, b: Outcome, main: Outcome): Record<Actor, Outcome> => ({
  A: a,
  B: b,
  main,
  admin: 401,
  none: 401,
  revoked: 401,
});
const ADMIN_ONLY: Record<Actor, Outcome> = {
  A: 401,
  B: 401,
  main: 401,
  admin: '2xx',
  none: 401,
  revoked: 401,
};
const EVERYONE: Record<Actor, Outcome> = {
  A: '2xx',
  B: '2xx',
  main: '2xx',
  admin: '2xx',
  none: '2xx',
  revoked: '2xx',
};

describe('isolation matrix: every endpoint × every actor', () => {
  let t: TestBus;
  let A: Key;
  let B: Key;
  /** Used once (so the bus knows it), then revoked. */
  let R: Key;
  let counter = 0;

  const as = (actor: Actor): RequestOptions => {
    switch (actor) {
      case 'A':
        return { key: A.api_key };
      case 'B':
        return { key: B.api_key };
      case 'main':
        return {};
      case 'admin':
        return { key: null, admin: true };
      case 'none':
        return { key: null };
      case 'revoked':
        return { key: R.api_key };
    }
  };

  beforeAll(async () => {
    t = await startTestBus({ env: { BUS_RATE_LIMIT_PER_MINUTE: '100000' } });
    A = await t.newKey('iso-A');
    B = await t.newKey('iso-B');
    R = await t.newKey('iso-revoked');
    await publish(t.api, { goal: 'iso-before-revoke' }, R.api_key);
    const revoked = await t.api('POST', '/admin/revoke_key', {
      admin: true,
      body: { key_id: R.key_id },
    });
    if (revoked.status !== 200) throw new Error(`revoke: ${revoked.status} ${revoked.text}`);
  });
  afterAll(async () => t.close());

  async function fixture(): Promise<Fixture> {
    const n = ++counter;
    const ns = `iso-${n}`;
    const openGoal = `iso-open-${n}`;
    const openId = await publish(
      t.api,
      { goal: openGoal, namespace: ns, payload: { canary: CANARY, n } },
      A.api_key,
    );
    const claimedGoal = `iso-claimed-${n}`;
    const claimedId = await publish(
      t.api,
      { goal: claimedGoal, namespace: ns, payload: { canary: CANARY, n } },
      A.api_key,
    );
    const claim = await t.api('POST', `/claim?namespace=${ns}&goal=${claimedGoal}`, {
      key: A.api_key,
      headers: { 'x-worker-id': `iso-worker-${n}` },
    });
    if (claim.status !== 200 || claim.json.id !== claimedId) {
      throw new Error(`fixture claim: ${claim.status} ${claim.text}`);
    }
    const deadId = await publish(
      t.api,
      { goal: `iso-dead-${n}`, namespace: ns, payload: { canary: CANARY, n } },
      A.api_key,
    );
    const cancel = await t.api('POST', `/admin/intents/${deadId}/cancel`, { admin: true });
    if (cancel.status !== 200 || cancel.json.status !== 'dead') {
      throw new Error(`fixture cancel: ${cancel.status} ${cancel.text}`);
    }
    const kvName = `iso-kv-${n}`;
    const kvValue = { canary: CANARY, owner: 'A', n };
    const set = await t.api('POST', `/set/${kvName}`, {
      key: A.api_key,
      body: { value: kvValue },
    });
    if (set.status !== 200) throw new Error(`fixture set: ${set.status} ${set.text}`);
    const spare = await t.newKey(`iso-spare-${n}`);
    return {
      n,
      ns,
      openId,
      openGoal,
      claimedId,
      token: claim.json.claim_token as string,
      claimExpiresAt: claim.json.claim_expires_at as number,
      deadId,
      workerId: `iso-worker-${n}`,
      kvName,
      kvValue,
      spare,
      newOwner: `iso-generated-${n}`,
    };
  }

  /** A's view of one of its intents (A may always read its own). */
  async function statusOf(id: string): Promise<ApiResponse> {
    return t.api('GET', `/status/${id}`, { key: A.api_key });
  }
  async function expectStatus(id: string, status: string): Promise<ApiResponse> {
    const s = await statusOf(id);
    expect(s.status, s.text).toBe(200);
    expect(s.json.status).toBe(status);
    return s;
  }
  /** The claim of the fixture is untouched: still claimed, same lease, token still live. */
  async function expectClaimIntact(f: Fixture): Promise<void> {
    const s = await expectStatus(f.claimedId, 'claimed');
    expect(s.json.claim_attempts).toBe(1);
    expect(s.json.claim_expires_at).toBe(f.claimExpiresAt);
    const done = await t.api('POST', `/fulfill/${f.claimedId}`, {
      key: A.api_key,
      body: { claim_token: f.token, result: { canary: CANARY } },
    });
    expect(done.status, `A's token is still live: ${done.text}`).toBe(200);
  }
  async function expectOpenUntouched(f: Fixture): Promise<void> {
    const s = await expectStatus(f.openId, 'open');
    expect(s.json.claim_attempts).toBe(0);
  }
  async function expectAKvIntact(f: Fixture): Promise<void> {
    const g = await t.api('GET', `/get/${f.kvName}`, { key: A.api_key });
    expect(g.status, g.text).toBe(200);
    expect(g.json).toEqual({ value: f.kvValue });
  }
  /** A refused read reveals nothing of A's data. */
  function expectNothingRevealed(c: Cell): void {
    if (c.allowed) return;
    expect(c.r.text).not.toContain(CANARY);
    expect(c.r.text).not.toContain(c.f.openGoal);
    expect(c.r.text).not.toContain(c.f.token);
  }

  const rows: Row[] = [
    {
      endpoint: 'POST /intent',
      call: (f) => ({
        method: 'POST',
        path: '/intent',
        body: { goal: `iso-new-${f.n}`, namespace: f.ns, payload: { canary: CANARY } },
      }),
      expected: CLIENT_OWN('2xx', '2xx', '2xx'),
      async check(c) {
        if (c.allowed) {
          expect(c.r.status).toBe(201);
          expect(c.r.json).toMatchObject({ status: 'published', namespace: c.f.ns });
          // The new intent belongs to whoever published it.
          const mine = await t.api('GET', `/status/${c.r.json.id}`, c.opts);
          expect(mine.status, mine.text).toBe(200);
        } else {
          // Nothing was published: nobody (not even the main key) can claim it.
          const claim = await t.api(
            'POST',
            `/claim?namespace=${c.f.ns}&goal=iso-new-${c.f.n}&publisher=main`,
          );
          expect(claim.status, claim.text).toBe(204);
        }
      },
    },
    {
      endpoint: "POST /claim (A's private goal)",
      call: (f) => ({ method: 'POST', path: `/claim?namespace=${f.ns}&goal=${f.openGoal}` }),
      // Without a publisher filter a claim takes public intents or the caller's own only:
      // the main key too (it takes A's private intents with publisher=<A>, tested below).
      expected: CLIENT_OWN('2xx', 204, 204),
      async check(c) {
        if (c.allowed) {
          expect(c.r.status).toBe(200);
          expect(c.r.json).toMatchObject({ id: c.f.openId, payload: { canary: CANARY } });
          await expectStatus(c.f.openId, 'claimed');
        } else {
          if (c.r.status === 204) {
            expect(c.r.headers.get('retry-after')).toBe('1');
            expect(c.r.text).toBe('');
          }
          expectNothingRevealed(c);
          await expectOpenUntouched(c.f);
        }
      },
    },
    {
      endpoint: "POST /extend_claim/<id> (A's claim and token)",
      call: (f) => ({
        method: 'POST',
        path: `/extend_claim/${f.claimedId}`,
        body: { claim_token: f.token, seconds: 600 },
      }),
      expected: CLIENT_OWN('2xx', 404, 404),
      async check(c) {
        if (c.allowed) {
          expect(c.r.status).toBe(200);
          expect(c.r.json).toMatchObject({ ok: true, id: c.f.claimedId, extended_by: 600 });
          const s = await expectStatus(c.f.claimedId, 'claimed');
          expect(s.json.claim_expires_at).toBeGreaterThan(c.f.claimExpiresAt);
        } else {
          expectNothingRevealed(c);
          await expectClaimIntact(c.f);
        }
      },
    },
    {
      endpoint: "POST /fulfill/<id> (A's claim and token)",
      call: (f) => ({
        method: 'POST',
        path: `/fulfill/${f.claimedId}`,
        body: { claim_token: f.token, result: { by: 'someone' } },
      }),
      expected: CLIENT_OWN('2xx', 404, 404),
      async check(c) {
        if (c.allowed) {
          expect(c.r.status).toBe(200);
          expect(c.r.json).toEqual({ ok: true, id: c.f.claimedId, status: 'fulfilled' });
          const res = await t.api('GET', `/result/${c.f.claimedId}`, { key: A.api_key });
          expect(res.json).toMatchObject({ status: 'fulfilled', result: { by: 'someone' } });
        } else {
          expectNothingRevealed(c);
          await expectClaimIntact(c.f);
        }
      },
    },
    {
      endpoint: "POST /fail/<id> (A's claim and token)",
      call: (f) => ({
        method: 'POST',
        path: `/fail/${f.claimedId}`,
        body: { claim_token: f.token, error: 'failed by someone' },
      }),
      expected: CLIENT_OWN('2xx', 404, 404),
      async check(c) {
        if (c.allowed) {
          expect(c.r.status).toBe(200);
          expect(c.r.json).toEqual({ ok: true, id: c.f.claimedId, status: 'open' });
          await expectStatus(c.f.claimedId, 'open');
        } else {
          expectNothingRevealed(c);
          await expectClaimIntact(c.f);
        }
      },
    },
    {
      endpoint: "GET /result/<id> (A's intent)",
      call: (f) => ({ method: 'GET', path: `/result/${f.claimedId}` }),
      expected: CLIENT_OWN('2xx', 404, '2xx'),
      async check(c) {
        if (c.allowed) {
          expect(c.r.status).toBe(200);
          expect(c.r.json).toMatchObject({ id: c.f.claimedId, status: 'claimed', result: null });
        } else expectNothingRevealed(c);
      },
    },
    {
      endpoint: "GET /status/<id> (A's intent)",
      call: (f) => ({ method: 'GET', path: `/status/${f.openId}` }),
      expected: CLIENT_OWN('2xx', 404, '2xx'),
      async check(c) {
        if (c.allowed) {
          expect(c.r.status).toBe(200);
          expect(c.r.json).toMatchObject({
            id: c.f.openId,
            goal: c.f.openGoal,
            status: 'open',
            visibility: 'private',
          });
        } else expectNothingRevealed(c);
      },
    },
    {
      endpoint: "POST /set/<name> (A's KV name)",
      call: (f) => ({
        method: 'POST',
        path: `/set/${f.kvName}`,
        body: { value: { written: 'by someone else', canary: CANARY } },
      }),
      // Every key writes its own scope: B and the main key never overwrite A's entry.
      expected: CLIENT_OWN('2xx', '2xx', '2xx'),
      async check(c) {
        const written = { written: 'by someone else', canary: CANARY };
        if (c.allowed) {
          expect(c.r.status).toBe(200);
          expect(c.r.json).toEqual({ ok: true });
          const own = await t.api('GET', `/get/${c.f.kvName}`, c.opts);
          expect(own.json).toEqual({ value: written });
        }
        if (c.actor !== 'A') await expectAKvIntact(c.f);
      },
    },
    {
      endpoint: "GET /get/<name> (A's KV name)",
      call: (f) => ({ method: 'GET', path: `/get/${f.kvName}` }),
      // KV names are scoped per API key (§5): the main key has its own scope too.
      expected: CLIENT_OWN('2xx', 404, 404),
      async check(c) {
        if (c.allowed) {
          expect(c.r.status).toBe(200);
          expect(c.r.json).toEqual({ value: c.f.kvValue });
        } else expectNothingRevealed(c);
      },
    },
    {
      endpoint: 'POST /admin/generate_key',
      call: (f) => ({ method: 'POST', path: '/admin/generate_key', body: { owner: f.newOwner } }),
      expected: ADMIN_ONLY,
      async check(c) {
        if (c.allowed) {
          expect(c.r.status).toBe(201);
          expect(c.r.json).toMatchObject({ owner: c.f.newOwner });
          expect(c.r.json.api_key).toMatch(/^tk_/);
        }
        const keys = await t.api('GET', '/admin/keys', { admin: true });
        const owners = (keys.json as Array<{ owner: string }>).map((k) => k.owner);
        expect(owners.includes(c.f.newOwner)).toBe(c.allowed);
      },
    },
    {
      endpoint: 'POST /admin/revoke_key',
      call: (f) => ({
        method: 'POST',
        path: '/admin/revoke_key',
        body: { key_id: f.spare.key_id },
      }),
      expected: ADMIN_ONLY,
      async check(c) {
        if (c.allowed) expect(c.r.status).toBe(200);
        const use = await t.api('POST', `/claim?namespace=${c.f.ns}`, { key: c.f.spare.api_key });
        expect(use.status, use.text).toBe(c.allowed ? 401 : 204);
      },
    },
    {
      endpoint: 'GET /admin/keys',
      call: () => ({ method: 'GET', path: '/admin/keys' }),
      expected: ADMIN_ONLY,
      async check(c) {
        if (c.allowed) {
          expect(c.r.status).toBe(200);
          const ids = (c.r.json as Array<{ key_id: string }>).map((k) => k.key_id);
          expect(ids).toContain(A.key_id);
          expect(c.r.text).not.toContain(A.api_key);
        } else {
          expect(c.r.text).not.toContain(A.key_id);
        }
      },
    },
    {
      endpoint: 'POST /admin/purge',
      call: (f) => ({
        method: 'POST',
        path: '/admin/purge',
        body: { confirm: true, namespace: f.ns },
      }),
      expected: ADMIN_ONLY,
      async check(c) {
        if (c.allowed) {
          expect(c.r.status).toBe(200);
          expect(c.r.json).toMatchObject({ ok: true, namespace: c.f.ns });
          expect((await statusOf(c.f.openId)).status).toBe(404);
        } else {
          await expectOpenUntouched(c.f);
          await expectStatus(c.f.deadId, 'dead');
        }
      },
    },
    {
      endpoint: 'POST /admin/cleanup',
      call: () => ({ method: 'POST', path: '/admin/cleanup' }),
      expected: ADMIN_ONLY,
      async check(c) {
        if (c.allowed) {
          expect(c.r.status).toBe(200);
          expect(typeof c.r.json.rate_limits_deleted).toBe('number');
        } else expect(c.r.text).not.toContain('rate_limits_deleted');
      },
    },
    {
      endpoint: 'GET /admin/intents/<id>',
      call: (f) => ({ method: 'GET', path: `/admin/intents/${f.openId}` }),
      expected: ADMIN_ONLY,
      async check(c) {
        if (c.allowed) {
          expect(c.r.status).toBe(200);
          expect(c.r.json).toMatchObject({ id: c.f.openId, payload: { canary: CANARY } });
        } else expectNothingRevealed(c);
      },
    },
    {
      endpoint: 'POST /admin/intents/<id>/cancel',
      call: (f) => ({ method: 'POST', path: `/admin/intents/${f.openId}/cancel` }),
      expected: ADMIN_ONLY,
      async check(c) {
        if (c.allowed) {
          expect(c.r.status).toBe(200);
          expect(c.r.json).toEqual({ ok: true, id: c.f.openId, status: 'dead' });
          await expectStatus(c.f.openId, 'dead');
        } else await expectOpenUntouched(c.f);
      },
    },
    {
      endpoint: 'POST /admin/intents/<id>/retry',
      call: (f) => ({ method: 'POST', path: `/admin/intents/${f.deadId}/retry` }),
      expected: ADMIN_ONLY,
      async check(c) {
        if (c.allowed) {
          expect(c.r.status).toBe(200);
          expect(c.r.json).toMatchObject({ ok: true, id: c.f.deadId, status: 'open' });
          await expectStatus(c.f.deadId, 'open');
        } else await expectStatus(c.f.deadId, 'dead');
      },
    },
    {
      endpoint: 'GET /admin/dead',
      call: () => ({ method: 'GET', path: '/admin/dead' }),
      expected: ADMIN_ONLY,
      async check(c) {
        if (c.allowed) {
          expect(c.r.status).toBe(200);
          const ids = (c.r.json as Array<{ intent_id: string }>).map((d) => d.intent_id);
          expect(ids).toContain(c.f.deadId);
        } else expect(c.r.text).not.toContain(c.f.deadId);
      },
    },
    {
      endpoint: 'GET /admin/dead/<id>',
      call: (f) => ({ method: 'GET', path: `/admin/dead/${f.deadId}` }),
      expected: ADMIN_ONLY,
      async check(c) {
        if (c.allowed) {
          expect(c.r.status).toBe(200);
          expect(c.r.json).toMatchObject({
            intent_id: c.f.deadId,
            reason: 'cancelled',
            payload: { canary: CANARY },
          });
        } else expectNothingRevealed(c);
      },
    },
    {
      endpoint: 'GET /workers',
      call: () => ({ method: 'GET', path: '/workers' }),
      expected: CLIENT_OWN('2xx', '2xx', '2xx'),
      async check(c) {
        if (!c.allowed) return expect(c.r.text).not.toContain(c.f.workerId);
        const ids = (c.r.json.workers as Array<{ worker_id: string }>).map((w) => w.worker_id);
        // A and the main key see A's worker; B never does.
        if (c.actor === 'B') expect(ids).not.toContain(c.f.workerId);
        else expect(ids).toContain(c.f.workerId);
      },
    },
    {
      endpoint: 'GET /admin/workers',
      call: () => ({ method: 'GET', path: '/admin/workers' }),
      expected: ADMIN_ONLY,
      async check(c) {
        if (c.allowed) expect(c.r.text).toContain(c.f.workerId);
        else expect(c.r.text).not.toContain(c.f.workerId);
      },
    },
    {
      endpoint: 'POST /admin/workers/<id>/quiet',
      call: (f) => ({ method: 'POST', path: `/admin/workers/${f.workerId}/quiet` }),
      expected: ADMIN_ONLY,
      async check(c) {
        const mine = await c.t.api('GET', '/workers', { key: A.api_key });
        const w = (mine.json.workers as Array<{ worker_id: string; command: string | null }>).find(
          (x) => x.worker_id === c.f.workerId,
        );
        expect(w?.command).toBe(c.allowed ? 'quiet' : null);
      },
    },
    {
      endpoint: 'GET /admin/goals',
      call: () => ({ method: 'GET', path: '/admin/goals' }),
      expected: ADMIN_ONLY,
      async check(c) {
        if (c.allowed) expect(c.r.text).toContain(c.f.openGoal);
        else expect(c.r.text).not.toContain(c.f.openGoal);
      },
    },
    {
      endpoint: 'GET /health',
      call: () => ({ method: 'GET', path: '/health' }),
      expected: EVERYONE,
      async check(c) {
        expect(c.r.status).toBe(200);
        expect(c.r.json).toMatchObject({ ok: true });
      },
    },
  ];

  it('covers every actor in every row', () => {
    for (const row of rows) expect(Object.keys(row.expected).sort()).toEqual([...ACTORS].sort());
  });

  for (const row of rows) {
    describe(row.endpoint, () => {
      for (const actor of ACTORS) {
        const outcome = row.expected[actor];
        it(`${actor} → ${outcome}`, async () => {
          const f = await fixture();
          const call = row.call(f);
          const opts: RequestOptions = { ...as(actor) };
          if (call.body !== undefined) opts.body = call.body;
          const r = await t.api(call.method, call.path, opts);
          const what = `${call.method} ${call.path} as ${actor}: ${r.status} ${r.text}`;
          if (outcome === '2xx') {
            expect(r.status >= 200 && r.status < 300, what).toBe(true);
            expect(r.status, what).not.toBe(204);
          } else {
            expect(r.status, what).toBe(outcome);
            if (outcome !== 204) {
              const code = errorCode(r);
              const codes: Record<number, string> = {
                401: 'unauthorized',
                403: 'forbidden',
                404: 'not_found',
              };
              expect(code, what).toBe(codes[outcome]);
            }
            if (outcome === 401 && call.path.startsWith('/admin/')) {
              expect(r.headers.get('www-authenticate'), what).toBe(REALM);
            }
          }
          await row.check({ t, f, actor, opts: as(actor), r, allowed: outcome === '2xx' });
        });
      }
    });
  }

  describe('what a refusal reveals', () => {
    it("answers B's /status and /result of A's intent exactly like an unknown id", async () => {
      const f = await fixture();
      const unknown = randomBytes(16).toString('hex');
      for (const route of ['status', 'result']) {
        const theirs = await t.api('GET', `/${route}/${f.openId}`, { key: B.api_key });
        const none = await t.api('GET', `/${route}/${unknown}`, { key: B.api_key });
        expect(theirs.status).toBe(404);
        expect(none.status).toBe(404);
        expect(theirs.json).toEqual(none.json);
      }
    });

    it("refuses B's own live token on A's claimed intent (404) and leaves A's claim intact", async () => {
      const f = await fixture();
      const goal = `iso-b-own-${f.n}`;
      await publish(t.api, { goal, namespace: f.ns, payload: { canary: CANARY } }, B.api_key);
      const bClaim = await t.api('POST', `/claim?namespace=${f.ns}&goal=${goal}`, {
        key: B.api_key,
      });
      expect(bClaim.status).toBe(200);
      const bToken = bClaim.json.claim_token as string;
      for (const [route, body] of [
        ['extend_claim', { claim_token: bToken, seconds: 600 }],
        ['fulfill', { claim_token: bToken, result: 'x' }],
        ['fail', { claim_token: bToken, error: 'x' }],
      ] as const) {
        const r = await t.api('POST', `/${route}/${f.claimedId}`, { key: B.api_key, body });
        expect(r.status, `${route}: ${r.text}`).toBe(404);
        expect(errorCode(r)).toBe('not_found');
      }
      await expectClaimIntact(f);
    });
  });

  describe('the publisher filter of a claim (§4)', () => {
    it("refuses B's claim with publisher=<A's key> with 403 forbidden", async () => {
      const f = await fixture();
      const r = await t.api(
        'POST',
        `/claim?namespace=${f.ns}&goal=${f.openGoal}&publisher=${A.api_key}`,
        { key: B.api_key },
      );
      expect(r.status, r.text).toBe(403);
      expect(errorCode(r)).toBe('forbidden');
      expect(r.text).not.toContain(CANARY);
      await expectOpenUntouched(f);
    });

    it("refuses B's claim with publisher=<A's key_id> with 403 forbidden", async () => {
      const f = await fixture();
      const r = await t.api(
        'POST',
        `/claim?namespace=${f.ns}&goal=${f.openGoal}&publisher=${A.key_id}`,
        { key: B.api_key },
      );
      expect(r.status, r.text).toBe(403);
      expect(errorCode(r)).toBe('forbidden');
      await expectOpenUntouched(f);
    });

    it('lets A filter by its own key or key_id', async () => {
      const f = await fixture();
      const byKey = await t.api(
        'POST',
        `/claim?namespace=${f.ns}&goal=${f.openGoal}&publisher=${A.api_key}`,
        { key: A.api_key },
      );
      expect(byKey.status, byKey.text).toBe(200);
      expect(byKey.json.id).toBe(f.openId);
      const again = await publish(
        t.api,
        { goal: f.openGoal, namespace: f.ns, payload: { canary: CANARY } },
        A.api_key,
      );
      const byId = await t.api(
        'POST',
        `/claim?namespace=${f.ns}&goal=${f.openGoal}&publisher=${A.key_id}`,
        { key: A.api_key },
      );
      expect(byId.status, byId.text).toBe(200);
      expect(byId.json.id).toBe(again);
    });

    it("lets the main key claim A's private intent with publisher=<A's key_id>", async () => {
      const f = await fixture();
      const r = await t.api(
        'POST',
        `/claim?namespace=${f.ns}&goal=${f.openGoal}&publisher=${A.key_id}`,
      );
      expect(r.status, r.text).toBe(200);
      expect(r.json.id).toBe(f.openId);
      // The main key's claim token is the main key's: A cannot use it.
      const stolen = await t.api('POST', `/fulfill/${f.openId}`, {
        key: A.api_key,
        body: { claim_token: r.json.claim_token, result: 'x' },
      });
      expect(stolen.status).toBe(404);
      const done = await t.api('POST', `/fulfill/${f.openId}`, {
        body: { claim_token: r.json.claim_token, result: 'by main' },
      });
      expect(done.status, done.text).toBe(200);
    });
  });

  describe('public intents (§4)', () => {
    it('lets B claim a public intent of A, fulfil it, and read it as its last claimer', async () => {
      const f = await fixture();
      const goal = `iso-public-${f.n}`;
      const id = await publish(
        t.api,
        { goal, namespace: f.ns, visibility: 'public', payload: { canary: CANARY } },
        A.api_key,
      );
      const claim = await t.api('POST', `/claim?namespace=${f.ns}&goal=${goal}`, {
        key: B.api_key,
      });
      expect(claim.status, claim.text).toBe(200);
      expect(claim.json).toMatchObject({ id, payload: { canary: CANARY } });
      const bStatus = await t.api('GET', `/status/${id}`, { key: B.api_key });
      expect(bStatus.status, bStatus.text).toBe(200);
      expect(bStatus.json.status).toBe('claimed');
      // A published it but does not hold the claim: B's token is B's.
      const aFulfil = await t.api('POST', `/fulfill/${id}`, {
        key: A.api_key,
        body: { claim_token: claim.json.claim_token, result: 'by A' },
      });
      expect(aFulfil.status).toBe(404);
      const done = await t.api('POST', `/fulfill/${id}`, {
        key: B.api_key,
        body: { claim_token: claim.json.claim_token, result: 'by B', result_type: 'text' },
      });
      expect(done.status, done.text).toBe(200);
      const aResult = await t.api('GET', `/result/${id}`, { key: A.api_key });
      expect(aResult.json).toMatchObject({ id, status: 'fulfilled', result: 'by B' });
      const bResult = await t.api('GET', `/result/${id}`, { key: B.api_key });
      expect(bResult.status).toBe(200);
    });

    it('keeps the status of a public intent from keys that neither published nor claimed it', async () => {
      const f = await fixture();
      const id = await publish(
        t.api,
        { goal: `iso-public-quiet-${f.n}`, namespace: f.ns, visibility: 'public' },
        A.api_key,
      );
      for (const route of ['status', 'result']) {
        const r = await t.api('GET', `/${route}/${id}`, { key: B.api_key });
        expect(r.status, `${route}: ${r.text}`).toBe(404);
      }
    });
  });
});
