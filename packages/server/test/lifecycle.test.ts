/**
 * PROTOCOL.md §2: every row of the state table, over real HTTP against a real bus.
 *
 * Time is a manual clock and jitter is fixed (random() = 0.5, so jitter is exactly 1 s):
 * no test sleeps through a backoff or a lease. The bus's own housekeeping timers are
 * stopped in these buses so that advancing the clock cannot race with a background sweep;
 * POST /admin/cleanup runs the very same passes on demand (and reports their counts). One
 * test keeps the timers running to show the sweeper acts by itself.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  errorCode,
  publish,
  startTestBus,
  type ApiResponse,
  type RequestOptions,
  type TestBus,
} from './helpers.js';

const HEX32 = /^[0-9a-f]{32}$/;
const CLAIM_TIMEOUT = 60;
/** random() = 0.5 → jitter = 0.5 * 2 s = 1 s. */
const JITTER_MS = 1000;

/** A bus on a manual clock with fixed jitter and no background housekeeping. */
async function startManualBus(): Promise<TestBus> {
  const t = await startTestBus({ manualClock: true, random: () => 0.5 });
  await t.bus.housekeeper.stop();
  return t;
}

/** The bus's current time in ms. */
const nowMs = (t: TestBus): number => t.clock.now();
/** A wire time (unix seconds) for a time in ms, computed exactly like the server does. */
const wire = (ms: number): number => ms / 1000;

function advance(t: TestBus, ms: number): void {
  if (!t.manual) throw new Error('this bus has no manual clock');
  t.manual.advance(ms);
}

async function claim(t: TestBus, query = '', o: RequestOptions = {}): Promise<ApiResponse> {
  return t.api('POST', `/claim${query}`, o);
}

/** Claims and fails the test unless an intent (optionally a given one) was handed out. */
async function claimOk(
  t: TestBus,
  id?: string,
  query = '',
  o: RequestOptions = {},
): Promise<{ id: string; claim_token: string; claim_attempts: number; claim_expires_at: number }> {
  const r = await claim(t, query, o);
  expect(r.status, r.text).toBe(200);
  if (id !== undefined) expect(r.json.id).toBe(id);
  return r.json;
}

async function expectNoClaim(t: TestBus, query = '', o: RequestOptions = {}): Promise<void> {
  const r = await claim(t, query, o);
  expect(r.status, r.text).toBe(204);
  expect(r.headers.get('retry-after')).toBe('1');
  expect(r.text).toBe('');
}

const fulfill = (t: TestBus, id: string, body: Record<string, unknown>, key?: string) =>
  t.api('POST', `/fulfill/${id}`, { body, key });
const fail = (t: TestBus, id: string, body: Record<string, unknown>, key?: string) =>
  t.api('POST', `/fail/${id}`, { body, key });
const extend = (t: TestBus, id: string, body: Record<string, unknown>, key?: string) =>
  t.api('POST', `/extend_claim/${id}`, { body, key });

async function status(t: TestBus, id: string, key?: string): Promise<ApiResponse> {
  return t.api('GET', `/status/${id}`, { key });
}

async function statusOk(t: TestBus, id: string) {
  const r = await status(t, id);
  expect(r.status, r.text).toBe(200);
  return r.json;
}

async function resultOk(t: TestBus, id: string) {
  const r = await t.api('GET', `/result/${id}`);
  expect(r.status, r.text).toBe(200);
  return r.json;
}

/** The full intent as the admin API shows it: payload, result and dead reason included. */
async function adminIntent(t: TestBus, id: string) {
  const r = await t.api('GET', `/admin/intents/${id}`, { admin: true });
  expect(r.status, r.text).toBe(200);
  return r.json;
}

async function cleanup(t: TestBus) {
  const r = await t.api('POST', '/admin/cleanup', { admin: true });
  expect(r.status, r.text).toBe(200);
  return r.json;
}

async function deadLetters(t: TestBus): Promise<Array<Record<string, unknown>>> {
  const r = await t.api('GET', '/admin/dead', { admin: true });
  expect(r.status, r.text).toBe(200);
  expect(Array.isArray(r.json)).toBe(true);
  return r.json;
}

async function deadLetter(t: TestBus, id: string) {
  return (await deadLetters(t)).find((d) => d.intent_id === id);
}

function expectNotFound(r: ApiResponse): void {
  expect(r.status, r.text).toBe(404);
  expect(errorCode(r)).toBe('not_found');
}

/** extend, fulfill and fail with `token` all answer 404 not_found and change nothing. */
async function expectTokenDead(t: TestBus, id: string, token: string, key?: string) {
  const before = await adminIntent(t, id);
  expectNotFound(await extend(t, id, { claim_token: token, seconds: 30 }, key));
  expectNotFound(await fulfill(t, id, { claim_token: token, result: 'late' }, key));
  expectNotFound(await fail(t, id, { claim_token: token, error: 'late' }, key));
  expect(await adminIntent(t, id)).toEqual(before);
}

describe('PROTOCOL.md §2 state table', () => {
  let t: TestBus;
  beforeEach(async () => {
    t = await startManualBus();
  });
  afterEach(async () => t.close());

  describe('open → claimed', () => {
    it('a claim takes an open intent: claim_attempts += 1, a fresh token, claim_expires_at = now + claim_timeout', async () => {
      const id = await publish(t.api, { goal: 'g', payload: { n: 1 } });
      const before = await statusOk(t, id);
      expect(before).toMatchObject({ status: 'open', claim_attempts: 0, claim_expires_at: null });

      advance(t, 1234);
      const at = nowMs(t);
      const r = await claim(t);
      expect(r.status, r.text).toBe(200);
      expect(r.json).toMatchObject({
        id,
        namespace: 'default',
        goal: 'g',
        payload: { n: 1 },
        claim_attempts: 1,
        priority: 100,
        target_worker: null,
        required_capability: null,
        claim_timeout: CLAIM_TIMEOUT,
        claim_expires_at: wire(at + CLAIM_TIMEOUT * 1000),
      });
      expect(r.json.claim_token).toMatch(HEX32);

      expect(await statusOk(t, id)).toMatchObject({
        status: 'claimed',
        claim_attempts: 1,
        claim_expires_at: wire(at + CLAIM_TIMEOUT * 1000),
      });
    });

    it('every claim hands out a new token and counts one more attempt', async () => {
      const id = await publish(t.api, { goal: 'g', backoff_base: 1, max_attempts: 5 });
      const tokens: string[] = [];
      for (let n = 1; n <= 3; n++) {
        const at = nowMs(t);
        const c = await claimOk(t, id);
        expect(c.claim_attempts).toBe(n);
        expect(c.claim_token).toMatch(HEX32);
        expect(c.claim_expires_at).toBe(wire(at + CLAIM_TIMEOUT * 1000));
        tokens.push(c.claim_token);
        const f = await fail(t, id, { claim_token: c.claim_token, error: `try ${n}` });
        expect(f.status, f.text).toBe(200);
        advance(t, 3600_000); // well past any backoff of base 1
      }
      expect(new Set(tokens).size).toBe(3);
    });
  });

  describe('claimed → fulfilled', () => {
    it('a JSON result is stored and completed_at is set', async () => {
      const id = await publish(t.api, { goal: 'g' });
      const c = await claimOk(t, id);
      advance(t, 2500);
      const at = nowMs(t);
      const result = { rows: [1, 2, 3], nested: { ok: true, s: 'x' }, n: null };
      const r = await fulfill(t, id, { claim_token: c.claim_token, result, result_type: 'json' });
      expect(r.status, r.text).toBe(200);
      expect(r.json).toMatchObject({ ok: true, id, status: 'fulfilled' });

      expect(await resultOk(t, id)).toMatchObject({
        id,
        status: 'fulfilled',
        result,
        result_type: 'json',
        completed_at: wire(at),
      });
      const s = await statusOk(t, id);
      expect(s.status).toBe('fulfilled');
      expect(s).not.toHaveProperty('result');
    });

    it('result_type defaults to json', async () => {
      const id = await publish(t.api, { goal: 'g' });
      const c = await claimOk(t, id);
      const r = await fulfill(t, id, {
        claim_token: c.claim_token,
        result: [1, 'two', { three: 3 }],
      });
      expect(r.status, r.text).toBe(200);
      expect(await resultOk(t, id)).toMatchObject({
        status: 'fulfilled',
        result: [1, 'two', { three: 3 }],
        result_type: 'json',
        completed_at: wire(nowMs(t)),
      });
    });

    it('a text result is stored and returned as a string', async () => {
      const id = await publish(t.api, { goal: 'g' });
      const c = await claimOk(t, id);
      advance(t, 700);
      const text = '{"looks": "like json"} but is text\nline 2';
      const r = await fulfill(t, id, {
        claim_token: c.claim_token,
        result: text,
        result_type: 'text',
      });
      expect(r.status, r.text).toBe(200);
      expect(r.json).toMatchObject({ ok: true, id, status: 'fulfilled' });
      expect(await resultOk(t, id)).toMatchObject({
        status: 'fulfilled',
        result: text,
        result_type: 'text',
        completed_at: wire(nowMs(t)),
      });
    });

    it('a text result that is not a string is refused with 400 and changes nothing', async () => {
      const id = await publish(t.api, { goal: 'g' });
      const c = await claimOk(t, id);
      const before = await adminIntent(t, id);
      for (const result of [42, { a: 1 }, ['x'], true]) {
        const r = await fulfill(t, id, { claim_token: c.claim_token, result, result_type: 'text' });
        expect(r.status, `${JSON.stringify(result)}: ${r.text}`).toBe(400);
        errorCode(r);
      }
      expect(await adminIntent(t, id)).toEqual(before);
      // The lease is still live: a proper text result is accepted.
      const ok = await fulfill(t, id, {
        claim_token: c.claim_token,
        result: 'x',
        result_type: 'text',
      });
      expect(ok.status, ok.text).toBe(200);
    });
  });

  describe('claimed → open (fail while attempts < max_attempts)', () => {
    it('goes back to open with run_at = now + backoff_base * 2^n + jitter', async () => {
      const id = await publish(t.api, { goal: 'g', backoff_base: 5 }); // max_attempts 3
      const c1 = await claimOk(t, id);
      advance(t, 2000);
      const failedAt1 = nowMs(t);
      const f1 = await fail(t, id, { claim_token: c1.claim_token, error: 'boom 1' });
      expect(f1.status, f1.text).toBe(200);
      expect(f1.json).toMatchObject({ ok: true, id, status: 'open' });
      const runAt1 = failedAt1 + 5 * 2 ** 1 * 1000 + JITTER_MS; // n = 1
      expect(await statusOk(t, id)).toMatchObject({
        status: 'open',
        claim_attempts: 1,
        run_at: wire(runAt1),
        error: 'boom 1',
      });

      advance(t, runAt1 - nowMs(t));
      const c2 = await claimOk(t, id);
      expect(c2.claim_attempts).toBe(2);
      advance(t, 3000);
      const failedAt2 = nowMs(t);
      const f2 = await fail(t, id, { claim_token: c2.claim_token, error: 'boom 2' });
      expect(f2.json).toMatchObject({ ok: true, id, status: 'open' });
      expect(await statusOk(t, id)).toMatchObject({
        status: 'open',
        claim_attempts: 2,
        run_at: wire(failedAt2 + 5 * 2 ** 2 * 1000 + JITTER_MS), // n = 2
        error: 'boom 2',
      });
    });

    it('the backoff never puts a failed intent back before run_at', async () => {
      const id = await publish(t.api, { goal: 'g', backoff_base: 5 });
      const c = await claimOk(t, id);
      const failedAt = nowMs(t);
      expect((await fail(t, id, { claim_token: c.claim_token })).status).toBe(200);
      const runAt = failedAt + 11_000; // 5 * 2^1 + 1 s
      expect((await statusOk(t, id)).run_at).toBe(wire(runAt));

      await expectNoClaim(t);
      advance(t, 10_999);
      await expectNoClaim(t);
      await expectNoClaim(t, '?goal=g');
      advance(t, 1); // now == run_at
      const again = await claimOk(t, id);
      expect(again.claim_attempts).toBe(2);
    });
  });

  describe('claimed → dead (fail on the last attempt)', () => {
    it("goes dead with the worker's error as the dead-letter reason, listed by /admin/dead", async () => {
      const id = await publish(t.api, { goal: 'dies', namespace: 'ns1', max_attempts: 1 });
      const c = await claimOk(t, id, '?namespace=ns1');
      advance(t, 4000);
      const at = nowMs(t);
      const r = await fail(t, id, { claim_token: c.claim_token, error: 'disk on fire' });
      expect(r.status, r.text).toBe(200);
      expect(r.json).toMatchObject({ ok: true, id, status: 'dead' });

      expect(await statusOk(t, id)).toMatchObject({
        status: 'dead',
        claim_attempts: 1,
        error: 'disk on fire',
      });
      const d = await deadLetter(t, id);
      expect(d).toMatchObject({
        intent_id: id,
        namespace: 'ns1',
        goal: 'dies',
        attempts: 1,
        reason: 'disk on fire',
        created_at: wire(at),
      });
      const one = await t.api('GET', `/admin/dead/${id}`, { admin: true });
      expect(one.status, one.text).toBe(200);
      expect(one.json).toMatchObject({ intent_id: id, reason: 'disk on fire' });
    });

    it('an empty or blank error on the last attempt still gives the dead letter a reason', async () => {
      for (const error of ['', '   ', null, undefined]) {
        const id = await publish(t.api, { goal: 'dies-quietly', max_attempts: 1 });
        const c = await claimOk(t, id);
        const body =
          error === undefined
            ? { claim_token: c.claim_token }
            : { claim_token: c.claim_token, error };
        expect((await fail(t, id, body)).json.status).toBe('dead');
        expect((await deadLetter(t, id)).reason, JSON.stringify(error)).toBe('failed');
        expect((await adminIntent(t, id)).dead_reason).toBe('failed');
      }
    });

    it('max_attempts is respected: after the last failure it is never claimable again', async () => {
      const id = await publish(t.api, { goal: 'g', max_attempts: 2, backoff_base: 1 });
      const c1 = await claimOk(t, id);
      expect((await fail(t, id, { claim_token: c1.claim_token, error: 'e1' })).json.status).toBe(
        'open',
      );
      advance(t, 60_000);
      const c2 = await claimOk(t, id);
      expect(c2.claim_attempts).toBe(2);
      expect((await fail(t, id, { claim_token: c2.claim_token, error: 'e2' })).json.status).toBe(
        'dead',
      );

      for (const step of [0, 60_000, 3_600_000, 86_400_000]) {
        advance(t, step);
        await cleanup(t);
        await expectNoClaim(t);
        await expectNoClaim(t, '?goal=g');
      }
      expect(await statusOk(t, id)).toMatchObject({
        status: 'dead',
        claim_attempts: 2,
        max_attempts: 2,
        error: 'e2',
      });
    });
  });

  describe('lease expiry', () => {
    it('an expired lease goes back to open with run_at = expiry + backoff', async () => {
      const id = await publish(t.api, { goal: 'g', backoff_base: 3 });
      const c = await claimOk(t, id);
      const expiry = nowMs(t) + CLAIM_TIMEOUT * 1000;
      expect(c.claim_expires_at).toBe(wire(expiry));

      // Not yet: the sweep leaves a live lease alone.
      advance(t, CLAIM_TIMEOUT * 1000 - 1);
      const early = await cleanup(t);
      expect(early).toMatchObject({ expired_claims_requeued: 0, expired_claims_dead: 0 });
      expect((await statusOk(t, id)).status).toBe('claimed');

      advance(t, 5000); // past claim_expires_at
      const counts = await cleanup(t);
      expect(counts).toMatchObject({ expired_claims_requeued: 1, expired_claims_dead: 0 });
      const runAt = expiry + 3 * 2 ** 1 * 1000 + JITTER_MS;
      expect(await statusOk(t, id)).toMatchObject({
        status: 'open',
        claim_attempts: 1,
        run_at: wire(runAt),
      });

      advance(t, runAt - nowMs(t) - 1);
      await expectNoClaim(t);
      advance(t, 1);
      expect((await claimOk(t, id)).claim_attempts).toBe(2);
    });

    it('an expired lease on the last attempt goes dead with reason "lease expired"', async () => {
      const id = await publish(t.api, { goal: 'lost', max_attempts: 1 });
      await claimOk(t, id);
      advance(t, CLAIM_TIMEOUT * 1000 + 1);
      const counts = await cleanup(t);
      expect(counts).toMatchObject({ expired_claims_requeued: 0, expired_claims_dead: 1 });

      expect(await statusOk(t, id)).toMatchObject({ status: 'dead', claim_attempts: 1 });
      expect(await deadLetter(t, id)).toMatchObject({
        intent_id: id,
        goal: 'lost',
        attempts: 1,
        reason: 'lease expired',
      });
      expect((await adminIntent(t, id)).dead_reason).toBe('lease expired');
      await expectNoClaim(t);
    });

    it('the lease sweeper notices an expired lease by itself within about a second', async () => {
      // This bus keeps its housekeeping timers: no cleanup call, no claim traffic.
      const own = await startTestBus({ manualClock: true, random: () => 0.5 });
      try {
        const id = await publish(own.api, { goal: 'g', backoff_base: 2 });
        const c = await claimOk(own, id);
        const expiry = nowMs(own) + CLAIM_TIMEOUT * 1000;
        expect(c.claim_expires_at).toBe(wire(expiry));
        advance(own, CLAIM_TIMEOUT * 1000 + 1);
        const deadline = Date.now() + 3000;
        let s = await statusOk(own, id);
        while (s.status === 'claimed' && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50));
          s = await statusOk(own, id);
        }
        expect(s).toMatchObject({
          status: 'open',
          claim_attempts: 1,
          run_at: wire(expiry + 2 * 2 ** 1 * 1000 + JITTER_MS),
        });
      } finally {
        await own.close();
      }
    });
  });

  describe('open → dead (TTL)', () => {
    it('an open intent past expires_at goes dead with reason "expired"', async () => {
      const at = nowMs(t);
      const id = await publish(t.api, { goal: 'short', ttl: 1 });
      expect((await statusOk(t, id)).expires_at).toBe(wire(at + 1000));

      advance(t, 999);
      expect(await cleanup(t)).toMatchObject({ expired_open_deleted: 0 });
      expect((await statusOk(t, id)).status).toBe('open');

      advance(t, 2);
      const counts = await cleanup(t);
      expect(counts).toMatchObject({ expired_open_deleted: 1 });
      expect((await statusOk(t, id)).status).toBe('dead');
      expect(await deadLetter(t, id)).toMatchObject({
        intent_id: id,
        goal: 'short',
        attempts: 0,
        reason: 'expired',
      });
      expect((await adminIntent(t, id)).dead_reason).toBe('expired');
      await expectNoClaim(t);
    });
  });

  describe('any → open (admin retry)', () => {
    const retry = (id: string) => t.api('POST', `/admin/intents/${id}/retry`, { admin: true });

    it('from dead: attempts 0, run_at now, expires_at now + ttl, error cleared, dead letter removed', async () => {
      const id = await publish(t.api, { goal: 'g', max_attempts: 1, ttl: 100 });
      const c = await claimOk(t, id);
      await fail(t, id, { claim_token: c.claim_token, error: 'boom' });
      expect(await deadLetter(t, id)).toBeDefined();

      advance(t, 7000);
      const at = nowMs(t);
      const r = await retry(id);
      expect(r.status, r.text).toBe(200);
      expect(r.json).toMatchObject({ ok: true, id });

      const s = await resultOk(t, id);
      expect(s).toMatchObject({
        status: 'open',
        claim_attempts: 0,
        run_at: wire(at),
        expires_at: wire(at + 100_000),
        claim_expires_at: null,
        result: null,
        result_type: null,
        completed_at: null,
      });
      expect(s.error ?? null).toBeNull();
      expect((await adminIntent(t, id)).dead_reason ?? null).toBeNull();
      expect(await deadLetter(t, id)).toBeUndefined();
      expectNotFound(await t.api('GET', `/admin/dead/${id}`, { admin: true }));
      expectNotFound(await fulfill(t, id, { claim_token: c.claim_token, result: 1 }));

      const again = await claimOk(t, id);
      expect(again.claim_attempts).toBe(1);
    });

    it('from fulfilled: result cleared, the old token stays dead, claimable again', async () => {
      const id = await publish(t.api, { goal: 'g', ttl: 50 });
      const c = await claimOk(t, id);
      await fulfill(t, id, { claim_token: c.claim_token, result: { done: true } });

      advance(t, 3000);
      const at = nowMs(t);
      const r = await retry(id);
      expect(r.status, r.text).toBe(200);
      const s = await resultOk(t, id);
      expect(s).toMatchObject({
        status: 'open',
        claim_attempts: 0,
        run_at: wire(at),
        expires_at: wire(at + 50_000),
        claim_expires_at: null,
        result: null,
        result_type: null,
        completed_at: null,
      });
      expect(s.error ?? null).toBeNull();
      expectNotFound(await fulfill(t, id, { claim_token: c.claim_token, result: 'again' }));

      const again = await claimOk(t, id);
      expect(again.claim_attempts).toBe(1);
      expect(again.claim_token).not.toBe(c.claim_token);
    });

    it("from claimed: the live claim's token dies", async () => {
      const id = await publish(t.api, { goal: 'g', ttl: 500 });
      const c1 = await claimOk(t, id);
      const f = await fail(t, id, { claim_token: c1.claim_token, error: 'first' });
      expect(f.json.status).toBe('open');
      advance(t, 60_000);
      const c2 = await claimOk(t, id);
      expect(c2.claim_attempts).toBe(2);

      advance(t, 1000);
      const at = nowMs(t);
      const r = await retry(id);
      expect(r.status, r.text).toBe(200);
      const s = await statusOk(t, id);
      expect(s).toMatchObject({
        status: 'open',
        claim_attempts: 0,
        run_at: wire(at),
        expires_at: wire(at + 500_000),
        claim_expires_at: null,
      });
      expect(s.error ?? null).toBeNull();

      await expectTokenDead(t, id, c2.claim_token);
      const c3 = await claimOk(t, id);
      expect(c3.claim_attempts).toBe(1);
    });
  });

  describe('open, claimed → dead (admin cancel)', () => {
    const cancel = (id: string) => t.api('POST', `/admin/intents/${id}/cancel`, { admin: true });

    it('cancels an open intent: dead, reason "cancelled"', async () => {
      const id = await publish(t.api, { goal: 'g' });
      const r = await cancel(id);
      expect(r.status, r.text).toBe(200);
      expect(r.json).toMatchObject({ ok: true, id, status: 'dead' });
      expect((await statusOk(t, id)).status).toBe('dead');
      expect(await deadLetter(t, id)).toMatchObject({ intent_id: id, reason: 'cancelled' });
      expect((await adminIntent(t, id)).dead_reason).toBe('cancelled');
      await expectNoClaim(t);
    });

    it('cancels a claimed intent: dead, reason "cancelled", the claim\'s token dies', async () => {
      const id = await publish(t.api, { goal: 'g' });
      const c = await claimOk(t, id);
      const r = await cancel(id);
      expect(r.status, r.text).toBe(200);
      expect(r.json).toMatchObject({ ok: true, id, status: 'dead' });
      expect(await deadLetter(t, id)).toMatchObject({ intent_id: id, reason: 'cancelled' });
      await expectTokenDead(t, id, c.claim_token);
      expect((await statusOk(t, id)).status).toBe('dead');
    });

    it('cancelling a fulfilled intent changes nothing and answers 200 with its status', async () => {
      const id = await publish(t.api, { goal: 'g' });
      const c = await claimOk(t, id);
      await fulfill(t, id, { claim_token: c.claim_token, result: 'kept', result_type: 'text' });
      const before = await adminIntent(t, id);
      advance(t, 1000);
      const r = await cancel(id);
      expect(r.status, r.text).toBe(200);
      expect(r.json).toMatchObject({ ok: true, id, status: 'fulfilled' });
      expect(await adminIntent(t, id)).toEqual(before);
      expect(await deadLetter(t, id)).toBeUndefined();
    });

    it('cancelling a dead intent changes nothing and answers 200 with its status', async () => {
      const id = await publish(t.api, { goal: 'g', max_attempts: 1 });
      const c = await claimOk(t, id);
      await fail(t, id, { claim_token: c.claim_token, error: 'original reason' });
      const before = await adminIntent(t, id);
      const letterBefore = await deadLetter(t, id);
      advance(t, 1000);
      const r = await cancel(id);
      expect(r.status, r.text).toBe(200);
      expect(r.json).toMatchObject({ ok: true, id, status: 'dead' });
      expect(await adminIntent(t, id)).toEqual(before);
      expect(await deadLetter(t, id)).toEqual(letterBefore);
      expect(letterBefore).toMatchObject({ reason: 'original reason' });
    });
  });

  describe('dead tokens', () => {
    it('a token is dead once its lease has expired, even before any sweep', async () => {
      const id = await publish(t.api, { goal: 'g' });
      const c = await claimOk(t, id);
      advance(t, CLAIM_TIMEOUT * 1000); // claim_expires_at == now: the lease has ended
      await expectTokenDead(t, id, c.claim_token);
      expect((await statusOk(t, id)).status).toBe('claimed'); // nothing swept it yet
      advance(t, 1);
      await cleanup(t);
      expect((await statusOk(t, id)).status).toBe('open');
      await expectTokenDead(t, id, c.claim_token);
    });

    it('a token is dead once another claim replaced it', async () => {
      const id = await publish(t.api, { goal: 'g', backoff_base: 1 });
      const c1 = await claimOk(t, id);
      advance(t, CLAIM_TIMEOUT * 1000 + 1);
      expect(await cleanup(t)).toMatchObject({ expired_claims_requeued: 1 });
      advance(t, 10_000);
      const c2 = await claimOk(t, id);
      expect(c2.claim_token).not.toBe(c1.claim_token);

      await expectTokenDead(t, id, c1.claim_token);
      const ok = await fulfill(t, id, { claim_token: c2.claim_token, result: 'second' });
      expect(ok.status, ok.text).toBe(200);
    });

    it('a token is dead once its claim was fulfilled or failed', async () => {
      const a = await publish(t.api, { goal: 'a' });
      const ca = await claimOk(t, a, '?goal=a');
      expect((await fulfill(t, a, { claim_token: ca.claim_token, result: 1 })).status).toBe(200);
      await expectTokenDead(t, a, ca.claim_token);

      const b = await publish(t.api, { goal: 'b' });
      const cb = await claimOk(t, b, '?goal=b');
      expect((await fail(t, b, { claim_token: cb.claim_token, error: 'x' })).status).toBe(200);
      await expectTokenDead(t, b, cb.claim_token);
    });

    it('a token that was never handed out is not live', async () => {
      const id = await publish(t.api, { goal: 'g' });
      await claimOk(t, id);
      await expectTokenDead(t, id, 'f'.repeat(32));
      await expectTokenDead(t, id, 'not-even-hex');
    });

    it('a live token used with another tester key answers 404 and changes nothing', async () => {
      const owner = await t.newKey('owner');
      const worker = await t.newKey('worker');
      const id = await publish(t.api, { goal: 'g', visibility: 'public' }, owner.api_key);
      const c = await claimOk(t, id, '', { key: worker.api_key });

      await expectTokenDead(t, id, c.claim_token, owner.api_key);
      await expectTokenDead(t, id, c.claim_token); // the main key is no exception

      const ok = await fulfill(
        t,
        id,
        { claim_token: c.claim_token, result: 'mine' },
        worker.api_key,
      );
      expect(ok.status, ok.text).toBe(200);
    });
  });

  describe('/extend_claim', () => {
    it('sets claim_expires_at = now + seconds and answers {ok, id, extended_by, claim_expires_at}', async () => {
      const id = await publish(t.api, { goal: 'g' });
      const c = await claimOk(t, id);
      advance(t, 45_000);
      const at = nowMs(t);
      const r = await extend(t, id, { claim_token: c.claim_token, seconds: 120 });
      expect(r.status, r.text).toBe(200);
      expect(r.json).toMatchObject({
        ok: true,
        id,
        extended_by: 120,
        claim_expires_at: wire(at + 120_000),
      });
      expect((await statusOk(t, id)).claim_expires_at).toBe(wire(at + 120_000));

      // The lease now outlives the original claim_timeout.
      advance(t, 100_000);
      expect(await cleanup(t)).toMatchObject({ expired_claims_requeued: 0 });
      const again = await extend(t, id, { claim_token: c.claim_token, seconds: 10 });
      expect(again.json).toMatchObject({
        extended_by: 10,
        claim_expires_at: wire(nowMs(t) + 10_000),
      });
      const done = await fulfill(t, id, { claim_token: c.claim_token, result: 'ok' });
      expect(done.status, done.text).toBe(200);
    });

    it('accepts seconds 10 and 3600 and refuses anything outside 10..3600 with 400', async () => {
      const id = await publish(t.api, { goal: 'g' });
      const c = await claimOk(t, id);
      for (const seconds of [10, 3600]) {
        const r = await extend(t, id, { claim_token: c.claim_token, seconds });
        expect(r.status, `${seconds}: ${r.text}`).toBe(200);
        expect(r.json.claim_expires_at).toBe(wire(nowMs(t) + seconds * 1000));
      }
      const before = await adminIntent(t, id);
      for (const seconds of [9, 9.99, 0, -30, 3600.5, 3601, 86_400, '30', null]) {
        const r = await extend(t, id, { claim_token: c.claim_token, seconds });
        expect(r.status, `${JSON.stringify(seconds)}: ${r.text}`).toBe(400);
        errorCode(r);
      }
      expect(await adminIntent(t, id)).toEqual(before);
    });
  });

  describe('request checks on extend, fulfill and fail', () => {
    const endpoints = [
      ['/extend_claim', { seconds: 30 }],
      ['/fulfill', { result: 'r' }],
      ['/fail', { error: 'e' }],
    ] as const;

    it('a missing claim_token answers 400 invalid_request "Missing claim_token"', async () => {
      const id = await publish(t.api, { goal: 'g' });
      await claimOk(t, id);
      for (const [path, rest] of endpoints) {
        const r = await t.api('POST', `${path}/${id}`, { body: { ...rest } });
        expect(r.status, `${path}: ${r.text}`).toBe(400);
        expect(errorCode(r)).toBe('invalid_request');
        expect(r.json.error.message).toContain('Missing claim_token');
      }
    });

    it('a claim_token that is not a string answers 400 invalid_request "Missing claim_token"', async () => {
      const id = await publish(t.api, { goal: 'g' });
      await claimOk(t, id);
      for (const [path, rest] of endpoints) {
        for (const token of [12345, null, true, ['a'], { t: 'x' }]) {
          const r = await t.api('POST', `${path}/${id}`, { body: { ...rest, claim_token: token } });
          expect(r.status, `${path} ${JSON.stringify(token)}: ${r.text}`).toBe(400);
          expect(errorCode(r)).toBe('invalid_request');
          expect(r.json.error.message).toContain('Missing claim_token');
        }
        // A string that cannot be a live token is just a dead token.
        for (const token of ['', 'x'.repeat(500)]) {
          const r = await t.api('POST', `${path}/${id}`, { body: { ...rest, claim_token: token } });
          expect(r.status, `${path} ${token.length}: ${r.text}`).toBe(404);
          expect(errorCode(r)).toBe('not_found');
        }
      }
    });

    it('a request without any body is missing its claim_token too', async () => {
      const id = await publish(t.api, { goal: 'g' });
      await claimOk(t, id);
      for (const [path] of endpoints) {
        for (const headers of [{}, { 'content-type': 'application/json' }] as Record<
          string,
          string
        >[]) {
          const r = await t.api('POST', `${path}/${id}`, { headers });
          expect(r.status, `${path} ${JSON.stringify(headers)}: ${r.text}`).toBe(400);
          expect(errorCode(r)).toBe('invalid_request');
          expect(r.json.error.message).toContain('Missing claim_token');
        }
      }
    });

    it('/fail keeps the error cut to 500 characters', async () => {
      const id = await publish(t.api, { goal: 'g', max_attempts: 2 });
      const c1 = await claimOk(t, id);
      const long = 'abcdefghij'.repeat(70); // 700 chars
      expect((await fail(t, id, { claim_token: c1.claim_token, error: long })).status).toBe(200);
      expect((await statusOk(t, id)).error).toBe(long.slice(0, 500));

      advance(t, 3_600_000);
      const c2 = await claimOk(t, id);
      const longer = '0123456789'.repeat(100);
      const r = await fail(t, id, { claim_token: c2.claim_token, error: longer });
      expect(r.json.status).toBe('dead');
      expect((await statusOk(t, id)).error).toBe(longer.slice(0, 500));
      const d = await deadLetter(t, id);
      expect(d?.reason).toBe(longer.slice(0, 500));
    });
  });

  describe('/result and /status access', () => {
    it('the publisher, the current or last claimer and the main key read; another key gets 404', async () => {
      const publisher = await t.newKey('publisher');
      const worker = await t.newKey('worker');
      const stranger = await t.newKey('stranger');
      const id = await publish(t.api, { goal: 'g', visibility: 'public' }, publisher.api_key);

      const canRead = async (key: string | undefined, who: string) => {
        for (const path of [`/status/${id}`, `/result/${id}`]) {
          const r = await t.api('GET', path, { key });
          expect(r.status, `${who} ${path}: ${r.text}`).toBe(200);
          expect(r.json.id).toBe(id);
        }
      };
      const cannotRead = async (key: string, who: string) => {
        for (const path of [`/status/${id}`, `/result/${id}`]) {
          const r = await t.api('GET', path, { key });
          expect(r.status, `${who} ${path}: ${r.text}`).toBe(404);
          expect(errorCode(r)).toBe('not_found');
        }
      };

      // Open: the publisher and the main key.
      await canRead(publisher.api_key, 'publisher');
      await canRead(undefined, 'main');
      await cannotRead(worker.api_key, 'worker before claiming');
      await cannotRead(stranger.api_key, 'stranger');

      // Claimed: the current claimer too.
      const c1 = await claimOk(t, id, '', { key: worker.api_key });
      await canRead(worker.api_key, 'current claimer');
      await cannotRead(stranger.api_key, 'stranger');

      // Failed back to open: the last claimer still reads.
      await fail(t, id, { claim_token: c1.claim_token, error: 'retry me' }, worker.api_key);
      await canRead(worker.api_key, 'last claimer (failed)');

      // Fulfilled: the last claimer reads the result.
      advance(t, 3_600_000);
      const c2 = await claimOk(t, id, '', { key: worker.api_key });
      await fulfill(t, id, { claim_token: c2.claim_token, result: { v: 42 } }, worker.api_key);
      for (const key of [worker.api_key, publisher.api_key, undefined]) {
        const r = await t.api('GET', `/result/${id}`, { key });
        expect(r.status, r.text).toBe(200);
        expect(r.json).toMatchObject({
          status: 'fulfilled',
          result: { v: 42 },
          result_type: 'json',
        });
      }
      await cannotRead(stranger.api_key, 'stranger');
    });

    it('an unknown id answers 404 not_found', async () => {
      const unknown = '0123456789abcdef0123456789abcdef';
      expectNotFound(await t.api('GET', `/status/${unknown}`));
      expectNotFound(await t.api('GET', `/result/${unknown}`));
    });
  });
});
