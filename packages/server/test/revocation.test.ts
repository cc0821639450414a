/**
 * A revoked key on several nodes (SECURITY.md, "A revoke across nodes"): two `serve`
 * processes on one PostgreSQL database. A revoke through one node is refused by the other
 * at once, and ends the key's waiting claims and result waits with 401 on both; a revoke a
 * node never heard of (made in the database behind its back, as when its wake relay was
 * reconnecting) is refused within KEY_RECHECK_MS, waiting requests included.
 */
import { performance } from 'node:perf_hooks';
import { beforeAll, describe, expect, it } from 'vitest';
import { KEY_RECHECK_MS } from '../src/http/auth.js';
import type { Api, ApiResponse } from './helpers.js';
import { pgQuery } from './pg-database.js';
import { twoNodes } from './process-helpers.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const cluster = twoNodes('ib_revoke');
let a: Api;
let b: Api;
beforeAll(() => void ({ a, b } = cluster));

async function newKey(owner: string): Promise<{ api_key: string; key_id: string }> {
  const r = await a('POST', '/admin/generate_key', { admin: true, body: { owner } });
  expect(r.status, r.text).toBe(201);
  return r.json as { api_key: string; key_id: string };
}

async function publishAs(api: Api, key: string, goal: string, extra = {}): Promise<string> {
  const r = await api('POST', '/intent', { key, body: { goal, payload: {}, ...extra } });
  expect(r.status, r.text).toBe(201);
  return r.json.id as string;
}

/** Starts a request and says when it answered, so a test can tell a revoke from a timeout. */
function timed(p: Promise<ApiResponse>): Promise<{ r: ApiResponse; at: number }> {
  return p.then((r) => ({ r, at: performance.now() }));
}

const expect401 = (r: ApiResponse): void => {
  expect(r.status, r.text).toBe(401);
  expect(r.json.error.code).toBe('unauthorized');
};

describe('a revoked key on two PostgreSQL nodes', () => {
  it('a revoke through A is refused by B at once and ends the key’s waits on both nodes', async () => {
    const t = await newKey('revoked-through-a');
    // B has seen the key (it is in B's key cache) and holds waits of it; so does A.
    const own = await publishAs(b, t.api_key, 'rv.own');
    const waits = [
      timed(b('POST', '/claim?goal=rv.next&wait=20', { key: t.api_key })),
      timed(a('POST', '/claim?goal=rv.next&wait=20', { key: t.api_key })),
      timed(b('GET', `/result/${own}?wait=30`, { key: t.api_key })),
      timed(a('GET', `/result/${own}?wait=30`, { key: t.api_key })),
    ];
    await sleep(400); // every request is waiting on its node

    const revoked = await a('POST', '/admin/revoke_key', {
      admin: true,
      body: { key_id: t.key_id },
    });
    expect(revoked.status, revoked.text).toBe(200);
    const at = performance.now();
    // B refuses the key on its next request: it heard the revoke through the wake relay,
    // or its recheck bound has passed.
    const started = performance.now();
    let refusedAfter = -1;
    while (performance.now() - started < 5000) {
      const r = await b('POST', '/intent', { key: t.api_key, body: { goal: 'rv.x', payload: {} } });
      if (r.status === 401) {
        refusedAfter = performance.now() - at;
        break;
      }
      expect(r.status).toBe(201);
      await sleep(20);
    }
    expect(refusedAfter).toBeGreaterThanOrEqual(0);
    expect(refusedAfter).toBeLessThan(KEY_RECHECK_MS + 500);

    // A public intent for the waiting claims, and the key's own intent fulfilled: neither
    // is handed to the revoked key.
    const pub = await publishAs(a, 'k_main_test_0123456789abcdef', 'rv.next', {
      visibility: 'public',
    });
    const done = await Promise.all(waits);
    const ends = done.map((d) => Math.round(d.at - at));
    console.log(
      `revoke through A: B refused after ${refusedAfter.toFixed(1)} ms; waits ended after ${ends.join(', ')} ms`,
    );
    for (const d of done) {
      expect401(d.r);
      expect(d.at - at).toBeLessThan(10_000); // the revoke ended them, not their wait
    }
    const status = await a('GET', `/status/${pub}`);
    expect(status.json.status).toBe('open');
    expect(status.json.worker_id).toBeNull();
    expect401(await b('POST', '/claim?goal=rv.next', { key: t.api_key }));
  });

  it('a revoke B never heard of is refused by B within the recheck bound, waits included', async () => {
    const t = await newKey('revoked-behind-b');
    const own = await publishAs(b, t.api_key, 'rv.quiet');
    expect((await b('POST', '/claim?goal=rv.none', { key: t.api_key })).status).toBe(204);
    const claimWait = timed(b('POST', '/claim?goal=rv.quiet.next&wait=20', { key: t.api_key }));
    const resultWait = timed(b('GET', `/result/${own}?wait=30`, { key: t.api_key }));
    await sleep(300);

    // Deleted in the database, announced to nobody: B keeps its cached copy until it
    // checks again.
    const rows = await pgQuery(
      'DELETE FROM api_keys WHERE key_id = $1 RETURNING key_id',
      [t.key_id],
      cluster.db.url,
    );
    expect(rows).toHaveLength(1);
    const at = performance.now();
    await sleep(KEY_RECHECK_MS + 100);
    expect401(await b('POST', '/intent', { key: t.api_key, body: { goal: 'rv.y', payload: {} } }));

    // Wake both waits: a public intent for the claim, the key's intent fulfilled for the
    // result. Each checks its key before it answers, and answers 401.
    const pub = await publishAs(b, 'k_main_test_0123456789abcdef', 'rv.quiet.next', {
      visibility: 'public',
    });
    const claimed = await b('POST', `/claim?goal=rv.quiet&publisher=${t.key_id}`, {
      headers: { 'x-worker-id': 'main-w' },
    });
    expect(claimed.status, claimed.text).toBe(200);
    expect(claimed.json.id).toBe(own);
    const fulfilled = await b('POST', `/fulfill/${own}`, {
      body: { claim_token: claimed.json.claim_token, result: { secret: 1 } },
    });
    expect(fulfilled.status).toBe(200);
    for (const w of await Promise.all([claimWait, resultWait])) {
      expect401(w.r);
      expect(w.r.text).not.toContain('secret');
      expect(w.at - at).toBeLessThan(10_000);
    }
    expect((await b('GET', `/status/${pub}`)).json.status).toBe('open');
  });
});
