/**
 * Long polls of PROTOCOL.md §5.2 ([ext] POST /claim?wait=S) and §5.3
 * ([ext] GET /result/<id>?wait=S), over real HTTP with the real clock.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MAIN_KEY,
  errorCode,
  publish,
  startTestBus,
  type ApiResponse,
  type TestBus,
} from './helpers.js';

let seq = 0;
/** A namespace of its own for each test, so waiters of different tests never meet. */
const ns = (name: string): string => `lp-${name}-${++seq}`;

/** Runs a request and measures how long it took (ms). */
async function timed(p: Promise<ApiResponse>): Promise<{ r: ApiResponse; ms: number }> {
  const t0 = performance.now();
  const r = await p;
  return { r, ms: performance.now() - t0 };
}

async function waitUntil(cond: () => boolean, timeoutMs = 2000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > end) throw new Error('condition not reached in time');
    await sleep(10);
  }
}

function expect204(r: ApiResponse): void {
  expect(r.status, r.text).toBe(204);
  expect(r.headers.get('retry-after')).toBe('1');
  expect(r.text).toBe('');
}

describe('POST /claim?wait=S', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  const claim = (query: string, key?: string): Promise<ApiResponse> =>
    t.api('POST', `/claim?${query}`, { key });

  it('answers at once when an intent is claimable', async () => {
    const n = ns('now');
    const id = await publish(t.api, { goal: 'g', namespace: n });
    const { r, ms } = await timed(claim(`namespace=${n}&goal=g&wait=10`));
    expect(r.status).toBe(200);
    expect(r.json.id).toBe(id);
    expect(ms).toBeLessThan(1000);
  });

  it('wait=0 answers at once', async () => {
    const { r, ms } = await timed(claim(`namespace=${ns('zero')}&wait=0`));
    expect204(r);
    expect(ms).toBeLessThan(500);
  });

  it('times out after S seconds with 204 and Retry-After: 1', async () => {
    const { r, ms } = await timed(claim(`namespace=${ns('timeout')}&wait=1`));
    expect204(r);
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(ms).toBeLessThan(2500);
  });

  it('is woken by a publish in the matching namespace and goal', async () => {
    const n = ns('wake');
    const waiting = timed(claim(`namespace=${n}&goal=g&wait=10`));
    await sleep(200);
    const t0 = performance.now();
    const id = await publish(t.api, { goal: 'g', namespace: n, payload: { x: 1 } });
    const { r, ms } = await waiting;
    const afterPublish = performance.now() - t0;
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ id, goal: 'g', namespace: n, payload: { x: 1 } });
    expect(typeof r.json.claim_token).toBe('string');
    expect(afterPublish).toBeLessThan(1000);
    expect(ms).toBeLessThan(2000);
  });

  it('is woken by a public publish of another key', async () => {
    const n = ns('wake-public');
    const worker = await t.newKey('worker-public');
    const waiting = timed(claim(`namespace=${n}&wait=10`, worker.api_key));
    await sleep(200);
    const id = await publish(t.api, { goal: 'g', namespace: n, visibility: 'public' });
    const { r, ms } = await waiting;
    expect(r.status).toBe(200);
    expect(r.json.id).toBe(id);
    expect(ms).toBeLessThan(2000);
  });

  it('is not woken by a publish in another namespace', async () => {
    const n = ns('other-ns');
    const waiting = timed(claim(`namespace=${n}&goal=g&wait=1`));
    await sleep(200);
    const other = ns('other-ns-elsewhere');
    await publish(t.api, { goal: 'g', namespace: other });
    const { r, ms } = await waiting;
    expect204(r);
    expect(ms).toBeGreaterThanOrEqual(900);
    expect((await claim(`namespace=${other}&goal=g`)).status).toBe(200);
  });

  it('is not woken by a publish of another goal', async () => {
    const n = ns('other-goal');
    const waiting = timed(claim(`namespace=${n}&goal=g&wait=1`));
    await sleep(200);
    await publish(t.api, { goal: 'h', namespace: n });
    const { r, ms } = await waiting;
    expect204(r);
    expect(ms).toBeGreaterThanOrEqual(900);
    expect((await claim(`namespace=${n}&goal=h`)).status).toBe(200);
  });

  it("is not woken by another key's private intent", async () => {
    const n = ns('private');
    const worker = await t.newKey('worker-private');
    const waiting = timed(claim(`namespace=${n}&goal=g&wait=1`, worker.api_key));
    await sleep(200);
    const id = await publish(t.api, { goal: 'g', namespace: n, visibility: 'private' });
    const { r, ms } = await waiting;
    expect204(r);
    expect(ms).toBeGreaterThanOrEqual(900);
    expect((await claim(`namespace=${n}&goal=g`, worker.api_key)).status).toBe(204);
    expect((await claim(`namespace=${n}&goal=g`)).json.id).toBe(id);
  });

  it('is woken when a delay comes due (publish first)', async () => {
    const n = ns('delay');
    const t0 = performance.now();
    const id = await publish(t.api, { goal: 'g', namespace: n, delay: 0.3 });
    const { r } = await timed(claim(`namespace=${n}&wait=5`));
    const ms = performance.now() - t0;
    expect(r.status).toBe(200);
    expect(r.json.id).toBe(id);
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(1500);
  });

  it('is woken when a delay comes due (waiting first)', async () => {
    const n = ns('delay-wait');
    const waiting = timed(claim(`namespace=${n}&wait=5`));
    await sleep(100);
    const id = await publish(t.api, { goal: 'g', namespace: n, delay: 0.3 });
    const { r, ms } = await waiting;
    expect(r.status).toBe(200);
    expect(r.json.id).toBe(id);
    expect(ms).toBeGreaterThanOrEqual(350);
    expect(ms).toBeLessThan(1600);
  });

  it('is woken by an admin retry of a dead intent', async () => {
    const n = ns('retry');
    const id = await publish(t.api, { goal: 'g', namespace: n, max_attempts: 1 });
    const first = await claim(`namespace=${n}`);
    const fail = await t.api('POST', `/fail/${id}`, {
      body: { claim_token: first.json.claim_token, error: 'nope' },
    });
    expect(fail.json.status).toBe('dead');
    const waiting = timed(claim(`namespace=${n}&wait=5`));
    await sleep(200);
    const t0 = performance.now();
    const retry = await t.api('POST', `/admin/intents/${id}/retry`, { admin: true });
    expect(retry.status).toBe(200);
    const { r } = await waiting;
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ id, claim_attempts: 1 });
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('20 waiting claims and 20 publishes: each gets a distinct intent, none left over', async () => {
    const n = ns('many');
    expect(t.bus.hub.waiting).toBe(0);
    const claims = Array.from({ length: 20 }, () => claim(`namespace=${n}&wait=5`));
    await waitUntil(() => t.bus.hub.waiting >= 20);
    const t0 = performance.now();
    const ids = await Promise.all(
      Array.from({ length: 20 }, (_, i) => publish(t.api, { goal: `g${i % 4}`, namespace: n })),
    );
    const results = await Promise.all(claims);
    expect(performance.now() - t0).toBeLessThan(2500);
    for (const r of results) expect(r.status, r.text).toBe(200);
    const got = results.map((r) => r.json.id as string);
    expect(new Set(got).size).toBe(20);
    expect([...got].sort()).toEqual([...ids].sort());
    expect204(await claim(`namespace=${n}`));
    expect(t.bus.hub.waiting).toBe(0);
  });

  it('releases a waiting claim whose client disconnects', async () => {
    const n = ns('abort');
    const gone = await t.newKey('gone');
    const next = await t.newKey('next');
    expect(t.bus.hub.waiting).toBe(0);
    const ac = new AbortController();
    const aborted = fetch(`${t.url}/claim?namespace=${n}&wait=10`, {
      method: 'POST',
      headers: { 'x-api-key': gone.api_key },
      signal: ac.signal,
    });
    const rejected = expect(aborted).rejects.toThrow();
    await waitUntil(() => t.bus.hub.waiting === 1);
    ac.abort();
    await rejected;
    await waitUntil(() => t.bus.hub.waiting === 0, 1000);

    // A publish now reaches a new waiting claimer, not the one that went away.
    const waiting = timed(claim(`namespace=${n}&wait=5`, next.api_key));
    await waitUntil(() => t.bus.hub.waiting === 1);
    const id = await publish(t.api, { goal: 'g', namespace: n, visibility: 'public' });
    const { r, ms } = await waiting;
    expect(r.status).toBe(200);
    expect(r.json.id).toBe(id);
    expect(ms).toBeLessThan(2000);
    expect(t.bus.hub.waiting).toBe(0);
    // And a publish after that is claimable at once too.
    const id2 = await publish(t.api, { goal: 'g', namespace: n, visibility: 'public' });
    expect((await claim(`namespace=${n}`, next.api_key)).json.id).toBe(id2);
  });
});

describe('POST /claim?wait=S after a failure (backoff)', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus({ random: () => 0 });
  });
  afterAll(async () => t.close());

  it('is woken when the backoff of a /fail comes due', async () => {
    const n = ns('backoff');
    const id = await publish(t.api, { goal: 'g', namespace: n, backoff_base: 1 });
    const first = await t.api('POST', `/claim?namespace=${n}`);
    expect(first.json.claim_attempts).toBe(1);
    const failedAt = Date.now() / 1000;
    const t0 = performance.now();
    const fail = await t.api('POST', `/fail/${id}`, {
      body: { claim_token: first.json.claim_token, error: 'retry me' },
    });
    expect(fail.json.status).toBe('open');
    // backoff after attempt 1: 1 * 2^1 + 0 jitter = 2 s.
    const status = await t.api('GET', `/status/${id}`);
    expect(status.json.run_at).toBeGreaterThanOrEqual(failedAt + 1.9);
    expect(status.json.run_at).toBeLessThanOrEqual(failedAt + 2.2);
    expect((await t.api('POST', `/claim?namespace=${n}`)).status).toBe(204);

    const { r } = await timed(t.api('POST', `/claim?namespace=${n}&wait=5`));
    const ms = performance.now() - t0;
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ id, claim_attempts: 2 });
    expect(ms).toBeGreaterThanOrEqual(1800);
    expect(ms).toBeLessThan(3000);
  });
});

describe('GET /result/<id>?wait=S', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  it('returns when the intent is fulfilled', async () => {
    const n = ns('result');
    const id = await publish(t.api, { goal: 'g', namespace: n });
    const c = await t.api('POST', `/claim?namespace=${n}`);
    const waiting = timed(t.api('GET', `/result/${id}?wait=10`));
    await sleep(200);
    const t0 = performance.now();
    await t.api('POST', `/fulfill/${id}`, {
      body: { claim_token: c.json.claim_token, result: { v: 7 } },
    });
    const { r, ms } = await waiting;
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({
      id,
      status: 'fulfilled',
      result: { v: 7 },
      result_type: 'json',
    });
    expect(typeof r.json.completed_at).toBe('number');
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(ms).toBeLessThan(2000);
  });

  it('returns when the intent becomes dead', async () => {
    const n = ns('result-dead');
    const id = await publish(t.api, { goal: 'g', namespace: n, max_attempts: 1 });
    const c = await t.api('POST', `/claim?namespace=${n}`);
    const waiting = timed(t.api('GET', `/result/${id}?wait=10`));
    await sleep(200);
    const t0 = performance.now();
    const fail = await t.api('POST', `/fail/${id}`, {
      body: { claim_token: c.json.claim_token, error: 'broken' },
    });
    expect(fail.json.status).toBe('dead');
    const { r } = await waiting;
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ id, status: 'dead', result: null });
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('returns when an admin cancel makes it dead', async () => {
    const n = ns('result-cancel');
    const id = await publish(t.api, { goal: 'g', namespace: n });
    const waiting = timed(t.api('GET', `/result/${id}?wait=10`));
    await sleep(200);
    await t.api('POST', `/admin/intents/${id}/cancel`, { admin: true });
    const { r, ms } = await waiting;
    expect(r.json).toMatchObject({ id, status: 'dead' });
    expect(ms).toBeLessThan(1500);
  });

  it('is not ended by a failure that leaves the intent open', async () => {
    const n = ns('result-open');
    const id = await publish(t.api, { goal: 'g', namespace: n, backoff_base: 1 });
    const c = await t.api('POST', `/claim?namespace=${n}`);
    const waiting = timed(t.api('GET', `/result/${id}?wait=1`));
    await sleep(200);
    await t.api('POST', `/fail/${id}`, { body: { claim_token: c.json.claim_token } });
    const { r, ms } = await waiting;
    expect(r.status).toBe(200);
    expect(r.json.status).toBe('open');
    expect(ms).toBeGreaterThanOrEqual(900);
  });

  it('answers after S seconds with the current state', async () => {
    const n = ns('result-timeout');
    const id = await publish(t.api, { goal: 'g', namespace: n });
    const { r, ms } = await timed(t.api('GET', `/result/${id}?wait=1`));
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ id, status: 'open', result: null });
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(ms).toBeLessThan(2500);
  });

  it('answers at once when the intent is already finished', async () => {
    const n = ns('result-done');
    const id = await publish(t.api, { goal: 'g', namespace: n });
    const c = await t.api('POST', `/claim?namespace=${n}`);
    await t.api('POST', `/fulfill/${id}`, {
      body: { claim_token: c.json.claim_token, result: 'ok', result_type: 'text' },
    });
    const { r, ms } = await timed(t.api('GET', `/result/${id}?wait=10`));
    expect(r.json).toMatchObject({ status: 'fulfilled', result: 'ok', result_type: 'text' });
    expect(ms).toBeLessThan(500);
  });

  it('answers 404 at once to a key without access', async () => {
    const n = ns('result-noaccess');
    const id = await publish(t.api, { goal: 'g', namespace: n });
    const stranger = await t.newKey('stranger');
    const { r, ms } = await timed(t.api('GET', `/result/${id}?wait=5`, { key: stranger.api_key }));
    expect(r.status).toBe(404);
    expect(errorCode(r)).toBe('not_found');
    expect(ms).toBeLessThan(500);
  });
});

describe('long polls of a key that is revoked while they wait', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(() => t.close());

  it('ends its waiting claims and result waits with 401, and hands it no intent', async () => {
    const n = ns('revoked');
    const key = await t.newKey('revoked-while-waiting');
    const own = await publish(t.api, { goal: 'mine', namespace: n }, key.api_key);
    const held = await publish(t.api, { goal: 'held', namespace: n }, key.api_key);
    const took = await t.api('POST', `/claim?namespace=${n}&goal=held`, { key: key.api_key });
    expect(took.json.id).toBe(held);
    const claim = timed(
      t.api('POST', `/claim?namespace=${n}&goal=next&wait=20`, { key: key.api_key }),
    );
    const result = timed(t.api('GET', `/result/${own}?wait=30`, { key: key.api_key }));
    await waitUntil(() => t.bus.hub.waiting === 2);
    const revoked = await t.api('POST', '/admin/revoke_key', {
      admin: true,
      body: { key_id: key.key_id },
    });
    expect(revoked.status).toBe(200);
    // Published right after the revoke: the waiting claim must not get it.
    const next = await publish(t.api, { goal: 'next', namespace: n, visibility: 'public' });
    for (const { r, ms } of await Promise.all([claim, result])) {
      expect(r.status, r.text).toBe(401);
      expect(errorCode(r)).toBe('unauthorized');
      expect(ms).toBeLessThan(10_000);
    }
    expect(t.bus.hub.waiting).toBe(0);
    const status = await t.api('GET', `/status/${next}`);
    expect(status.json.status).toBe('open');
    // The main key's claim takes it: nothing was left claimed by the revoked key.
    const taken = await t.api('POST', `/claim?namespace=${n}&goal=next`);
    expect(taken.json.id).toBe(next);
    // What the key held before the revoke goes back to open with the next lease sweep.
    let back: ApiResponse | undefined;
    for (let i = 0; i < 50 && back?.json.status !== 'open'; i++) {
      await sleep(100);
      back = await t.api('GET', `/status/${held}`);
    }
    expect(back?.json).toMatchObject({ status: 'open', claim_attempts: 1 });
  });
});

describe('long polls and shutdown', () => {
  it('a waiting claim answers 204 promptly when the bus closes', async () => {
    const t = await startTestBus();
    let closed = false;
    try {
      const waiting = timed(t.api('POST', `/claim?namespace=${ns('shutdown')}&wait=20`));
      await waitUntil(() => t.bus.hub.waiting === 1);
      const t0 = performance.now();
      const closing = t.close().then(() => performance.now() - t0);
      closed = true;
      const { r } = await waiting;
      const answeredAfter = performance.now() - t0;
      expect204(r);
      expect(answeredAfter).toBeLessThan(2000);
      expect(await closing).toBeLessThan(3000);
    } finally {
      if (!closed) await t.close();
    }
  });

  it('a waiting result answers promptly when the bus closes', async () => {
    const t = await startTestBus();
    let closed = false;
    try {
      const id = await publish(t.api, { goal: 'g' });
      const waiting = timed(t.api('GET', `/result/${id}?wait=20`));
      await waitUntil(() => t.bus.hub.waiting === 1);
      const t0 = performance.now();
      const closing = t.close().then(() => performance.now() - t0);
      closed = true;
      const { r } = await waiting;
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({ id, status: 'open' });
      expect(performance.now() - t0).toBeLessThan(2000);
      expect(await closing).toBeLessThan(3000);
    } finally {
      if (!closed) await t.close();
    }
  });
});

describe('waiter limits', () => {
  it('BUS_MAX_WAITERS_PER_KEY: past the limit a tester key is answered at once', async () => {
    const t = await startTestBus({ env: { BUS_MAX_WAITERS_PER_KEY: '2' } });
    const pending: Promise<ApiResponse>[] = [];
    try {
      const n = ns('per-key');
      const k = await t.newKey('limited');
      for (let i = 0; i < 2; i++) {
        pending.push(t.api('POST', `/claim?namespace=${n}&wait=5`, { key: k.api_key }));
      }
      await waitUntil(() => t.bus.hub.waiting === 2);
      const { r, ms } = await timed(
        t.api('POST', `/claim?namespace=${n}&wait=5`, { key: k.api_key }),
      );
      expect204(r);
      expect(ms).toBeLessThan(1000);

      // Another tester key has its own allowance, and the main key is exempt.
      const other = await t.newKey('other');
      const otherWait = timed(
        t.api('POST', `/claim?namespace=${n}&wait=1`, { key: other.api_key }),
      );
      const mainWaits = Array.from({ length: 3 }, () =>
        timed(t.api('POST', `/claim?namespace=${n}&wait=1`, { key: MAIN_KEY })),
      );
      await waitUntil(() => t.bus.hub.waiting === 6);
      for (const w of [otherWait, ...mainWaits]) {
        const { r: wr, ms: wms } = await w;
        expect204(wr);
        expect(wms).toBeGreaterThanOrEqual(900);
      }
    } finally {
      await t.close();
      for (const r of await Promise.all(pending)) expect(r.status).toBe(204);
    }
  });

  it('BUS_MAX_WAITERS: past the limit a claim of another key is answered at once', async () => {
    const t = await startTestBus({ env: { BUS_MAX_WAITERS: '1' } });
    const pending: Promise<ApiResponse>[] = [];
    try {
      const n = ns('global');
      const a = await t.newKey('a');
      const b = await t.newKey('b');
      pending.push(t.api('POST', `/claim?namespace=${n}&wait=5`, { key: a.api_key }));
      await waitUntil(() => t.bus.hub.waiting === 1);
      const { r, ms } = await timed(
        t.api('POST', `/claim?namespace=${n}&wait=5`, { key: b.api_key }),
      );
      expect204(r);
      expect(ms).toBeLessThan(1000);
      // Answered as if wait=0: a claimable intent is still handed out at once.
      const m = ns('global-other');
      const id = await publish(t.api, { goal: 'g', namespace: m, visibility: 'public' });
      const now = await timed(t.api('POST', `/claim?namespace=${m}&wait=5`, { key: b.api_key }));
      expect(now.r.status).toBe(200);
      expect(now.r.json.id).toBe(id);
      expect(now.ms).toBeLessThan(1000);
    } finally {
      await t.close();
      for (const r of await Promise.all(pending)) expect(r.status).toBe(204);
    }
  });
});
