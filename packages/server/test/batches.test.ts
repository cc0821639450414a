/**
 * Batches [ext] (issue 21) over real HTTP, on both stores: POST /intents (idempotency,
 * mixed items, the quota, the size limits), POST /claim?max=N (routing, privacy,
 * capabilities, the long poll, a limit in flight) and POST /fulfill, POST /fail with a
 * stale token among good ones; each item counted and announced as a single request.
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
import { SseClient } from './sse-client.js';

const MAX_OPEN = 40;
const METRICS_TOKEN = 'metrics_test_0123456789abcdef';

let t: TestBus;
beforeAll(async () => {
  t = await startTestBus({
    env: {
      BUS_MAX_OPEN_PER_KEY: String(MAX_OPEN),
      BUS_RATE_LIMIT_PER_MINUTE: '100000',
      BUS_MAX_BODY_BYTES: '4096',
      BUS_METRICS_TOKEN: METRICS_TOKEN,
    },
  });
});
afterAll(async () => t.close());

let seq = 0;
const ns = (name: string): string => `b-${name}-${++seq}`;

interface ItemAnswer {
  status: number;
  body: Record<string, unknown> & { error?: { code: string; field?: string } };
}
const results = (r: ApiResponse): ItemAnswer[] => {
  expect(r.status, r.text).toBe(200);
  return r.json.results as ItemAnswer[];
};

/** Items as objects, or as JSON texts sent as they are (numbers JSON.stringify would change). */
const publishMany = (intents: unknown[], key?: string) =>
  t.api('POST', '/intents', {
    raw: `{"intents":[${intents.map((i) => (typeof i === 'string' && i.startsWith('{') ? i : JSON.stringify(i))).join(',')}]}`,
    headers: { 'content-type': 'application/json' },
    key,
  });

async function claimMany(query: string, key?: string): Promise<ApiResponse> {
  return t.api('POST', `/claim?${query}`, { key });
}

async function metric(name: string, namespace: string): Promise<number> {
  const r = await t.api('GET', '/metrics', {
    key: null,
    headers: { authorization: `Bearer ${METRICS_TOKEN}` },
  });
  const line = r.text
    .split('\n')
    .find((l) => l.startsWith(`${name}{`) && l.includes(`namespace="${namespace}"`));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

describe('POST /intents', () => {
  it('publishes 1,000 with idempotency keys in one request; the same batch again replays every id', async () => {
    const n = ns('thousand');
    const intents = Array.from(
      { length: 1000 },
      (_, i) =>
        `{"goal":"g","namespace":"${n}","payload":{"i":${i},"big":12345678901234567890},"idempotency_key":"k-${n}-${i}"}`,
    );
    const first = results(await publishMany(intents));
    expect(first).toHaveLength(1000);
    expect(first.every((r) => r.status === 201 && r.body.status === 'published')).toBe(true);
    const ids = first.map((r) => r.body.id);
    expect(new Set(ids).size).toBe(1000);
    const again = results(await publishMany(intents));
    expect(again.map((r) => r.body.id)).toEqual(ids);
    expect(again.every((r) => r.status === 201)).toBe(true);
    // Every one is stored, its payload's number exactly as sent.
    const c = await claimMany(`namespace=${n}&max=100`);
    expect(c.status).toBe(200);
    expect(c.json).toHaveLength(100);
    expect(c.text.includes('"big":12345678901234567890}')).toBe(true);
    expect(await metric('intent_bus_published_total', n)).toBe(1000);
    expect(await metric('intent_bus_claimed_total', n)).toBe(100);
  });

  it('answers each item as the single publish would: a bad item fails alone', async () => {
    const n = ns('mixed');
    const key = `k-${n}`;
    const single = await t.api('POST', '/intent', {
      body: { goal: 'g', namespace: n, payload: { a: 1 } },
      headers: { 'idempotency-key': key },
    });
    expect(single.status).toBe(201);
    const out = results(
      await publishMany([
        { goal: 'g', namespace: n, payload: 1 },
        { goal: 'g', namespace: n, payload: 2, priority: 5000 },
        { namespace: n, payload: 3 },
        'not an object',
        // The header's key of the single publish, the same body: its replay.
        { goal: 'g', namespace: n, payload: { a: 1 }, idempotency_key: key },
        // The same key with another body: a conflict.
        { goal: 'g', namespace: n, payload: { a: 2 }, idempotency_key: key },
        { goal: 'g', namespace: n, payload: 4, idempotency_key: '' },
        // A key first used in this very batch: the second is its replay.
        { goal: 'g', namespace: n, payload: 5, idempotency_key: `${key}-2` },
        { goal: 'g', namespace: n, payload: 5, idempotency_key: `${key}-2` },
        { goal: 'g', namespace: n, payload: 'x'.repeat(5000) },
        { goal: 'g', namespace: n, payload: 6 },
      ]),
    );
    expect(out.map((r) => r.status)).toEqual([
      201, 400, 400, 400, 201, 422, 400, 201, 201, 413, 201,
    ]);
    expect(out[1]!.body.error).toMatchObject({ code: 'invalid_request', field: 'priority' });
    expect(out[2]!.body.error).toMatchObject({ code: 'invalid_request', field: 'goal' });
    expect(out[3]!.body.error).toMatchObject({
      code: 'invalid_request',
      message: 'Item must be a JSON object',
    });
    expect(out[4]!.body).toEqual(single.json);
    expect(out[5]!.body.error!.code).toBe('idempotency_conflict');
    expect(out[6]!.body.error).toMatchObject({ code: 'invalid_request', field: 'idempotency_key' });
    expect(out[8]!.body).toEqual(out[7]!.body);
    expect(out[9]!.body.error!.code).toBe('payload_too_large');
    // What was created is there, nothing else: 1, the single one, 5 and 6.
    const c = await claimMany(`namespace=${n}&max=10`);
    const payloads = c.json.map((i: { payload: unknown }) => JSON.stringify(i.payload));
    expect(payloads.sort()).toEqual(['1', '5', '6', '{"a":1}']);
  });

  it("keeps a tester key's quota exact: the items beyond it fail alone", async () => {
    const k = await t.newKey('quota');
    const n = ns('quota');
    await publish(t.api, { goal: 'g', namespace: n }, k.api_key);
    const out = results(
      await publishMany(
        Array.from({ length: MAX_OPEN + 5 }, (_, i) => ({ goal: 'g', namespace: n, payload: i })),
        k.api_key,
      ),
    );
    expect(out.filter((r) => r.status === 201)).toHaveLength(MAX_OPEN - 1);
    expect(out.slice(MAX_OPEN - 1).every((r) => r.body.error?.code === 'limit_exceeded')).toBe(
      true,
    );
  });

  it('takes a batch over BUS_MAX_BODY_BYTES up to its own limit, and refuses a bad batch whole', async () => {
    const n = ns('size');
    const intents = Array.from({ length: 100 }, (_, i) => ({
      goal: 'g',
      namespace: n,
      payload: 'p'.repeat(200) + i,
    }));
    expect(JSON.stringify({ intents }).length).toBeGreaterThan(4096);
    expect(results(await publishMany(intents)).every((r) => r.status === 201)).toBe(true);
    for (const body of [{}, { intents: [] }, { intents: 'x' }]) {
      const r = await t.api('POST', '/intents', { body });
      expect(r.status, r.text).toBe(400);
      expect(errorCode(r)).toBe('invalid_request');
    }
    const tooMany = await publishMany(
      Array.from({ length: 1001 }, () => ({ goal: 'g', payload: 1 })),
    );
    expect(tooMany.status).toBe(400);
    const big = await t.api('POST', '/intents', {
      raw: JSON.stringify({ intents: [{ goal: 'g', payload: 'x'.repeat(9_000_000) }] }),
      headers: { 'content-type': 'application/json' },
    });
    expect(big.status).toBe(413);
    expect(errorCode(big)).toBe('payload_too_large');
  });
});

describe('POST /claim?max=N', () => {
  it('claims up to N in the order of §4, none beyond, then 204; without max the answer is unchanged', async () => {
    const n = ns('claim');
    for (let i = 0; i < 7; i++) await publish(t.api, { goal: 'g', namespace: n, priority: i });
    const a = await claimMany(`namespace=${n}&max=5`);
    expect(a.status).toBe(200);
    expect(a.json.map((i: { priority: number }) => i.priority)).toEqual([6, 5, 4, 3, 2]);
    expect(new Set(a.json.map((i: { claim_token: string }) => i.claim_token)).size).toBe(5);
    const b = await claimMany(`namespace=${n}&max=5`);
    expect(b.json).toHaveLength(2);
    const c = await claimMany(`namespace=${n}&max=5`);
    expect(c.status).toBe(204);
    await publish(t.api, { goal: 'g', namespace: n });
    const single = await claimMany(`namespace=${n}`);
    expect(single.status).toBe(200);
    expect(Array.isArray(single.json)).toBe(false);
    expect(single.json.namespace).toBe(n);
    const one = await claimMany(`namespace=${n}&max=1`);
    expect(one.status).toBe(204);
    for (const max of ['0', '101', 'x', '1.5']) {
      const r = await claimMany(`namespace=${n}&max=${max}`);
      expect(r.status, max).toBe(400);
      expect(errorCode(r)).toBe('invalid_request');
    }
  });

  it('keeps routing, privacy and capabilities', async () => {
    const n = ns('route');
    const other = await t.newKey('other');
    const mine = await t.newKey('mine');
    await publish(t.api, { goal: 'g', namespace: n, payload: 'private-other' }, other.api_key);
    await publish(
      t.api,
      { goal: 'g', namespace: n, payload: 'public', visibility: 'public' },
      other.api_key,
    );
    await publish(
      t.api,
      { goal: 'g', namespace: n, payload: 'for-w2', target_worker: 'w2' },
      mine.api_key,
    );
    await publish(
      t.api,
      { goal: 'g', namespace: n, payload: 'gpu', required_capability: 'gpu' },
      mine.api_key,
    );
    await publish(t.api, { goal: 'g', namespace: n, payload: 'mine' }, mine.api_key);
    const r = await claimMany(`namespace=${n}&max=10&worker_id=w1`, mine.api_key);
    expect(r.json.map((i: { payload: string }) => i.payload).sort()).toEqual(['mine', 'public']);
    const gpu = await claimMany(
      `namespace=${n}&max=10&worker_id=w2&capabilities=gpu`,
      mine.api_key,
    );
    expect(gpu.json.map((i: { payload: string }) => i.payload).sort()).toEqual(['for-w2', 'gpu']);
    expect((await claimMany(`namespace=${n}&max=10`, mine.api_key)).status).toBe(204);
  });

  it('waits as a long poll and answers once at least one is claimed', async () => {
    const n = ns('poll');
    const started = performance.now();
    const pending = claimMany(`namespace=${n}&max=3&wait=10`);
    while (t.bus.hub.waiting < 1) await sleep(5);
    await publish(t.api, { goal: 'g', namespace: n, payload: 1 });
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.json.length).toBeGreaterThanOrEqual(1);
    expect(r.json.length).toBeLessThanOrEqual(3);
    expect(performance.now() - started).toBeLessThan(9000);
    // Nothing: 204 after the wait.
    expect((await claimMany(`namespace=${n}&max=3&wait=0.2`)).status).toBe(204);
  });

  it('never claims beyond a flow control’s limit in flight', async () => {
    const n = ns('flow');
    const put = await t.api('PUT', `/admin/flow/${n}/g`, {
      admin: true,
      body: { max_in_flight: 3 },
    });
    expect(put.status, put.text).toBe(200);
    for (let i = 0; i < 10; i++) await publish(t.api, { goal: 'g', namespace: n });
    const a = await claimMany(`namespace=${n}&goal=g&max=10`);
    expect(a.json).toHaveLength(3);
    const b = await claimMany(`namespace=${n}&max=10`);
    expect(b.status).toBe(204);
    expect(b.headers.get('retry-after')).not.toBeNull();
    // One slot freed: one more, not ten.
    await t.api('POST', `/fulfill/${a.json[0].id}`, {
      body: { claim_token: a.json[0].claim_token },
    });
    const c = await claimMany(`namespace=${n}&max=10`);
    expect(c.json).toHaveLength(1);
  });
});

describe('POST /fulfill and POST /fail', () => {
  it('end many claims in one request; a stale token fails only its own item', async () => {
    const n = ns('end');
    for (let i = 0; i < 6; i++) await publish(t.api, { goal: 'g', namespace: n, max_attempts: 1 });
    const c = await claimMany(`namespace=${n}&max=6`);
    const [a, b, d, e, f, g] = c.json as Array<{ id: string; claim_token: string }>;
    const ful = results(
      await t.api('POST', '/fulfill', {
        raw: JSON.stringify({
          items: [
            { id: a!.id, claim_token: a!.claim_token, result: 'N' },
            { id: b!.id, claim_token: 'stale' },
            { id: d!.id, claim_token: d!.claim_token, result: 'done', result_type: 'text' },
            { id: 'nope', claim_token: 'x' },
            { id: b!.id, claim_token: b!.claim_token, result: 1, result_type: 'text' },
          ],
        }).replace('"N"', '{"n":1.0}'),
        headers: { 'content-type': 'application/json' },
      }),
    );
    expect(ful.map((r) => r.status)).toEqual([200, 404, 200, 404, 400]);
    expect(ful[0]!.body).toEqual({ ok: true, id: a!.id, status: 'fulfilled' });
    expect(ful[1]!.body.error!.code).toBe('not_found');
    const ra = await t.api('GET', `/result/${a!.id}`);
    expect(ra.text.includes('"result":{"n":1.0}')).toBe(true);
    expect((await t.api('GET', `/result/${d!.id}`)).json.result).toBe('done');
    expect((await t.api('GET', `/status/${b!.id}`)).json.status).toBe('claimed');

    const fl = results(
      await t.api('POST', '/fail', {
        body: {
          items: [
            { id: e!.id, claim_token: e!.claim_token, error: 'boom' },
            { id: f!.id, claim_token: 'stale', error: 'x' },
            { id: g!.id, claim_token: g!.claim_token },
            { id: b!.id, claim_token: b!.claim_token, error: 'late' },
            { id: a!.id },
          ],
        },
      }),
    );
    expect(fl.map((r) => r.status)).toEqual([200, 404, 200, 200, 400]);
    expect(fl[0]!.body).toEqual({ ok: true, id: e!.id, status: 'dead' });
    expect(fl[4]!.body.error).toMatchObject({ code: 'invalid_request', field: 'claim_token' });
    expect((await t.api('GET', `/status/${e!.id}`)).json.error).toBe('boom');
    expect((await t.api('GET', `/status/${f!.id}`)).json.status).toBe('claimed');
    expect(await metric('intent_bus_fulfilled_total', n)).toBe(2);
    expect(await metric('intent_bus_failed_total', n)).toBe(3);
  });
});

describe('events and wake-ups per item', () => {
  it('streams one record per item of each batch, and wakes a waiting claim and result', async () => {
    const n = ns('events');
    const stream = await SseClient.open(`${t.url}/events?namespace=${n}`, MAIN_KEY);
    try {
      expect(stream.status).toBe(200);
      const waiting = claimMany(`namespace=${n}&wait=10`);
      while (t.bus.hub.waiting < 1) await sleep(5);
      const pub = results(
        await publishMany([1, 2, 3].map((i) => ({ goal: 'g', namespace: n, payload: i }))),
      );
      const woken = await waiting;
      expect(woken.status).toBe(200);
      const ids = pub.map((r) => r.body.id as string);
      expect(ids).toContain(woken.json.id);
      const rest = await claimMany(`namespace=${n}&max=5`);
      const all = [woken.json, ...rest.json] as Array<{ id: string; claim_token: string }>;
      const result = t.api('GET', `/result/${ids[0]}?wait=10`);
      await t.api('POST', '/fulfill', {
        body: { items: all.map((c) => ({ id: c.id, claim_token: c.claim_token })) },
      });
      expect((await result).json.status).toBe('fulfilled');
      const records = await stream.until(
        (r) => r.filter((x) => x.event === 'fulfilled').length === 3,
      );
      const count = (type: string) => records.filter((r) => r.event === type).length;
      expect([count('published'), count('claimed'), count('fulfilled')]).toEqual([3, 3, 3]);
    } finally {
      stream.close();
    }
  });
});
