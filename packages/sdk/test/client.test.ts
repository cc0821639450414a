/**
 * IntentClient against a real bus over real HTTP: every method, how each option reaches
 * the wire, signing, typed errors, retries and timeouts. No mock of the server.
 */
import { CLEANUP_COUNTERS } from '../../protocol/src/cleanup.js';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  AuthError,
  IntentBusError,
  IntentClient,
  LeaseLostError,
  NetworkError,
  NotFoundError,
  QuotaError,
  RateLimitError,
  ServerError,
  ValidationError,
  newNonce,
  signature,
  signedHeaders,
} from '../src/index.js';
import {
  isLoopbackUrl,
  localBusSecret,
  localSecretsFile,
  resolveAdminToken,
  resolveApiKey,
} from '../src/node.js';
import { VECTORS } from '../../protocol/test/vectors.js';
import {
  ADMIN_TOKEN,
  MAIN_KEY,
  clientOf,
  closeBus,
  freePort,
  lossyFetch,
  sleep,
  startTestBus,
  uniqueGoal,
  type TestBus,
} from './support.js';

const HEX32 = /^[0-9a-f]{32}$/;
const nowS = (): number => Date.now() / 1000;

/** Resolves with the error a promise rejects with (fails the test when it resolves). */
async function caught(p: Promise<unknown>): Promise<IntentBusError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(IntentBusError);
    return err as IntentBusError;
  }
  throw new Error('expected the call to fail');
}

describe('IntentClient against a real bus', () => {
  let t: TestBus;
  let c: IntentClient;
  beforeAll(async () => {
    t = await startTestBus({ env: { BUS_RATE_LIMIT_PER_MINUTE: '100000' } });
    c = clientOf(t);
  });
  afterAll(async () => closeBus(t));

  describe('publish', () => {
    it('maps every option to its wire field', async () => {
      const goal = uniqueGoal('publish_all');
      const payload = {
        note: 'PAYLOAD_CANARY',
        nested: { list: [1, 'two', null] },
        uni: 'héllo ✓',
      };
      const before = nowS();
      const out = await c.publish(goal, payload, {
        namespace: 'ns.opts-1',
        visibility: 'public',
        priority: 777,
        delay: 100,
        maxAttempts: 7,
        backoffBase: 12.5,
        targetWorker: 'worker:a-1',
        requiredCapability: 'gpu',
        ttl: 5000,
      });
      expect(out).toEqual({
        id: expect.stringMatching(HEX32),
        status: 'published',
        namespace: 'ns.opts-1',
      });
      const i = await c.admin.intent(out.id);
      expect(i).toMatchObject({
        id: out.id,
        goal,
        payload,
        namespace: 'ns.opts-1',
        visibility: 'public',
        priority: 777,
        max_attempts: 7,
        backoff_base: 12.5,
        target_worker: 'worker:a-1',
        required_capability: 'gpu',
        ttl: 5000,
        status: 'open',
        claim_attempts: 0,
      });
      expect(i.run_at).toBeGreaterThanOrEqual(before + 100 - 1);
      expect(i.run_at).toBeLessThanOrEqual(nowS() + 100 + 1);
      expect(i.expires_at).toBeCloseTo(i.run_at + 5000, 0);
      // The same through the client's own status read.
      const s = await c.getStatus(out.id);
      expect(s).toMatchObject({
        namespace: 'ns.opts-1',
        visibility: 'public',
        priority: 777,
        max_attempts: 7,
        target_worker: 'worker:a-1',
        required_capability: 'gpu',
      });
      expect(s).not.toHaveProperty('result');
      // delay: not claimable yet
      expect(
        await c.claim({
          goal,
          namespace: 'ns.opts-1',
          workerId: 'worker:a-1',
          capabilities: ['gpu'],
        }),
      ).toBeNull();
    });

    it('sends the protocol defaults when no option is given', async () => {
      const goal = uniqueGoal('publish_defaults');
      const before = nowS();
      const out = await c.publish(goal, { PAYLOAD_CANARY: true });
      expect(out.namespace).toBe('default');
      const i = await c.admin.intent(out.id);
      expect(i).toMatchObject({
        namespace: 'default',
        visibility: 'private',
        priority: 100,
        max_attempts: 3,
        backoff_base: 5,
        target_worker: null,
        required_capability: null,
        ttl: 86400,
        payload: { PAYLOAD_CANARY: true },
      });
      expect(i.run_at).toBeGreaterThanOrEqual(before - 1);
      expect(i.run_at).toBeLessThanOrEqual(nowS() + 1);
    });

    it('publishes once per idempotency key; a new call without one publishes again', async () => {
      const goal = uniqueGoal('publish_idem');
      const key = `idem-${newNonce()}`;
      const a = await c.publish(goal, { n: 1 }, { idempotencyKey: key });
      const b = await c.publish(goal, { n: 1 }, { idempotencyKey: key });
      expect(b.id).toBe(a.id);
      const conflict = await caught(c.publish(goal, { n: 2 }, { idempotencyKey: key }));
      expect(conflict).toBeInstanceOf(ValidationError);
      expect(conflict).toMatchObject({ status: 422, code: 'idempotency_conflict' });
      const d = await c.publish(goal, { n: 1 });
      const e = await c.publish(goal, { n: 1 });
      expect(new Set([a.id, d.id, e.id]).size).toBe(3);
    });
  });

  describe('claim and claimOutcome', () => {
    it('claims a published intent with every field of a claimed intent', async () => {
      const goal = uniqueGoal('claim_basic');
      const { id } = await c.publish(goal, { PAYLOAD_CANARY: 'claim' }, { priority: 300 });
      const before = nowS();
      const j = await c.claim({ goal, workerId: 'w-claim-1' });
      expect(j).toMatchObject({
        id,
        namespace: 'default',
        goal,
        payload: { PAYLOAD_CANARY: 'claim' },
        claim_attempts: 1,
        priority: 300,
        target_worker: null,
        required_capability: null,
        claim_token: expect.stringMatching(HEX32),
        claim_timeout: 60,
      });
      expect(j!.claim_expires_at).toBeGreaterThanOrEqual(before + 59);
      // workerId reached the bus as the claim's worker id
      expect(await c.getStatus(id)).toMatchObject({ status: 'claimed', worker_id: 'w-claim-1' });
    });

    it('answers null, and claimOutcome a retryAfterSeconds of 1, when nothing is claimable', async () => {
      const goal = uniqueGoal('claim_empty');
      expect(await c.claim({ goal })).toBeNull();
      expect(await c.claimOutcome({ goal })).toEqual({
        intent: null,
        retryAfterSeconds: 1,
        command: null,
      });
      const { id } = await c.publish(goal, {});
      const out = await c.claimOutcome({ goal });
      expect(out.intent?.id).toBe(id);
      expect(out.retryAfterSeconds).toBe(0);
    });

    it('filters by goal, namespace, target worker and capabilities', async () => {
      const goal = uniqueGoal('claim_filters');
      const inNs = await c.publish(goal, {}, { namespace: 'ns-filter' });
      const targeted = await c.publish(goal, {}, { targetWorker: 'pi-7' });
      const needsGpu = await c.publish(goal, {}, { requiredCapability: 'gpu' });
      // the default namespace holds two, neither claimable by a plain worker
      expect(await c.claim({ goal, workerId: 'other' })).toBeNull();
      expect(await c.claim({ goal, workerId: 'other', capabilities: ['cpu'] })).toBeNull();
      expect((await c.claim({ goal, workerId: 'pi-7' }))?.id).toBe(targeted.id);
      expect((await c.claim({ goal, capabilities: ['cpu', 'gpu'] }))?.id).toBe(needsGpu.id);
      expect(await c.claim({ goal: `${goal}_other`, namespace: 'ns-filter' })).toBeNull();
      expect((await c.claim({ goal, namespace: 'ns-filter' }))?.id).toBe(inNs.id);
    });

    it('passes the publisher filter (own key id allowed, another key id refused)', async () => {
      const goal = uniqueGoal('claim_publisher');
      const k1 = await c.admin.generateKey('pub-one');
      const k2 = await c.admin.generateKey('pub-two');
      const one = new IntentClient({ baseUrl: t.url, apiKey: k1.api_key });
      const two = new IntentClient({ baseUrl: t.url, apiKey: k2.api_key });
      const { id } = await one.publish(goal, {}, { visibility: 'public' });
      expect(await two.claim({ goal, publisher: k2.key_id })).toBeNull();
      const err = await caught(two.claim({ goal, publisher: k1.key_id }));
      expect(err).toBeInstanceOf(AuthError);
      expect(err).toMatchObject({ status: 403, code: 'forbidden' });
      // the main key may filter by any publisher
      expect((await c.claim({ goal, publisher: k1.key_id }))?.id).toBe(id);
    });

    it('long-polls with waitSeconds and is woken by a publish', async () => {
      const goal = uniqueGoal('claim_wait');
      const started = Date.now();
      const pending = c.claimOutcome({ goal, waitSeconds: 10 });
      await sleep(300);
      const { id } = await c.publish(goal, { PAYLOAD_CANARY: 'wake' });
      const out = await pending;
      const took = Date.now() - started;
      expect(out.intent?.id).toBe(id);
      expect(took).toBeGreaterThanOrEqual(250);
      expect(took).toBeLessThan(5000);
    });

    it('answers null after waitSeconds when nothing comes', async () => {
      const goal = uniqueGoal('claim_wait_empty');
      const started = Date.now();
      expect(await c.claimOutcome({ goal, waitSeconds: 1 })).toEqual({
        intent: null,
        retryAfterSeconds: 1,
        command: null,
      });
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    });

    it('stops a long poll when its signal aborts', async () => {
      const goal = uniqueGoal('claim_abort');
      const ac = new AbortController();
      const started = Date.now();
      const pending = c.claimOutcome({ goal, waitSeconds: 20, signal: ac.signal });
      setTimeout(() => ac.abort(), 200);
      const err = await caught(pending);
      expect(err).toBeInstanceOf(NetworkError);
      expect(err.message).toMatch(/aborted/);
      expect(Date.now() - started).toBeLessThan(3000);
    });
  });

  describe('claim mutations', () => {
    it('extendClaim moves the lease to now + seconds', async () => {
      const goal = uniqueGoal('extend');
      const { id } = await c.publish(goal, {});
      const j = (await c.claim({ goal }))!;
      const before = nowS();
      const out = await c.extendClaim(id, j.claim_token, 600);
      expect(out).toMatchObject({ ok: true, id, extended_by: 600 });
      expect(out.claim_expires_at).toBeGreaterThanOrEqual(before + 599);
      expect(out.claim_expires_at).toBeLessThanOrEqual(nowS() + 601);
      expect((await c.getStatus(id)).claim_expires_at).toBeCloseTo(out.claim_expires_at, 1);
      const bad = await caught(c.extendClaim(id, j.claim_token, 5));
      expect(bad).toBeInstanceOf(ValidationError);
      expect(bad.status).toBe(400);
    });

    it('fulfill stores a JSON result', async () => {
      const goal = uniqueGoal('fulfil_json');
      const { id } = await c.publish(goal, {});
      const j = (await c.claim({ goal }))!;
      const result = { ok: 1, list: [true, null, 'x'], text: 'PAYLOAD_CANARY' };
      expect(await c.fulfill(id, j.claim_token, result)).toEqual({
        ok: true,
        id,
        status: 'fulfilled',
      });
      const r = await c.getResult(id);
      expect(r).toMatchObject({ id, status: 'fulfilled', result, result_type: 'json' });
      expect(r.completed_at).toBeGreaterThan(0);
    });

    it('fulfill stores a text result, and a JSON string stays JSON', async () => {
      const goal = uniqueGoal('fulfil_text');
      const a = await c.publish(goal, {});
      const ja = (await c.claim({ goal }))!;
      await c.fulfill(a.id, ja.claim_token, '{"not":"parsed"}', { resultType: 'text' });
      expect(await c.getResult(a.id)).toMatchObject({
        result: '{"not":"parsed"}',
        result_type: 'text',
      });
      const b = await c.publish(goal, {});
      const jb = (await c.claim({ goal }))!;
      await c.fulfill(b.id, jb.claim_token, 'plain');
      expect(await c.getResult(b.id)).toMatchObject({ result: 'plain', result_type: 'json' });
      const d = await c.publish(goal, {});
      const jd = (await c.claim({ goal }))!;
      await c.fulfill(d.id, jd.claim_token);
      expect(await c.getResult(d.id)).toMatchObject({ status: 'fulfilled', result: null });
    });

    it('fail returns the intent to open while attempts remain, with the error kept', async () => {
      const goal = uniqueGoal('fail_open');
      const { id } = await c.publish(goal, { PAYLOAD_CANARY: 1 }, { maxAttempts: 3 });
      const j = (await c.claim({ goal }))!;
      expect(await c.fail(id, j.claim_token, 'disk full')).toEqual({
        ok: true,
        id,
        status: 'open',
      });
      const s = await c.getStatus(id);
      expect(s).toMatchObject({ status: 'open', claim_attempts: 1, error: 'disk full' });
      expect(s.run_at).toBeGreaterThan(nowS()); // backoff
    });

    it('fail on the last attempt makes a dead letter', async () => {
      const goal = uniqueGoal('fail_dead');
      const { id } = await c.publish(goal, { PAYLOAD_CANARY: 2 }, { maxAttempts: 1 });
      const j = (await c.claim({ goal }))!;
      expect(await c.fail(id, j.claim_token, 'gave up')).toEqual({ ok: true, id, status: 'dead' });
      expect(await c.getStatus(id)).toMatchObject({ status: 'dead', error: 'gave up' });
      const dead = await c.admin.deadLetter(id);
      expect(dead).toMatchObject({
        intent_id: id,
        goal,
        attempts: 1,
        reason: 'gave up',
        payload: { PAYLOAD_CANARY: 2 },
        error: 'gave up',
      });
    });

    it('fail without an error message still fails the claim', async () => {
      const goal = uniqueGoal('fail_bare');
      const { id } = await c.publish(goal, {});
      const j = (await c.claim({ goal }))!;
      expect(await c.fail(id, j.claim_token)).toEqual({ ok: true, id, status: 'open' });
    });
  });

  describe('reads', () => {
    it('getResult waits with waitSeconds and is woken by a fulfil', async () => {
      const goal = uniqueGoal('result_wait');
      const { id } = await c.publish(goal, {});
      const j = (await c.claim({ goal }))!;
      const started = Date.now();
      const pending = c.getResult(id, { waitSeconds: 20 });
      await sleep(300);
      await c.fulfill(id, j.claim_token, { answer: 42 });
      const r = await pending;
      const took = Date.now() - started;
      expect(r).toMatchObject({ id, status: 'fulfilled', result: { answer: 42 } });
      expect(took).toBeGreaterThanOrEqual(250);
      expect(took).toBeLessThan(5000);
    });

    it('getResult without waiting answers the current state', async () => {
      const goal = uniqueGoal('result_now');
      const { id } = await c.publish(goal, {});
      expect(await c.getResult(id)).toMatchObject({
        id,
        status: 'open',
        result: null,
        completed_at: null,
      });
    });

    it('getStatus answers the status object without the result', async () => {
      const goal = uniqueGoal('status');
      const { id } = await c.publish(goal, {}, { priority: 5 });
      const s = await c.getStatus(id);
      expect(s).toMatchObject({
        id,
        goal,
        namespace: 'default',
        status: 'open',
        priority: 5,
        visibility: 'private',
        claim_attempts: 0,
        max_attempts: 3,
        claim_expires_at: null,
        worker_id: null,
      });
      for (const k of ['run_at', 'created_at', 'expires_at'] as const) {
        expect(typeof s[k]).toBe('number');
      }
      expect(s).not.toHaveProperty('result');
      expect(s).not.toHaveProperty('payload');
    });

    it('set and get keep JSON values as they are; an absent name is undefined', async () => {
      const name = uniqueGoal('kv');
      const value = { PAYLOAD_CANARY: [1, 2, { x: 'y' }] };
      await c.set(name, value);
      expect(await c.get(name)).toEqual(value);
      await c.set(name, 42, { ttl: 30 });
      expect(await c.get(name)).toBe(42);
      await c.set('node status/é+?#&', 'up');
      expect(await c.get('node status/é+?#&')).toBe('up');
      await c.set(`${name}-null`, null);
      expect(await c.get(`${name}-null`)).toBeNull();
      expect(await c.get(`${name}-absent`)).toBeUndefined();
    });

    it('set with a ttl lets the value expire', async () => {
      const name = uniqueGoal('kv_ttl');
      await c.set(name, 'short', { ttl: 1 });
      expect(await c.get(name)).toBe('short');
      await sleep(1300);
      expect(await c.get(name)).toBeUndefined();
    });

    it('health answers ok without a key', async () => {
      const h = await new IntentClient({ baseUrl: t.url }).health();
      expect(h).toMatchObject({ ok: true, version: expect.any(String) });
      expect(Math.abs(h.ts - nowS())).toBeLessThan(5);
    });
  });

  describe('admin', () => {
    it('generateKey, keys, revokeKey by apiKey and by keyId', async () => {
      const a = await c.admin.generateKey('owner-a');
      const b = await c.admin.generateKey('owner-b');
      expect(a).toEqual({
        api_key: expect.stringMatching(/^tk_/),
        owner: 'owner-a',
        key_id: expect.any(String),
      });
      const ka = new IntentClient({ baseUrl: t.url, apiKey: a.api_key });
      const kb = new IntentClient({ baseUrl: t.url, apiKey: b.api_key });
      await ka.publish(uniqueGoal('keyed'), {});
      await kb.set('x', 1);
      const keys = await c.admin.keys();
      const infoA = keys.find((k) => k.key_id === a.key_id);
      expect(infoA).toMatchObject({ owner: 'owner-a', prefix: a.api_key.slice(0, 8) });
      expect(infoA!.requests).toBeGreaterThanOrEqual(1);
      expect(keys.find((k) => k.key_id === b.key_id)).toMatchObject({ owner: 'owner-b' });
      expect(JSON.stringify(keys)).not.toContain(a.api_key);

      expect(await c.admin.revokeKey({ apiKey: a.api_key })).toMatchObject({ ok: true });
      expect(await c.admin.revokeKey({ keyId: b.key_id })).toMatchObject({ ok: true });
      const left = (await c.admin.keys()).map((k) => k.key_id);
      expect(left).not.toContain(a.key_id);
      expect(left).not.toContain(b.key_id);
      for (const k of [ka, kb]) {
        const err = await caught(k.getStatus('0'.repeat(32)));
        expect(err).toBeInstanceOf(AuthError);
        expect(err).toMatchObject({ status: 401, code: 'unauthorized' });
      }
      const unknown = await caught(c.admin.revokeKey({ keyId: b.key_id }));
      expect(unknown).toBeInstanceOf(NotFoundError);
    });

    it('setFlow, flow and removeFlow: a paused goal is held back until resumed', async () => {
      const goal = uniqueGoal('flow');
      const set = await c.admin.setFlow('default', goal, {
        paused: true,
        rate: { limit: 5, per: 1 },
      });
      expect(set).toMatchObject({
        goal,
        paused: true,
        max_in_flight: null,
        rate: { limit: 5, per: 1 },
      });
      expect((await c.admin.flow()).filter((f) => f.goal === goal)).toEqual([set]);
      const { id } = await c.publish(goal, {});
      expect(await c.claim({ goal })).toBeNull();
      expect(await c.getStatus(id)).toMatchObject({ status: 'open', held_by: 'paused' });
      await c.admin.setFlow('default', goal, { paused: false });
      expect((await c.claim({ goal }))?.id).toBe(id);
      const bad = await caught(c.admin.setFlow('default', goal, { max_in_flight: 0 }));
      expect(bad).toBeInstanceOf(ValidationError);
      expect(await c.admin.removeFlow('default', goal)).toEqual({ ok: true, removed: true });
      expect(await caught(c.admin.removeFlow('default', goal))).toBeInstanceOf(NotFoundError);
    });

    it('intent shows the full intent, payload and result included', async () => {
      const goal = uniqueGoal('admin_intent');
      const { id } = await c.publish(goal, { PAYLOAD_CANARY: 'admin' });
      const j = (await c.claim({ goal, workerId: 'w-admin' }))!;
      await c.fulfill(id, j.claim_token, 'done', { resultType: 'text' });
      expect(await c.admin.intent(id)).toMatchObject({
        id,
        goal,
        status: 'fulfilled',
        payload: { PAYLOAD_CANARY: 'admin' },
        result: 'done',
        result_type: 'text',
        worker_id: 'w-admin',
        claim_attempts: 1,
        dead_reason: null,
        publisher: expect.any(String),
      });
      expect(await caught(c.admin.intent('f'.repeat(32)))).toBeInstanceOf(NotFoundError);
    });

    it('cancel kills a live claim; retry reopens it', async () => {
      const goal = uniqueGoal('admin_cancel');
      const { id } = await c.publish(
        goal,
        { PAYLOAD_CANARY: 'cancel' },
        { namespace: 'ns-cancel' },
      );
      const j = (await c.claim({ goal, namespace: 'ns-cancel' }))!;
      expect(await c.admin.cancel(id)).toEqual({ ok: true, id, status: 'dead' });
      expect(await c.admin.intent(id)).toMatchObject({ status: 'dead', dead_reason: 'cancelled' });
      expect(await caught(c.fulfill(id, j.claim_token, 1))).toBeInstanceOf(LeaseLostError);
      // cancelling again changes nothing
      expect(await c.admin.cancel(id)).toEqual({ ok: true, id, status: 'dead' });

      const dead = await c.admin.deadLetters({ namespace: 'ns-cancel' });
      expect(dead.find((d) => d.intent_id === id)).toMatchObject({
        goal,
        namespace: 'ns-cancel',
        reason: 'cancelled',
        attempts: 1,
      });
      expect(await c.admin.deadLetter(id)).toMatchObject({
        intent_id: id,
        payload: { PAYLOAD_CANARY: 'cancel' },
        reason: 'cancelled',
      });

      expect(await c.admin.retry(id)).toMatchObject({ ok: true, id, status: 'open' });
      expect(await c.getStatus(id)).toMatchObject({ status: 'open', claim_attempts: 0 });
      expect(await caught(c.admin.deadLetter(id))).toBeInstanceOf(NotFoundError);
      const again = (await c.claim({ goal, namespace: 'ns-cancel' }))!;
      expect(again.id).toBe(id);
      expect(again.claim_token).not.toBe(j.claim_token);
      await c.fulfill(id, again.claim_token, 'second life');
      expect(await c.getResult(id)).toMatchObject({ status: 'fulfilled', result: 'second life' });
    });

    it('deadLetters lists the newest first and honours namespace and limit', async () => {
      const goal = uniqueGoal('admin_dead');
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const { id } = await c.publish(goal, {}, { namespace: 'ns-dead' });
        await c.admin.cancel(id);
        ids.push(id);
      }
      const other = await c.publish(goal, {}, { namespace: 'ns-dead-other' });
      await c.admin.cancel(other.id);
      const all = await c.admin.deadLetters({ namespace: 'ns-dead' });
      expect(all.map((d) => d.intent_id).sort()).toEqual([...ids].sort());
      const one = await c.admin.deadLetters({ namespace: 'ns-dead', limit: 1 });
      expect(one).toHaveLength(1);
      const everywhere = (await c.admin.deadLetters()).map((d) => d.intent_id);
      expect(everywhere).toEqual(expect.arrayContaining([...ids, other.id]));
    });

    it('discardDead deletes a dead letter; NotFoundError for one that is not dead', async () => {
      const goal = uniqueGoal('admin_discard');
      const { id } = await c.publish(goal, {});
      expect(await caught(c.admin.discardDead(id))).toBeInstanceOf(NotFoundError); // still open
      await c.admin.cancel(id);
      expect(await c.admin.discardDead(id)).toEqual({ ok: true, id, discarded: true });
      expect(await caught(c.admin.deadLetter(id))).toBeInstanceOf(NotFoundError);
      expect(await caught(c.admin.discardDead(id))).toBeInstanceOf(NotFoundError);
    });

    it('purge deletes one namespace', async () => {
      const goal = uniqueGoal('admin_purge');
      const a = await c.publish(goal, {}, { namespace: 'ns-purge' });
      const b = await c.publish(goal, {}, { namespace: 'ns-purge' });
      await c.admin.cancel(b.id);
      const keep = await c.publish(goal, {}, { namespace: 'ns-keep' });
      expect(await c.admin.purge({ namespace: 'ns-purge' })).toMatchObject({
        ok: true,
        intents_deleted: 2,
        dead_letters_deleted: 1,
      });
      expect(await caught(c.admin.intent(a.id))).toBeInstanceOf(NotFoundError);
      expect(await caught(c.getStatus(b.id))).toBeInstanceOf(NotFoundError);
      expect((await c.admin.intent(keep.id)).status).toBe('open');
    });

    it('cleanup answers the counts of every housekeeping pass', async () => {
      const out = await c.admin.cleanup();
      expect(out.ok).toBe(true);
      for (const k of CLEANUP_COUNTERS) {
        expect(typeof out[k]).toBe('number');
      }
    });
  });

  describe('typed errors', () => {
    it('AuthError for a wrong key', async () => {
      const bad = new IntentClient({ baseUrl: t.url, apiKey: `tk_${'0'.repeat(32)}` });
      for (const call of [
        () => bad.publish('x', {}),
        () => bad.claim(),
        () => bad.getStatus('0'.repeat(32)),
        () => bad.get('k'),
      ]) {
        const err = await caught(call());
        expect(err).toBeInstanceOf(AuthError);
        expect(err).toMatchObject({ status: 401, code: 'unauthorized' });
      }
    });

    it('AuthError for an admin call without a token and with a wrong one', async () => {
      const none = new IntentClient({ baseUrl: t.url, apiKey: MAIN_KEY });
      const missing = await caught(none.admin.keys());
      expect(missing).toBeInstanceOf(AuthError);
      const wrong = new IntentClient({
        baseUrl: t.url,
        apiKey: MAIN_KEY,
        adminToken: `${ADMIN_TOKEN}x`,
      });
      for (const call of [
        () => wrong.admin.keys(),
        () => wrong.admin.generateKey('nope'),
        () => wrong.admin.cleanup(),
      ]) {
        const err = await caught(call());
        expect(err).toBeInstanceOf(AuthError);
        expect(err).toMatchObject({ status: 401, code: 'unauthorized' });
      }
      // the main API key is never an admin credential
      const asKey = new IntentClient({ baseUrl: t.url, apiKey: MAIN_KEY, adminToken: MAIN_KEY });
      expect(await caught(asKey.admin.keys())).toBeInstanceOf(AuthError);
    });

    it('a client without an API key refuses key routes before sending anything', async () => {
      const saved = process.env.INTENT_API_KEY;
      delete process.env.INTENT_API_KEY;
      try {
        const { fetch: f, calls } = lossyFetch(() => false);
        const none = new IntentClient({ baseUrl: t.url, fetch: f });
        const err = await caught(none.getStatus('0'.repeat(32)));
        expect(err).toBeInstanceOf(AuthError);
        expect(err.code).toBe('no_api_key');
        expect(calls).toHaveLength(0);
      } finally {
        if (saved !== undefined) process.env.INTENT_API_KEY = saved;
      }
    });

    it('takes the API key from INTENT_API_KEY when none is given', async () => {
      const saved = process.env.INTENT_API_KEY;
      process.env.INTENT_API_KEY = MAIN_KEY;
      try {
        const fromEnv = new IntentClient({ baseUrl: t.url });
        const { id } = await fromEnv.publish(uniqueGoal('env_key'), {});
        expect(id).toMatch(HEX32);
      } finally {
        if (saved === undefined) delete process.env.INTENT_API_KEY;
        else process.env.INTENT_API_KEY = saved;
      }
    });

    it('LeaseLostError for fulfil, fail and extend with a stale token', async () => {
      const goal = uniqueGoal('stale');
      const { id } = await c.publish(goal, {});
      const first = (await c.claim({ goal }))!;
      await c.admin.retry(id); // the live claim's token dies
      const second = (await c.claim({ goal }))!;
      for (const call of [
        () => c.fulfill(id, first.claim_token, 'late'),
        () => c.fail(id, first.claim_token, 'late'),
        () => c.extendClaim(id, first.claim_token, 60),
      ]) {
        const err = await caught(call());
        expect(err).toBeInstanceOf(LeaseLostError);
        expect(err).toMatchObject({ status: 404, code: 'not_found' });
      }
      // the live token still works
      await c.fulfill(id, second.claim_token, 'on time');
      expect(await c.getResult(id)).toMatchObject({ status: 'fulfilled', result: 'on time' });
    });

    it('NotFoundError for an unknown id', async () => {
      for (const call of [() => c.getStatus('a'.repeat(32)), () => c.getResult('a'.repeat(32))]) {
        const err = await caught(call());
        expect(err).toBeInstanceOf(NotFoundError);
        expect(err).not.toBeInstanceOf(LeaseLostError);
        expect(err).toMatchObject({ status: 404, code: 'not_found' });
      }
    });

    it('ValidationError for an out-of-range option', async () => {
      const err = await caught(c.publish(uniqueGoal('bad'), {}, { priority: 5000 }));
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.status).toBe(400);
      expect(err.code).toMatch(/^invalid_/);
      const ns = await caught(c.publish('x', {}, { namespace: 'no spaces' }));
      expect(ns).toBeInstanceOf(ValidationError);
    });

    it('NetworkError when nothing listens, after the retries of a safe request', async () => {
      const port = await freePort();
      const dead = new IntentClient({
        baseUrl: `http://127.0.0.1:${port}`,
        apiKey: MAIN_KEY,
        retries: 0,
      });
      const err = await caught(dead.publish('x', {}));
      expect(err).toBeInstanceOf(NetworkError);
      expect(err).toMatchObject({ status: 0, code: 'network_error' });

      const { fetch: f, calls } = lossyFetch(() => false);
      const retrying = new IntentClient({
        baseUrl: `http://127.0.0.1:${port}`,
        apiKey: MAIN_KEY,
        retries: 2,
        fetch: f,
      });
      expect(await caught(retrying.getStatus('0'.repeat(32)))).toBeInstanceOf(NetworkError);
      expect(calls).toHaveLength(3);
    });

    describe('against a server that never answers', () => {
      let silent: Server;
      let url: string;
      beforeAll(async () => {
        silent = createServer(() => {
          /* never answers */
        });
        await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
        const addr = silent.address();
        url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
      });
      afterAll(async () => {
        silent.closeAllConnections();
        await new Promise((r) => silent.close(r));
      });

      it('NetworkError once timeoutMs passes', async () => {
        const slow = new IntentClient({
          baseUrl: url,
          apiKey: MAIN_KEY,
          timeoutMs: 300,
          retries: 0,
        });
        const started = Date.now();
        const err = await caught(slow.getStatus('0'.repeat(32)));
        const took = Date.now() - started;
        expect(err).toBeInstanceOf(NetworkError);
        expect(err.message).toMatch(/timed out/);
        expect(took).toBeGreaterThanOrEqual(250);
        expect(took).toBeLessThan(3000);
      });

      it('a long poll gets its wait on top of timeoutMs', async () => {
        const slow = new IntentClient({
          baseUrl: url,
          apiKey: MAIN_KEY,
          timeoutMs: 200,
          retries: 0,
        });
        const started = Date.now();
        const err = await caught(slow.claimOutcome({ waitSeconds: 1 }));
        expect(err).toBeInstanceOf(NetworkError);
        expect(Date.now() - started).toBeGreaterThanOrEqual(1100);
      });
    });
  });

  describe('retries', () => {
    it('a publish whose answer was lost is retried with the same Idempotency-Key, publishing once', async () => {
      const goal = uniqueGoal('lossy_publish');
      const { fetch: f, calls } = lossyFetch((call, n) => n === 1 && call.url.endsWith('/intent'));
      const lossy = clientOf(t, { fetch: f });
      const out = await lossy.publish(goal, { PAYLOAD_CANARY: 'retry' });
      expect(calls).toHaveLength(2);
      const keys = calls.map((x) => x.headers.get('idempotency-key'));
      expect(keys[0]).toBeTruthy();
      expect(keys[1]).toBe(keys[0]);
      // each attempt is signed afresh (a reused nonce would be a replay)
      expect(calls[1]!.headers.get('x-nonce')).not.toBe(calls[0]!.headers.get('x-nonce'));
      const listed = await t.api('GET', `/admin/intents?goal=${goal}`, { admin: true });
      expect(listed.status).toBe(200);
      expect(listed.json.items.map((i: { id: string }) => i.id)).toEqual([out.id]);
    });

    it('a claim is never retried: the lost answer is a NetworkError after one attempt', async () => {
      const goal = uniqueGoal('lossy_claim');
      const { id } = await c.publish(goal, {});
      const { fetch: f, calls } = lossyFetch(() => true);
      const lossy = clientOf(t, { fetch: f, retries: 5 });
      const err = await caught(lossy.claim({ goal }));
      expect(err).toBeInstanceOf(NetworkError);
      expect(calls).toHaveLength(1);
      // the bus did hand it out: that lease is simply lost
      expect(await c.getStatus(id)).toMatchObject({ status: 'claimed', claim_attempts: 1 });
    });

    it('fulfil, fail and extend are never retried either', async () => {
      const goal = uniqueGoal('lossy_mutations');
      const { id } = await c.publish(goal, {});
      const j = (await c.claim({ goal }))!;
      const { fetch: f, calls } = lossyFetch(() => true);
      const lossy = clientOf(t, { fetch: f, retries: 5 });
      expect(await caught(lossy.extendClaim(id, j.claim_token, 60))).toBeInstanceOf(NetworkError);
      expect(await caught(lossy.fulfill(id, j.claim_token, 1))).toBeInstanceOf(NetworkError);
      expect(calls).toHaveLength(2);
    });

    it('reads and KV writes are retried after a lost answer', async () => {
      const goal = uniqueGoal('lossy_reads');
      const { id } = await c.publish(goal, {});
      let lost = 0;
      const { fetch: f, calls } = lossyFetch(() => lost++ % 2 === 0);
      const lossy = clientOf(t, { fetch: f });
      expect((await lossy.getStatus(id)).id).toBe(id);
      expect((await lossy.getResult(id)).id).toBe(id);
      await lossy.set(`${goal}-k`, 'v');
      expect(await lossy.get(`${goal}-k`)).toBe('v');
      expect(calls).toHaveLength(8);
    });
  });
});

describe('signed requests on a bus that requires signatures', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus({
      env: { BUS_REQUIRE_SIGNATURES: 'true', BUS_RATE_LIMIT_PER_MINUTE: '100000' },
    });
  });
  afterAll(async () => closeBus(t));

  it('every client method works signed (main key)', async () => {
    const { fetch: f, calls } = lossyFetch(() => false);
    const c = clientOf(t, { fetch: f });
    await exerciseEveryMethod(c);
    const keyed = calls.filter((x) => x.headers.has('x-api-key'));
    expect(keyed.length).toBeGreaterThanOrEqual(20);
    for (const x of keyed) {
      expect(x.headers.get('x-timestamp')).toMatch(/^\d+$/);
      expect(x.headers.get('x-nonce')).toMatch(HEX32);
      expect(x.headers.get('x-signature')).toMatch(/^[0-9a-f]{64}$/);
    }
    expect(new Set(keyed.map((x) => x.headers.get('x-nonce'))).size).toBe(keyed.length);
    // admin and health calls carry no key and no signature
    for (const x of calls.filter((y) => !y.headers.has('x-api-key'))) {
      expect(x.headers.has('x-signature')).toBe(false);
    }
  });

  it('every client method works signed (tester key)', async () => {
    const main = clientOf(t);
    const k = await main.admin.generateKey('signer');
    const c = new IntentClient({ baseUrl: t.url, apiKey: k.api_key, adminToken: ADMIN_TOKEN });
    await exerciseEveryMethod(c, k.key_id);
  });

  it('with sign: false the bus answers AuthError 401 signature_required', async () => {
    const goal = uniqueGoal('unsigned');
    const signed = clientOf(t);
    const { id } = await signed.publish(goal, {});
    const c = clientOf(t, { sign: false });
    const calls: Array<() => Promise<unknown>> = [
      () => c.publish(goal, {}),
      () => c.claim({ goal }),
      () => c.claim({ goal, waitSeconds: 1 }),
      () => c.extendClaim(id, '0'.repeat(32), 60),
      () => c.fulfill(id, '0'.repeat(32), 1),
      () => c.fail(id, '0'.repeat(32), 'x'),
      () => c.getResult(id),
      () => c.getStatus(id),
      () => c.set('k', 1),
      () => c.get('k'),
    ];
    for (const call of calls) {
      const err = await caught(call());
      expect(err).toBeInstanceOf(AuthError);
      expect(err).toMatchObject({ status: 401, code: 'signature_required' });
    }
    // health and the admin API need no signature
    expect((await c.health()).ok).toBe(true);
    expect((await c.admin.intent(id)).status).toBe('open');
  });
});

describe('on a bus of its own', () => {
  it('RateLimitError with retryAfterSeconds for a tester key over its limit', async () => {
    const t = await startTestBus({ env: { BUS_RATE_LIMIT_PER_MINUTE: '2' } });
    try {
      const key = await t.newKey('limited');
      const c = new IntentClient({ baseUrl: t.url, apiKey: key.api_key, retries: 0 });
      await c.publish('limited', { PAYLOAD_CANARY: 1 });
      await c.get('anything');
      const started = Date.now();
      const err = await caught(c.publish('limited', { PAYLOAD_CANARY: 2 }));
      expect(Date.now() - started).toBeLessThan(2000);
      expect(err).toBeInstanceOf(RateLimitError);
      expect(err).toMatchObject({ status: 429, code: 'rate_limited' });
      const after = (err as RateLimitError).retryAfterSeconds;
      expect(after).toBeGreaterThan(0);
      expect(after).toBeLessThanOrEqual(60);
      // the main key is exempt
      const main = clientOf(t, { retries: 0 });
      for (let i = 0; i < 4; i++) await main.get('free');
    } finally {
      await closeBus(t);
    }
  });

  it('QuotaError (a RateLimitError) for a tester key at its open-intents limit, never retried', async () => {
    const t = await startTestBus({ env: { BUS_MAX_OPEN_PER_KEY: '1' } });
    try {
      const key = await t.newKey('quota');
      const { fetch: f, calls } = lossyFetch(() => false);
      const c = new IntentClient({ baseUrl: t.url, apiKey: key.api_key, retries: 3, fetch: f });
      await c.publish('quota', { PAYLOAD_CANARY: 1 });
      const before = calls.length;
      const err = await caught(c.publish('quota', { PAYLOAD_CANARY: 2 }));
      expect(err).toBeInstanceOf(QuotaError);
      expect(err).toBeInstanceOf(RateLimitError);
      expect(err).toMatchObject({ status: 429, code: 'limit_exceeded' });
      expect(calls.length - before).toBe(1);
    } finally {
      await closeBus(t);
    }
  });

  it('ServerError (503 maintenance): publish retried with its key, claim sent once', async () => {
    const t = await startTestBus({ env: { BUS_MAINTENANCE_MODE: 'true' } });
    try {
      const { fetch: f, calls } = lossyFetch(() => false);
      const c = clientOf(t, { fetch: f, retries: 1 });
      const err = await caught(c.publish('maint', { PAYLOAD_CANARY: 'maint' }));
      expect(err).toBeInstanceOf(ServerError);
      expect(err).toMatchObject({ status: 503, code: 'maintenance' });
      expect(calls).toHaveLength(2);
      expect(calls[1]!.headers.get('idempotency-key')).toBe(
        calls[0]!.headers.get('idempotency-key'),
      );
      calls.length = 0;
      expect(await caught(c.claim({ goal: 'maint' }))).toBeInstanceOf(ServerError);
      expect(calls).toHaveLength(1);
      // health and admin still answer in maintenance
      expect((await c.health()).ok).toBe(true);
      expect(Array.isArray(await c.admin.keys())).toBe(true);
    } finally {
      await closeBus(t);
    }
  });

  it('health answers ok: false with a reason while the store is unusable', async () => {
    const t = await startTestBus();
    try {
      const c = clientOf(t);
      expect((await c.health()).ok).toBe(true);
      await t.bus.store.close();
      const started = Date.now();
      const h = await c.health();
      expect(h).toMatchObject({
        ok: false,
        reason: expect.any(String),
        version: expect.any(String),
      });
      expect(Date.now() - started).toBeLessThan(1000);
    } finally {
      await closeBus(t);
    }
  });

  it('purge without a namespace deletes every intent and dead letter', async () => {
    const t = await startTestBus();
    try {
      const c = clientOf(t);
      const a = await c.publish('p', {}, { namespace: 'one' });
      const b = await c.publish('p', {}, { namespace: 'two' });
      await c.admin.cancel(b.id);
      expect(await c.admin.purge()).toMatchObject({
        ok: true,
        intents_deleted: 2,
        dead_letters_deleted: 1,
      });
      expect(await caught(c.getStatus(a.id))).toBeInstanceOf(NotFoundError);
      expect(await c.admin.deadLetters()).toEqual([]);
    } finally {
      await closeBus(t);
    }
  });
});

/** Publish, claim (every query option), extend, fail, fulfil, read, KV and health, signed. */
async function exerciseEveryMethod(c: IntentClient, keyId?: string): Promise<void> {
  const goal = uniqueGoal('signed goal/é,+&=');
  const ns = 'signed.ns-1';
  const pub = await c.publish(
    goal,
    { PAYLOAD_CANARY: 'signed', uni: '✓ ünïcödé' },
    {
      namespace: ns,
      visibility: 'public',
      priority: 900,
      delay: 0,
      maxAttempts: 2,
      backoffBase: 1,
      targetWorker: 'signed:w-1',
      requiredCapability: 'cap.a',
      ttl: 600,
      idempotencyKey: `signed-${newNonce()}`,
    },
  );
  expect(
    await c.claim({ goal, namespace: ns, workerId: 'someone-else', capabilities: ['cap.a'] }),
  ).toBeNull();
  const j = await c.claim({
    goal,
    namespace: ns,
    publisher: keyId ?? undefined,
    workerId: 'signed:w-1',
    capabilities: ['cap.b', 'cap.a'],
    waitSeconds: 2,
  });
  expect(j?.id).toBe(pub.id);
  expect((await c.extendClaim(pub.id, j!.claim_token, 30)).ok).toBe(true);
  expect((await c.fail(pub.id, j!.claim_token, 'once')).status).toBe('open');
  await c.admin.retry(pub.id);
  const again = (
    await c.claimOutcome({
      goal,
      namespace: ns,
      workerId: 'signed:w-1',
      capabilities: ['cap.a'],
      waitSeconds: 2,
    })
  ).intent!;
  expect(again.id).toBe(pub.id);
  const pending = c.getResult(pub.id, { waitSeconds: 5 });
  await c.fulfill(pub.id, again.claim_token, { done: '✓' });
  expect(await pending).toMatchObject({ status: 'fulfilled', result: { done: '✓' } });
  expect((await c.getStatus(pub.id)).status).toBe('fulfilled');

  const t2 = await c.publish(`${goal}-text`, 'just a string');
  const j2 = (await c.claim({ goal: `${goal}-text` }))!;
  await c.fulfill(t2.id, j2.claim_token, 'text ✓', { resultType: 'text' });
  expect(await c.getResult(t2.id)).toMatchObject({ result: 'text ✓', result_type: 'text' });

  for (const name of ['plain', 'node status', 'a/b', 'ü+?&=#%', 'x'.repeat(200)]) {
    await c.set(name, { name }, { ttl: 60 });
    expect(await c.get(name)).toEqual({ name });
  }
  expect(await c.get('never-set-signed')).toBeUndefined();
  expect((await c.health()).ok).toBe(true);
}

describe('the signer', () => {
  it.each(VECTORS.map((v) => [`${v.nonce} ${v.method} ${v.raw_path}`, v] as const))(
    'matches vector %s',
    async (_name, v) => {
      const target = v.raw_path + (v.raw_query ? `?${v.raw_query}` : '');
      const sig = await signature(
        v.api_key,
        v.method,
        target,
        v.timestamp,
        v.nonce,
        new TextEncoder().encode(v.body_utf8),
      );
      expect(sig).toBe(v.signature);
    },
  );

  it('has vectors to check', () => {
    expect(VECTORS.length).toBeGreaterThanOrEqual(9);
  });

  it('signedHeaders carries an integer timestamp, a fresh 32-hex nonce and the signature', async () => {
    const body = new TextEncoder().encode('{"a":1}');
    const h1 = await signedHeaders('key', 'POST', '/intent', body, 1764216000.9);
    const h2 = await signedHeaders('key', 'POST', '/intent', body, 1764216000.9);
    expect(h1['X-Timestamp']).toBe('1764216000');
    expect(h1['X-Nonce']).toMatch(HEX32);
    expect(h2['X-Nonce']).not.toBe(h1['X-Nonce']);
    expect(h1['X-Signature']).toBe(
      await signature('key', 'POST', '/intent', '1764216000', h1['X-Nonce']!, body),
    );
  });
});

describe('resolveApiKey (Node)', () => {
  let home: string;
  let saved: string | undefined;
  beforeAll(() => {
    saved = process.env.INTENT_API_KEY;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.INTENT_API_KEY;
    else process.env.INTENT_API_KEY = saved;
    if (home) rmSync(home, { recursive: true, force: true });
  });

  const freshHome = (): string => (home = mkdtempSync(join(tmpdir(), 'sdk-home-')));

  it('prefers the option, then INTENT_API_KEY, then ~/.apikey', () => {
    const h = freshHome();
    writeFileSync(join(h, '.apikey'), 'tk_from_file\n', { mode: 0o600 });
    chmodSync(join(h, '.apikey'), 0o600);
    process.env.INTENT_API_KEY = 'tk_from_env';
    expect(resolveApiKey('tk_option', h)).toEqual({ apiKey: 'tk_option', source: 'option' });
    expect(resolveApiKey(undefined, h)).toEqual({
      apiKey: 'tk_from_env',
      source: 'INTENT_API_KEY',
    });
    delete process.env.INTENT_API_KEY;
    expect(resolveApiKey(undefined, h)).toEqual({ apiKey: 'tk_from_file', source: '~/.apikey' });
  });

  it('warns when ~/.apikey can be read by others, and not at 0600', () => {
    delete process.env.INTENT_API_KEY;
    const h = freshHome();
    const file = join(h, '.apikey');
    writeFileSync(file, '  tk_file_key  \n');
    chmodSync(file, 0o644);
    const open = resolveApiKey(undefined, h);
    expect(open).toMatchObject({ apiKey: 'tk_file_key', source: '~/.apikey' });
    expect(open?.warning).toContain('chmod 600');
    expect(open?.warning).toContain('644');
    chmodSync(file, 0o600);
    const closed = resolveApiKey(undefined, h);
    expect(closed).toEqual({ apiKey: 'tk_file_key', source: '~/.apikey' });
    expect(closed).not.toHaveProperty('warning');
  });

  it('answers null when there is no key anywhere', () => {
    delete process.env.INTENT_API_KEY;
    const h = freshHome();
    expect(resolveApiKey(undefined, h)).toBeNull();
    writeFileSync(join(h, '.apikey'), '\n', { mode: 0o600 });
    expect(resolveApiKey(undefined, h)).toBeNull();
  });
});

describe('resolveAdminToken and the secrets of a bus on this machine (Node)', () => {
  const names = ['INTENT_ADMIN_TOKEN', 'BUS_ADMIN_SECRET', 'BUS_DB_PATH'] as const;
  const saved = Object.fromEntries(names.map((n) => [n, process.env[n]]));
  const dirs: string[] = [];
  const fresh = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'sdk-admin-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    for (const n of names) {
      if (saved[n] === undefined) delete process.env[n];
      else process.env[n] = saved[n];
    }
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('prefers the option, then INTENT_ADMIN_TOKEN, BUS_ADMIN_SECRET, ~/.admintoken', () => {
    const h = fresh();
    const file = join(h, '.admintoken');
    writeFileSync(file, 'from_file\n');
    chmodSync(file, 0o600);
    process.env.INTENT_ADMIN_TOKEN = 'from_intent_env';
    process.env.BUS_ADMIN_SECRET = 'from_bus_env';
    expect(resolveAdminToken('opt', h)).toEqual({ adminToken: 'opt', source: 'option' });
    expect(resolveAdminToken(undefined, h)).toEqual({
      adminToken: 'from_intent_env',
      source: 'INTENT_ADMIN_TOKEN',
    });
    delete process.env.INTENT_ADMIN_TOKEN;
    expect(resolveAdminToken(undefined, h)?.source).toBe('BUS_ADMIN_SECRET');
    delete process.env.BUS_ADMIN_SECRET;
    expect(resolveAdminToken(undefined, h)).toEqual({
      adminToken: 'from_file',
      source: '~/.admintoken',
    });
    chmodSync(file, 0o644);
    expect(resolveAdminToken(undefined, h)?.warning).toMatch(/mode 644.*chmod 600/);
    rmSync(file);
    expect(resolveAdminToken(undefined, h)).toBeNull();
  });

  it('isLoopbackUrl: localhost, 127.0.0.0/8 and [::1] only', () => {
    for (const u of [
      'http://localhost:8080',
      'https://127.0.0.1',
      'http://127.9.0.3:1',
      'http://[::1]:8080',
    ])
      expect(isLoopbackUrl(u), u).toBe(true);
    for (const u of [
      'http://10.0.0.2:8080',
      'http://bus.example',
      'http://127.0.0.1.nip.io',
      'nonsense',
    ])
      expect(isLoopbackUrl(u), u).toBe(false);
  });

  it('localBusSecret reads secrets.json beside BUS_DB_PATH (or the given database)', () => {
    const d = fresh();
    writeFileSync(
      join(d, 'secrets.json'),
      JSON.stringify({ BUS_SECRET: 'ib_main', BUS_ADMIN_SECRET: '' }),
    );
    process.env.BUS_DB_PATH = join(d, 'bus.db');
    expect(localSecretsFile()).toBe(join(d, 'secrets.json'));
    expect(localBusSecret('BUS_SECRET')).toBe('ib_main');
    expect(localBusSecret('BUS_ADMIN_SECRET')).toBeNull(); // empty is none
    delete process.env.BUS_DB_PATH;
    expect(localSecretsFile()).toBe(join(process.cwd(), 'intent-bus-data', 'secrets.json'));
    expect(localBusSecret('BUS_SECRET', localSecretsFile(join(fresh(), 'bus.db')))).toBeNull();
  });
});
