/**
 * Flow control [ext] (PROTOCOL.md §6, the claim of §5.2): the admin API, and a claim that
 * obeys a pause, a limit in flight and a rate, over real HTTP with the real clock, on
 * both stores. Several nodes: flow-nodes.test.ts.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, publish, startTestBus, type ApiResponse, type TestBus } from './helpers.js';

let t: TestBus;
beforeAll(async () => {
  t = await startTestBus();
});
afterAll(async () => t.close());

let seq = 0;
/** A namespace of its own per test. */
const ns = (name: string): string => `fc-${name}-${++seq}`;

const put = (n: string, goal: string, body: unknown): Promise<ApiResponse> =>
  t.api('PUT', `/admin/flow/${n}/${encodeURIComponent(goal)}`, { admin: true, body });
const claim = (query: string): Promise<ApiResponse> => t.api('POST', `/claim?${query}`);

async function putOk(n: string, goal: string, body: unknown): Promise<ApiResponse> {
  const r = await put(n, goal, body);
  expect(r.status, r.text).toBe(200);
  return r;
}

/** Waits until the bus has `n` waiting requests. */
async function waiters(n: number): Promise<void> {
  const end = performance.now() + 3000;
  while (t.bus.hub.waiting < n) {
    if (performance.now() > end) throw new Error(`${n} waiters not reached`);
    await sleep(5);
  }
}

describe('the flow admin API', () => {
  it('sets, merges, clears and removes a control, and lists them', async () => {
    const n = ns('api');
    let r = await putOk(n, 'g', { paused: true });
    expect(r.json).toMatchObject({
      namespace: n,
      goal: 'g',
      paused: true,
      max_in_flight: null,
      rate: null,
    });
    expect(typeof r.json.updated_at).toBe('number');
    // Members not given stay.
    r = await putOk(n, 'g', { max_in_flight: 3 });
    expect(r.json).toMatchObject({ paused: true, max_in_flight: 3, rate: null });
    r = await putOk(n, 'g', { rate: { limit: 5, per: 1 } });
    expect(r.json).toMatchObject({ paused: true, max_in_flight: 3, rate: { limit: 5, per: 1 } });
    await putOk(n, '*', { max_in_flight: 10 });
    const list = await t.api('GET', '/admin/flow', { admin: true });
    expect(list.status).toBe(200);
    expect(list.json.filter((c: { namespace: string }) => c.namespace === n)).toEqual([
      {
        namespace: n,
        goal: '*',
        paused: false,
        max_in_flight: 10,
        rate: null,
        updated_at: expect.any(Number),
      },
      {
        namespace: n,
        goal: 'g',
        paused: true,
        max_in_flight: 3,
        rate: { limit: 5, per: 1 },
        updated_at: expect.any(Number),
      },
    ]);
    // null clears; nothing left set removes the control.
    r = await putOk(n, 'g', { paused: false, max_in_flight: null, rate: null });
    expect(r.json).toEqual({
      namespace: n,
      goal: 'g',
      paused: false,
      max_in_flight: null,
      rate: null,
      updated_at: null,
    });
    const after = await t.api('GET', '/admin/flow', { admin: true });
    expect(after.json.filter((c: { namespace: string }) => c.namespace === n)).toHaveLength(1);
    expect((await t.api('DELETE', `/admin/flow/${n}/*`, { admin: true })).json).toEqual({
      ok: true,
      removed: true,
    });
    const gone = await t.api('DELETE', `/admin/flow/${n}/*`, { admin: true });
    expect(gone.status).toBe(404);
    expect(errorCode(gone)).toBe('not_found');
  });

  it('refuses bad bodies with a 400 naming the field', async () => {
    const n = ns('bad');
    const cases: Array<[unknown, string]> = [
      [{ paused: 'yes' }, 'paused'],
      [{ max_in_flight: 0 }, 'max_in_flight'],
      [{ max_in_flight: 1.5 }, 'max_in_flight'],
      [{ max_in_flight: '3' }, 'max_in_flight'],
      [{ rate: { limit: 5 } }, 'rate.per'],
      [{ rate: { limit: 0, per: 1 } }, 'rate.limit'],
      [{ rate: { limit: 5, per: 0 } }, 'rate.per'],
      [{ rate: { limit: 5, per: 1, burst: 2 } }, 'rate.burst'],
      [{ rate: 5 }, 'rate'],
      [{ pause: true }, 'pause'],
      [[], ''],
    ];
    for (const [body, field] of cases) {
      const r = await put(n, 'g', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(errorCode(r)).toBe('invalid_request');
      expect(r.json.error.message, JSON.stringify(body)).toContain(field);
    }
    const badNs = await t.api('PUT', '/admin/flow/bad%20ns/g', {
      admin: true,
      body: { paused: true },
    });
    expect(badNs.status).toBe(400);
    expect(badNs.json.error.message).toContain('namespace');
    // The admin API needs the admin token.
    expect((await t.api('PUT', `/admin/flow/${n}/g`, { body: { paused: true } })).status).toBe(401);
    expect(
      (await t.api('GET', '/admin/flow', { admin: true })).json.some(
        (c: { namespace: string }) => c.namespace === n,
      ),
    ).toBe(false);
  });
});

describe('a claim under flow control', () => {
  it('takes nothing of a paused goal, accepts its publishes, and keeps other goals flowing', async () => {
    const n = ns('pause');
    await putOk(n, 'held', { paused: true });
    const held = await publish(t.api, { namespace: n, goal: 'held', priority: 900 });
    const other = await publish(t.api, { namespace: n, goal: 'other', priority: 1 });
    // The goal held back is passed over: the next in the §4 order is taken.
    const r = await claim(`namespace=${n}`);
    expect(r.status).toBe(200);
    expect(r.json.id).toBe(other);
    const none = await claim(`namespace=${n}&goal=held`);
    expect(none.status).toBe(204);
    expect(none.headers.get('retry-after')).toBe('1');
    const status = await t.api('GET', `/status/${held}`);
    expect(status.json).toMatchObject({ status: 'open', held_by: 'paused' });
    expect((await t.api('GET', `/status/${other}`)).json.held_by).toBeUndefined();
    // The whole namespace paused, then resumed.
    await putOk(n, 'held', { paused: false });
    await putOk(n, '*', { paused: true });
    expect((await claim(`namespace=${n}`)).status).toBe(204);
    expect((await t.api('GET', `/status/${held}`)).json.held_by).toBe('paused');
    await putOk(n, '*', { paused: false });
    expect((await t.api('GET', `/status/${held}`)).json.held_by).toBeUndefined();
    expect((await claim(`namespace=${n}`)).json.id).toBe(held);
  });

  it('resume wakes a waiting long poll at once', async () => {
    const n = ns('resume');
    await putOk(n, 'g', { paused: true });
    const id = await publish(t.api, { namespace: n, goal: 'g' });
    const before = t.bus.hub.waiting;
    const waiting = claim(`namespace=${n}&goal=g&wait=10`);
    await waiters(before + 1);
    await sleep(100);
    await putOk(n, 'g', { paused: false });
    const t0 = performance.now();
    const r = await waiting;
    const ms = performance.now() - t0;
    expect(r.status).toBe(200);
    expect(r.json.id).toBe(id);
    expect(ms).toBeLessThan(100);
  });

  it('holds max_in_flight, and a fulfil that frees a slot wakes a waiting claim', async () => {
    const n = ns('inflight');
    await putOk(n, 'g', { max_in_flight: 2 });
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await publish(t.api, { namespace: n, goal: 'g' }));
    const other = await publish(t.api, { namespace: n, goal: 'h', priority: 1 });
    const a = await claim(`namespace=${n}&goal=g`);
    const b = await claim(`namespace=${n}&goal=g`);
    expect([a.status, b.status]).toEqual([200, 200]);
    const c = await claim(`namespace=${n}&goal=g`);
    expect(c.status).toBe(204);
    expect(c.headers.get('retry-after')).toBe('1');
    expect((await t.api('GET', `/status/${ids[2]}`)).json.held_by).toBe('max_in_flight');
    // Another goal flows meanwhile.
    expect((await claim(`namespace=${n}`)).json.id).toBe(other);
    const before = t.bus.hub.waiting;
    const waiting = claim(`namespace=${n}&goal=g&wait=10`);
    await waiters(before + 1);
    const f = await t.api('POST', `/fulfill/${a.json.id}`, {
      body: { claim_token: a.json.claim_token, result: 1 },
    });
    expect(f.status).toBe(200);
    const t0 = performance.now();
    const r = await waiting;
    expect(r.status).toBe(200);
    expect(performance.now() - t0).toBeLessThan(500);
    // A fail frees a slot too.
    expect((await claim(`namespace=${n}&goal=g`)).status).toBe(204);
    const fail = await t.api('POST', `/fail/${b.json.id}`, {
      body: { claim_token: b.json.claim_token, error: 'x' },
    });
    expect(fail.status).toBe(200);
    expect((await claim(`namespace=${n}&goal=g`)).status).toBe(200);
  });

  it('frees a slot of the whole namespace for a claim of another goal', async () => {
    const n = ns('whole');
    await putOk(n, '*', { max_in_flight: 1 });
    await publish(t.api, { namespace: n, goal: 'a' });
    const b = await publish(t.api, { namespace: n, goal: 'b' });
    const a = await claim(`namespace=${n}&goal=a`);
    expect(a.status).toBe(200);
    const held = await claim(`namespace=${n}&goal=b`);
    expect(held.status).toBe(204);
    expect((await t.api('GET', `/status/${b}`)).json.held_by).toBe('max_in_flight');
    const before = t.bus.hub.waiting;
    const waiting = claim(`namespace=${n}&goal=b&wait=10`);
    await waiters(before + 1);
    const t0 = performance.now();
    const f = await t.api('POST', `/fulfill/${a.json.id}`, {
      body: { claim_token: a.json.claim_token, result: 1 },
    });
    expect(f.status).toBe(200);
    const r = await waiting;
    expect(r.status).toBe(200);
    expect(r.json.id).toBe(b);
    // Woken by the fulfil, not by the held claim's own look after a second.
    expect(performance.now() - t0).toBeLessThan(500);
  });

  it('holds a rate as a sliding window, with Retry-After at the next slot', async () => {
    const n = ns('rate');
    await putOk(n, 'g', { rate: { limit: 3, per: 2 } });
    for (let i = 0; i < 5; i++) await publish(t.api, { namespace: n, goal: 'g' });
    const t0 = performance.now();
    for (let i = 0; i < 3; i++) expect((await claim(`namespace=${n}&goal=g`)).status).toBe(200);
    const held = await claim(`namespace=${n}&goal=g`);
    expect(held.status).toBe(204);
    expect(held.headers.get('retry-after')).toBe('2');
    // A long poll is woken when the window lets the next claim in.
    const r = await claim(`namespace=${n}&goal=g&wait=10`);
    const ms = performance.now() - t0;
    expect(r.status).toBe(200);
    expect(ms).toBeGreaterThanOrEqual(1900);
    expect(ms).toBeLessThan(3500);
  });

  it('counts the claims held back in /metrics', async () => {
    const n = ns('metrics');
    await putOk(n, 'g', { paused: true });
    await publish(t.api, { namespace: n, goal: 'g' });
    expect((await claim(`namespace=${n}&goal=g`)).status).toBe(204);
    const m = await t.api('GET', '/metrics', { admin: true });
    expect(m.text).toContain(
      `intent_bus_claims_held_total{namespace="${n}",goal="g",control="paused"} 1`,
    );
  });
});
