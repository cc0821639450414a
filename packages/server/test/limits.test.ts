/**
 * Limits of PROTOCOL.md §8 and PRODUCT.md "Configuration": the per-key sliding-window rate
 * limit (BUS_RATE_LIMIT_PER_MINUTE), the open + claimed quota (BUS_MAX_OPEN_PER_KEY) and
 * the body size limit (BUS_MAX_BODY_BYTES). The rate limit runs on a manual clock.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManualClock } from '../src/core/clock.js';
import { errorCode, publish, startTestBus, type ApiResponse, type TestBus } from './helpers.js';

const CANARY = 'PAYLOAD_CANARY';
const SECOND = 1000;
const WINDOW = 60 * SECOND;

function expectError(r: ApiResponse, status: number, code: string): void {
  expect(r.status, r.text).toBe(status);
  expect(errorCode(r)).toBe(code);
}

/** Retry-After as integer seconds ≥ 1. */
function retryAfter(r: ApiResponse): number {
  const raw = r.headers.get('retry-after');
  expect(raw, 'Retry-After header').not.toBeNull();
  expect(raw).toMatch(/^\d+$/);
  const n = Number(raw);
  expect(n).toBeGreaterThanOrEqual(1);
  return n;
}

describe('rate limit: a sliding one-minute window per tester key (60/min)', () => {
  let t: TestBus;
  let clock: ManualClock;
  let n = 0;
  beforeAll(async () => {
    t = await startTestBus({ manualClock: true, env: { BUS_RATE_LIMIT_PER_MINUTE: '60' } });
    clock = t.manual!;
  });
  afterAll(async () => t.close());

  /** One counted request: a claim that finds nothing (204) when admitted. */
  const hit = (key: string): Promise<ApiResponse> =>
    t.api('POST', `/claim?namespace=rl-empty&goal=nothing-${++n}`, { key });

  /** Sends `count` requests, sequentially, and expects each to pass. */
  async function pass(key: string, count: number, what: string): Promise<void> {
    for (let i = 1; i <= count; i++) {
      const r = await hit(key);
      expect(r.status, `${what}: request ${i} of ${count}: ${r.text}`).toBe(204);
    }
  }

  function expectLimited(r: ApiResponse): number {
    expectError(r, 429, 'rate_limited');
    return retryAfter(r);
  }

  it('passes the 60th request and refuses the 61st with 429 rate_limited and Retry-After', async () => {
    const { api_key } = await t.newKey('rl-basic');
    await pass(api_key, 60, 'first minute');
    const refused = await hit(api_key);
    // All 60 were sent at the same instant: the oldest leaves the window in 60 s.
    expect(expectLimited(refused)).toBe(60);
    clock.advance(20 * SECOND);
    expect(expectLimited(await hit(api_key))).toBe(40);
    clock.advance(39.5 * SECOND);
    expect(expectLimited(await hit(api_key))).toBe(1);
  });

  it('slides: requests free up exactly as they leave the window', async () => {
    const { api_key } = await t.newKey('rl-slide');
    const t0 = clock.now();
    await pass(api_key, 30, 'batch at t=0');
    clock.set(t0 + 30 * SECOND);
    await pass(api_key, 30, 'batch at t=30s');
    // The oldest of the window (t=0) leaves at t=60s: 30 s from now.
    expect(expectLimited(await hit(api_key))).toBe(30);
    clock.set(t0 + WINDOW + 1);
    // The 30 of t=0 are out, the 30 of t=30s are still in.
    await pass(api_key, 30, 'at t=60.001s');
    const refused = await hit(api_key);
    const wait = expectLimited(refused);
    // The oldest left in the window is from t=30s: it leaves at t=90s, ~30 s from now.
    expect(wait).toBeGreaterThanOrEqual(29);
    expect(wait).toBeLessThanOrEqual(30);
    clock.set(t0 + 90 * SECOND + 1);
    await pass(api_key, 30, 'at t=90.001s');
    expectLimited(await hit(api_key));
  });

  it('does not count refused requests', async () => {
    const { api_key } = await t.newKey('rl-refused');
    const t0 = clock.now();
    await pass(api_key, 60, 'full window');
    clock.set(t0 + 10 * SECOND);
    for (let i = 0; i < 15; i++) expectLimited(await hit(api_key));
    // Everything admitted was at t=0; had the refusals at t=10s counted, fewer than 60
    // would pass at t=60.001s.
    clock.set(t0 + WINDOW + 1);
    await pass(api_key, 60, 'after the window moved on');
    expectLimited(await hit(api_key));
  });

  it('never limits the main key (120 requests in the same instant)', async () => {
    for (let i = 1; i <= 120; i++) {
      const r = await t.api('POST', `/claim?namespace=rl-empty&goal=main-${i}`);
      expect(r.status, `main key request ${i}: ${r.text}`).toBe(204);
    }
  });

  it('gives each tester key its own window', async () => {
    const c = await t.newKey('rl-own-1');
    const d = await t.newKey('rl-own-2');
    await pass(c.api_key, 60, 'key C');
    expectLimited(await hit(c.api_key));
    await pass(d.api_key, 60, 'key D, beside a limited key C');
    expectLimited(await hit(d.api_key));
    expectLimited(await hit(c.api_key));
  });

  it('limits every client route alike (publish, status, KV), the refused request changing nothing', async () => {
    const { api_key, key_id } = await t.newKey('rl-routes');
    await pass(api_key, 57, 'warm-up');
    const id = await publish(t.api, { goal: 'rl-routes', payload: { canary: CANARY } }, api_key);
    const set = await t.api('POST', '/set/rl-name', { key: api_key, body: { value: 1 } });
    expect(set.status, set.text).toBe(200);
    expect((await t.api('GET', `/status/${id}`, { key: api_key })).status).toBe(200);
    expectLimited(
      await t.api('POST', '/intent', {
        key: api_key,
        body: { goal: 'rl-routes-refused', payload: { canary: CANARY } },
      }),
    );
    expectLimited(await t.api('POST', '/set/rl-name', { key: api_key, body: { value: 2 } }));
    expectLimited(await t.api('GET', '/get/rl-name', { key: api_key }));
    expectLimited(await t.api('GET', `/status/${id}`, { key: api_key }));
    // Nothing of the refused requests was stored.
    const stray = await t.api('POST', `/claim?goal=rl-routes-refused&publisher=${key_id}`);
    expect(stray.status, stray.text).toBe(204);
    clock.advance(WINDOW + 1);
    const kv = await t.api('GET', '/get/rl-name', { key: api_key });
    expect(kv.status, kv.text).toBe(200);
    expect(kv.json).toEqual({ value: 1 });
  });

  it('answers 401 (not 429) for a revoked key, and its window is gone', async () => {
    const { api_key, key_id } = await t.newKey('rl-revoked');
    await pass(api_key, 60, 'before revoke');
    expectLimited(await hit(api_key));
    const revoke = await t.api('POST', '/admin/revoke_key', { admin: true, body: { key_id } });
    expect(revoke.status, revoke.text).toBe(200);
    expectError(await hit(api_key), 401, 'unauthorized');
  });

  it('prunes idle windows in a cleanup (rate_limits_deleted ≥ 1) and starts them afresh', async () => {
    const { api_key } = await t.newKey('rl-prune');
    await pass(api_key, 60, 'before idling');
    expectLimited(await hit(api_key));
    clock.advance(WINDOW + SECOND);
    const cleanup = await t.api('POST', '/admin/cleanup', { admin: true });
    expect(cleanup.status, cleanup.text).toBe(200);
    expect(cleanup.json.rate_limits_deleted).toBeGreaterThanOrEqual(1);
    // Nothing is left to prune right after.
    const again = await t.api('POST', '/admin/cleanup', { admin: true });
    expect(again.json.rate_limits_deleted).toBe(0);
    await pass(api_key, 60, 'a fresh window');
    expectLimited(await hit(api_key));
  });
});

describe('quota: open + claimed intents per tester key (BUS_MAX_OPEN_PER_KEY=3)', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus({
      env: { BUS_MAX_OPEN_PER_KEY: '3', BUS_RATE_LIMIT_PER_MINUTE: '100000' },
    });
  });
  afterAll(async () => t.close());

  const body = (goal: string): Record<string, unknown> => ({
    goal,
    namespace: 'quota',
    payload: { canary: CANARY },
  });
  const publishAs = (key: string, goal: string, headers?: Record<string, string>) =>
    t.api('POST', '/intent', { key, body: body(goal), headers });

  async function expectNothingStored(key: string, keyId: string, goal: string): Promise<void> {
    const own = await t.api('POST', `/claim?namespace=quota&goal=${goal}`, { key });
    expect(own.status, own.text).toBe(204);
    const main = await t.api('POST', `/claim?namespace=quota&goal=${goal}&publisher=${keyId}`);
    expect(main.status, main.text).toBe(204);
  }

  function expectQuota(r: ApiResponse): void {
    expectError(r, 429, 'limit_exceeded');
    retryAfter(r);
  }

  it('refuses the 4th open intent with 429 limit_exceeded and Retry-After, storing nothing', async () => {
    const { api_key, key_id } = await t.newKey('quota-basic');
    for (let i = 1; i <= 3; i++) {
      const r = await publishAs(api_key, `q-basic-${i}`);
      expect(r.status, r.text).toBe(201);
    }
    expectQuota(await publishAs(api_key, 'q-basic-4'));
    await expectNothingStored(api_key, key_id, 'q-basic-4');
  });

  it('counts claimed intents, and frees a slot when one is fulfilled', async () => {
    const { api_key, key_id } = await t.newKey('quota-claimed');
    const ids: string[] = [];
    for (let i = 1; i <= 3; i++) ids.push(await publish(t.api, body(`q-claimed-${i}`), api_key));
    const claim = await t.api('POST', '/claim?namespace=quota&goal=q-claimed-1', { key: api_key });
    expect(claim.status, claim.text).toBe(200);
    expect(claim.json.id).toBe(ids[0]);
    expectQuota(await publishAs(api_key, 'q-claimed-4'));
    await expectNothingStored(api_key, key_id, 'q-claimed-4');
    const done = await t.api('POST', `/fulfill/${ids[0]}`, {
      key: api_key,
      body: { claim_token: claim.json.claim_token, result: 'ok' },
    });
    expect(done.status, done.text).toBe(200);
    const freed = await publishAs(api_key, 'q-claimed-5');
    expect(freed.status, freed.text).toBe(201);
    // Exactly one slot was freed (the refused publish took none).
    expectQuota(await publishAs(api_key, 'q-claimed-6'));
  });

  it('still answers 201 to an idempotent replay of an earlier publish at full quota', async () => {
    const { api_key } = await t.newKey('quota-replay');
    const first = await publishAs(api_key, 'q-replay-1', { 'idempotency-key': 'quota-replay-1' });
    expect(first.status, first.text).toBe(201);
    for (let i = 2; i <= 3; i++) {
      expect((await publishAs(api_key, `q-replay-${i}`)).status).toBe(201);
    }
    expectQuota(await publishAs(api_key, 'q-replay-4'));
    const replay = await publishAs(api_key, 'q-replay-1', { 'idempotency-key': 'quota-replay-1' });
    expect(replay.status, replay.text).toBe(201);
    expect(replay.json).toEqual(first.json);
  });

  it('exempts the main key', async () => {
    for (let i = 1; i <= 6; i++) {
      const r = await t.api('POST', '/intent', { body: body(`q-main-${i}`) });
      expect(r.status, `main publish ${i}: ${r.text}`).toBe(201);
    }
  });

  it('gives each tester key its own quota', async () => {
    const c = await t.newKey('quota-own-1');
    const d = await t.newKey('quota-own-2');
    for (let i = 1; i <= 3; i++) await publish(t.api, body(`q-own-c-${i}`), c.api_key);
    expectQuota(await publishAs(c.api_key, 'q-own-c-4'));
    for (let i = 1; i <= 3; i++) {
      const r = await publishAs(d.api_key, `q-own-d-${i}`);
      expect(r.status, `key D publish ${i}: ${r.text}`).toBe(201);
    }
    expectQuota(await publishAs(d.api_key, 'q-own-d-4'));
  });
});

describe('body size (BUS_MAX_BODY_BYTES=8192)', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus({ env: { BUS_MAX_BODY_BYTES: '8192' } });
  });
  afterAll(async () => t.close());

  /** A publish body of exactly `bytes` bytes. */
  function bodyOf(bytes: number, goal: string): string {
    const skeleton = JSON.stringify({ goal, payload: { canary: CANARY, pad: '' } });
    const pad = 'x'.repeat(bytes - Buffer.byteLength(skeleton));
    const out = JSON.stringify({ goal, payload: { canary: CANARY, pad } });
    expect(Buffer.byteLength(out)).toBe(bytes);
    return out;
  }
  const send = (raw: string, key?: string): Promise<ApiResponse> =>
    t.api('POST', '/intent', { raw, key, headers: { 'content-type': 'application/json' } });

  it('refuses a 9000-byte body with 413 payload_too_large and stores nothing', async () => {
    expectError(await send(bodyOf(9000, 'size-9000')), 413, 'payload_too_large');
    const claim = await t.api('POST', '/claim?goal=size-9000');
    expect(claim.status).toBe(204);
  });

  it('accepts an 8000-byte body', async () => {
    const r = await send(bodyOf(8000, 'size-8000'));
    expect(r.status, r.text).toBe(201);
    const claim = await t.api('POST', '/claim?goal=size-8000');
    expect(claim.status).toBe(200);
    expect(claim.json.payload.pad.length).toBeGreaterThan(7000);
  });

  it('limits the body the same way for a tester key', async () => {
    const { api_key } = await t.newKey('size');
    expectError(await send(bodyOf(9000, 'size-tester-9000'), api_key), 413, 'payload_too_large');
    expect((await send(bodyOf(8000, 'size-tester-8000'), api_key)).status).toBe(201);
  });
});
