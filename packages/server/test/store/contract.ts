/**
 * The Store contract: one suite, run against every backend (sqlite.test.ts,
 * postgres.test.ts). Each test gets a fresh store from the factory.
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { matchesClaim } from '../../src/core/routing.js';
import type { NewIntent } from '../../src/core/validate.js';
import type { ScheduleDefinition } from '../../src/core/schedule.js';
import type {
  AlertMaker,
  ClaimRequest,
  IntentRow,
  RunMaker,
  Store,
  WorkerSave,
} from '../../src/store/store.js';

const T0 = 1_800_000_000_000;
const id = (): string => randomBytes(16).toString('hex');

export function intent(over: Partial<NewIntent> = {}): NewIntent {
  return {
    id: id(),
    namespace: 'default',
    goal: 'g',
    payload: '{"n":1}',
    publisher: 'kid_a',
    visibility: 'private',
    priority: 100,
    runAt: T0,
    createdAt: T0,
    expiresAt: T0 + 86_400_000,
    maxAttempts: 3,
    backoffBase: 5,
    ttl: 86_400,
    targetWorker: null,
    requiredCapability: null,
    schedule: null,
    scheduledFor: null,
    ...over,
  };
}

/** A claim by kid_a at T0, nothing filtered; `over` changes any field. */
export const claimBy = (over: Partial<ClaimRequest> = {}) => ({
  keyId: 'kid_a',
  namespace: 'default',
  goal: null,
  publisher: null,
  workerId: null,
  capabilities: [] as string[],
  now: T0,
  token: id(),
  leaseMs: 60_000,
  ...over,
});

async function put(store: Store, i: NewIntent): Promise<IntentRow> {
  const out = await store.intentPublish(i, null, null);
  if (out.kind !== 'created') throw new Error('not created');
  return out.row;
}

/** A schedule of kid_a every `every` seconds, made at T0 unless told. */
export const schedule = (over: Partial<ScheduleDefinition> = {}): ScheduleDefinition => ({
  owner: 'kid_a',
  name: 's1',
  cron: null,
  every: 60,
  timezone: 'UTC',
  intent: '{"goal":"tick","payload":{"n":12345678901234567890}}',
  overlap: 'allow',
  catchUp: 'all',
  paused: null,
  deadline: null,
  onFailure: null,
  ...over,
});

/** A run as ops/schedules.ts makes one: the schedule's owner, name and tick. */
const runOf: RunMaker = (s, scheduledFor, now) =>
  intent({
    goal: 'tick',
    publisher: s.owner,
    runAt: now,
    createdAt: now,
    expiresAt: now + 86_400_000,
    schedule: s.name,
    scheduledFor,
  });

/** An alert as ops/schedules.ts makes one (its payload names the run and the reason). */
const alertOf: AlertMaker = (s, run, reason, now) =>
  intent({
    goal: 'alert',
    publisher: s.owner,
    payload: JSON.stringify({ run: run.id, reason }),
    runAt: now,
    createdAt: now,
    expiresAt: now + 86_400_000,
  });

/** The order of PROTOCOL.md §4, as a reference for the store's claim statement. */
function referenceOrder(a: IntentRow, b: IntentRow): number {
  return (
    b.priority - a.priority ||
    a.runAt - b.runAt ||
    a.claimAttempts - b.claimAttempts ||
    a.createdAt - b.createdAt ||
    (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  );
}

export function storeContract(name: string, open: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    const stores: Store[] = [];
    const fresh = async (): Promise<Store> => {
      const s = await open();
      await s.migrate();
      stores.push(s);
      return s;
    };
    afterEach(async () => {
      for (const s of stores.splice(0)) await s.close();
    });

    it('publishes and reads back every field', async () => {
      const s = await fresh();
      const i = intent({ targetWorker: 'w1', requiredCapability: 'gpu', visibility: 'public' });
      const row = await put(s, i);
      expect(row).toMatchObject({ ...i, status: 'open', claimAttempts: 0, claimToken: null });
      expect(await s.intentGet(i.id)).toEqual(row);
      expect(await s.intentGet(id())).toBeNull();
    });

    it('claims once, then the token alone extends, fulfils or fails', async () => {
      const s = await fresh();
      const i = await put(s, intent());
      const c = await s.intentClaim(claimBy({ token: 't1', workerId: 'w' }));
      expect(c).toMatchObject({ id: i.id, status: 'claimed', claimAttempts: 1, claimToken: 't1' });
      expect(c?.claimExpiresAt).toBe(T0 + 60_000);
      expect(await s.intentClaim(claimBy())).toBeNull();
      const ref = { id: i.id, token: 't1', keyId: 'kid_a', now: T0 + 1000 };
      expect(await s.intentExtend({ ...ref, token: 'wrong' }, T0 + 5000)).toBeNull();
      expect(await s.intentExtend({ ...ref, keyId: 'kid_b' }, T0 + 5000)).toBeNull();
      expect((await s.intentExtend(ref, T0 + 120_000))?.claimExpiresAt).toBe(T0 + 120_000);
      // After the lease ends the token is dead.
      expect(await s.intentFulfill({ ...ref, now: T0 + 120_000 }, '1', 'json')).toBeNull();
      const done = await s.intentFulfill(ref, '"ok"', 'text');
      expect(done).toMatchObject({
        status: 'fulfilled',
        result: '"ok"',
        resultType: 'text',
        completedAt: T0 + 1000,
      });
      expect(await s.intentFulfill(ref, '1', 'json')).toBeNull();
    });

    it('fails back to open with backoff, then dead after the last attempt', async () => {
      const s = await fresh();
      const i = await put(s, intent({ maxAttempts: 2, backoffBase: 1 }));
      await s.intentClaim(claimBy({ token: 't1' }));
      const r1 = await s.intentFail(
        { id: i.id, token: 't1', keyId: 'kid_a', now: T0 },
        'boom',
        () => 0,
      );
      expect(r1).toMatchObject({
        status: 'open',
        runAt: T0 + 2000,
        error: 'boom',
        claimToken: null,
      });
      expect(await s.intentClaim(claimBy({ now: T0 + 1999 }))).toBeNull();
      await s.intentClaim(claimBy({ now: T0 + 2000, token: 't2' }));
      const r2 = await s.intentFail(
        { id: i.id, token: 't2', keyId: 'kid_a', now: T0 + 3000 },
        'again',
        () => 0,
      );
      expect(r2).toMatchObject({ status: 'dead', deadReason: 'again', completedAt: T0 + 3000 });
      expect((await s.deadList(10, null)).map((r) => r.id)).toEqual([i.id]);
    });

    it('sweeps expired leases and expires open intents past their TTL', async () => {
      const s = await fresh();
      const a = await put(s, intent({ maxAttempts: 1 }));
      const b = await put(s, intent({ createdAt: T0 + 1 }));
      const c = await put(s, intent({ expiresAt: T0 + 10, createdAt: T0 + 2 }));
      await s.intentClaim(claimBy({ token: 'ta' }));
      await s.intentClaim(claimBy({ token: 'tb' }));
      expect(await s.leasesSweep(T0 + 59_999, () => 0, 10)).toEqual([]);
      const swept = await s.leasesSweep(T0 + 60_000, () => 0, 10);
      expect(swept.find((r) => r.id === a.id)).toMatchObject({
        status: 'dead',
        deadReason: 'lease expired',
      });
      expect(swept.find((r) => r.id === b.id)).toMatchObject({
        status: 'open',
        runAt: T0 + 60_000 + 10_000,
      });
      const expired = await s.intentsExpire(T0 + 60_000, 10);
      expect(expired.map((r) => r.id)).toEqual([c.id]);
      expect(expired[0]).toMatchObject({ status: 'dead', deadReason: 'expired' });
    });

    it('cancels and retries', async () => {
      const s = await fresh();
      const i = await put(s, intent({ ttl: 10 }));
      await s.intentClaim(claimBy({ token: 't1' }));
      expect(await s.intentCancel(i.id, T0 + 5)).toMatchObject({
        status: 'dead',
        deadReason: 'cancelled',
      });
      expect(await s.intentCancel(i.id, T0 + 6)).toMatchObject({
        status: 'dead',
        completedAt: T0 + 5,
      });
      const r = await s.intentRetry(i.id, T0 + 100);
      expect(r).toMatchObject({
        status: 'open',
        claimAttempts: 0,
        runAt: T0 + 100,
        expiresAt: T0 + 100 + 10_000,
        deadReason: null,
        error: null,
        claimToken: null,
      });
      expect(await s.intentCancel(id(), T0)).toBeNull();
      expect(await s.intentRetry(id(), T0)).toBeNull();
    });

    it('discards a dead intent, and only a dead one', async () => {
      const s = await fresh();
      const dead = await put(s, intent({ goal: 'dead' }));
      const open = await put(s, intent({ goal: 'open' }));
      const claimed = await put(s, intent({ goal: 'claimed' }));
      const fulfilled = await put(s, intent({ goal: 'fulfilled' }));
      await s.intentCancel(dead.id, T0);
      await s.intentClaim(claimBy({ goal: 'claimed', token: 'tc' }));
      await s.intentClaim(claimBy({ goal: 'fulfilled', token: 'tf' }));
      const ref = { id: fulfilled.id, token: 'tf', keyId: 'kid_a', now: T0 };
      await s.intentFulfill(ref, null, 'json');

      expect(await s.deadDiscard(dead.id)).toBe(true);
      expect(await s.intentGet(dead.id)).toBeNull();
      expect(await s.deadList(10, null)).toEqual([]);
      expect(await s.deadDiscard(dead.id)).toBe(false);
      expect(await s.deadDiscard(id())).toBe(false);
      // Nothing but a dead intent is discarded: the others stay as they were.
      for (const r of [open, claimed, fulfilled]) {
        expect(await s.deadDiscard(r.id)).toBe(false);
        expect((await s.intentGet(r.id))?.status).toBe(r.goal);
      }
    });

    it('deletes finished intents past retention and purges by namespace', async () => {
      const s = await fresh();
      const a = await put(s, intent());
      await put(s, intent({ namespace: 'other' }));
      await s.intentClaim(claimBy({ token: 't' }));
      await s.intentFulfill({ id: a.id, token: 't', keyId: 'kid_a', now: T0 }, null, 'json');
      expect(await s.intentsDeleteFinished(T0)).toEqual({ fulfilled: 0, dead: 0 });
      expect(await s.intentsDeleteFinished(T0 + 1)).toEqual({ fulfilled: 1, dead: 0 });
      expect(await s.intentsPurge('other')).toEqual({ intents: 1, dead: 0 });
      expect(await s.intentsPurge(null)).toEqual({ intents: 0, dead: 0 });
    });

    it('keeps idempotency per key and body', async () => {
      const s = await fresh();
      const idem = { keyId: 'kid_a', key: 'k1', bodyHash: 'h1', notBefore: T0 - 1 };
      const first = await s.intentPublish(intent(), idem, null);
      expect(first.kind).toBe('created');
      const again = await s.intentPublish(intent(), idem, null);
      expect(again.kind).toBe('replay');
      if (again.kind === 'replay' && first.kind === 'created') {
        expect(JSON.parse(again.body).id).toBe(first.row.id);
        expect(again.status).toBe(201);
      }
      expect((await s.intentPublish(intent(), { ...idem, bodyHash: 'h2' }, null)).kind).toBe(
        'conflict',
      );
      expect((await s.intentPublish(intent(), { ...idem, keyId: 'kid_b' }, null)).kind).toBe(
        'created',
      );
      expect((await s.intentPublish(intent(), { ...idem, notBefore: T0 + 1 }, null)).kind).toBe(
        'created',
      );
      expect(await s.idempotencyDeleteBefore(T0)).toBe(0);
      expect(await s.idempotencyDeleteBefore(T0 + 1)).toBe(2);
    });

    it('batches [ext]: publishes many with keys and a quota, claims many in §4 order, ends many', async () => {
      const s = await fresh();
      const idem = (key: string, bodyHash = 'h') => ({
        keyId: 'kid_a',
        key,
        bodyHash,
        notBefore: T0 - 1000,
      });
      const items = [
        { intent: intent({ priority: 1 }), idem: idem('k1') },
        { intent: intent({ priority: 3 }), idem: null },
        { intent: intent(), idem: idem('k1') },
        { intent: intent(), idem: idem('k1', 'other') },
        { intent: intent({ priority: 2 }), idem: idem('k2') },
        { intent: intent(), idem: null },
      ];
      const out = await s.intentPublishMany(items, 3);
      expect(out.map((o) => o.kind)).toEqual([
        'created',
        'created',
        'replay',
        'conflict',
        'created',
        'limit_exceeded',
      ]);
      expect(out[5]).toEqual({ kind: 'limit_exceeded', open: 3 });
      // The same again: every key replays, the quota refuses the rest.
      const again = await s.intentPublishMany(items, 3);
      expect(again.map((o) => o.kind)).toEqual([
        'replay',
        'limit_exceeded',
        'replay',
        'conflict',
        'replay',
        'limit_exceeded',
      ]);
      const rows = await s.intentClaimMany(claimBy(), ['t1', 't2']);
      expect(rows.map((r) => [r.priority, r.claimToken])).toEqual([
        [3, 't1'],
        [2, 't2'],
      ]);
      expect((await s.intentClaimMany(claimBy(), ['t3', 't4'])).map((r) => r.priority)).toEqual([
        1,
      ]);
      expect(await s.intentClaimMany(claimBy(), ['t5'])).toEqual([]);
      const ref = (r: IntentRow, token = r.claimToken!) => ({
        id: r.id,
        token,
        keyId: 'kid_a',
        now: T0 + 1,
      });
      const ended = await s.intentFulfillMany([
        { ref: ref(rows[1]!), result: '1', resultType: 'json' },
        { ref: ref(rows[0]!, 'stale'), result: null, resultType: 'json' },
        { ref: ref(rows[1]!), result: '2', resultType: 'json' },
      ]);
      expect(ended.map((r) => r?.status ?? null)).toEqual(['fulfilled', null, null]);
      expect(ended[0]?.result).toBe('1');
      const failed = await s.intentFailMany(
        [
          { ref: ref(rows[0]!), error: 'boom' },
          { ref: ref(rows[0]!, 'stale'), error: null },
        ],
        () => 0,
      );
      expect(failed.map((r) => r?.status ?? null)).toEqual(['open', null]);
      expect(failed[0]?.error).toBe('boom');
    });

    it('refuses a publish past the open + claimed quota, replays first', async () => {
      const s = await fresh();
      const idem = { keyId: 'kid_a', key: 'k1', bodyHash: 'h1', notBefore: T0 - 1 };
      expect((await s.intentPublish(intent(), idem, 2)).kind).toBe('created');
      expect((await s.intentPublish(intent(), null, 2)).kind).toBe('created');
      expect(await s.intentPublish(intent(), null, 2)).toEqual({ kind: 'limit_exceeded', open: 2 });
      expect((await s.intentPublish(intent(), idem, 2)).kind).toBe('replay');
      expect((await s.intentPublish(intent({ publisher: 'kid_b' }), null, 2)).kind).toBe('created');
      // Fulfilled intents no longer count.
      const c = await s.intentClaim(claimBy({ token: 't' }));
      await s.intentFulfill({ id: c!.id, token: 't', keyId: 'kid_a', now: T0 }, null, 'json');
      expect((await s.intentPublish(intent(), null, 2)).kind).toBe('created');
    });

    it('remembers nonces per key inside their window, never evicting early', async () => {
      const s = await fresh();
      expect(await s.nonceRecord('kid_a', 'n1', T0 + 300_000, T0, 3)).toBe('recorded');
      expect(await s.nonceRecord('kid_a', 'n1', T0 + 300_000, T0 + 1, 3)).toBe('replay');
      expect(await s.nonceRecord('kid_b', 'n1', T0 + 300_000, T0, 3)).toBe('recorded');
      expect(await s.nonceRecord('kid_a', 'n2', T0 + 1000, T0, 3)).toBe('recorded');
      expect(await s.nonceRecord('kid_a', 'n3', T0 + 300_000, T0, 3)).toBe('full');
      // Once n2's window has passed, it makes room, and may even be used again.
      expect(await s.nonceRecord('kid_a', 'n2', T0 + 301_000, T0 + 1000, 3)).toBe('recorded');
      expect(await s.noncesDeleteExpired(T0 + 300_000)).toBe(2);
      expect(await s.nonceRecord('kid_a', 'n1', T0 + 600_000, T0 + 300_000, 3)).toBe('recorded');
    });

    it('counts nonces across cleanup and revokes, so that capacity holds exactly', async () => {
      const s = await fresh();
      const key = {
        keyId: 'kid_1',
        keyHash: 'h1',
        prefix: 'tk_11111',
        owner: 'o',
        createdAt: T0,
        lastUsedAt: null,
        requests: 0,
      };
      await s.keyCreate(key);
      expect(await s.nonceRecord('kid_1', 'a', T0 + 1000, T0, 4)).toBe('recorded');
      expect(await s.nonceRecord('kid_1', 'b', T0 + 300_000, T0, 4)).toBe('recorded');
      expect(await s.nonceRecord('kid_2', 'c', T0 + 300_000, T0, 4)).toBe('recorded');
      expect(await s.nonceRecord('kid_2', 'd', T0 + 300_000, T0, 4)).toBe('recorded');
      expect(await s.nonceRecord('kid_2', 'e', T0 + 300_000, T0, 4)).toBe('full');
      // The cleanup pass removes a: one more fits, and no more.
      expect(await s.noncesDeleteExpired(T0 + 1000)).toBe(1);
      expect(await s.nonceRecord('kid_2', 'e', T0 + 300_000, T0 + 1000, 4)).toBe('recorded');
      expect(await s.nonceRecord('kid_2', 'f', T0 + 300_000, T0 + 1000, 4)).toBe('full');
      // The revoke removes kid_1's b: one more again.
      expect(await s.keyRevoke({ keyId: 'kid_1' }, T0 + 1000)).toBe('kid_1');
      expect(await s.nonceRecord('kid_2', 'f', T0 + 300_000, T0 + 1000, 4)).toBe('recorded');
      expect(await s.nonceRecord('kid_2', 'g', T0 + 300_000, T0 + 1000, 4)).toBe('full');
      expect(await s.nonceRecord('kid_2', 'c', T0 + 300_000, T0 + 1000, 4)).toBe('full');
    });

    it('keeps KV per owner with expiry', async () => {
      const s = await fresh();
      await s.kvSet('a', 'n', '{"x":1}', T0 + 10);
      await s.kvSet('b', 'n', '2', T0 + 10);
      expect(await s.kvGet('a', 'n', T0)).toBe('{"x":1}');
      expect(await s.kvGet('b', 'n', T0)).toBe('2');
      expect(await s.kvGet('a', 'n', T0 + 10)).toBeNull();
      await s.kvSet('a', 'n', '3', T0 + 20);
      expect(await s.kvGet('a', 'n', T0 + 10)).toBe('3');
      expect(await s.kvDeleteExpired(T0 + 15)).toBe(1);
    });

    it('creates, finds, counts and revokes keys', async () => {
      const s = await fresh();
      const row = {
        keyId: 'kid_1',
        keyHash: 'h',
        prefix: 'tk_12345',
        owner: 'o',
        createdAt: T0,
        lastUsedAt: null,
        requests: 0,
      };
      await s.keyCreate(row);
      expect(await s.keyByHash('h')).toEqual(row);
      await s.keyUsageAdd(new Map([['kid_1', { count: 3, lastUsedAt: T0 + 5 }]]));
      expect((await s.keyList())[0]).toMatchObject({ requests: 3, lastUsedAt: T0 + 5 });
      expect(await s.keyRevoke({ keyId: 'kid_1' }, T0)).toBe('kid_1');
      expect(await s.keyRevoke({ keyHash: 'h' }, T0)).toBeNull();
      expect(await s.keyList()).toEqual([]);
    });

    it("ends a revoked key's leases, which the sweeper then requeues, and no other key's", async () => {
      const s = await fresh();
      const mine = await put(s, intent({ goal: 'mine' }));
      const theirs = await put(s, intent({ goal: 'theirs', visibility: 'public' }));
      await s.keyCreate({
        keyId: 'kid_a',
        keyHash: 'ha',
        prefix: 'tk_aaaaa',
        owner: 'a',
        createdAt: T0,
        lastUsedAt: null,
        requests: 0,
      });
      await s.intentClaim(claimBy({ goal: 'mine', token: 'ta' }));
      await s.intentClaim(claimBy({ goal: 'theirs', token: 'tb', keyId: 'kid_b' }));
      expect(await s.keyRevoke({ keyId: 'kid_a' }, T0 + 10)).toBe('kid_a');
      expect((await s.intentGet(mine.id))?.claimExpiresAt).toBe(T0 + 10);
      expect((await s.intentGet(theirs.id))?.claimExpiresAt).toBe(T0 + 60_000);
      const swept = await s.leasesSweep(T0 + 10, () => 0, 10);
      expect(swept.map((r) => [r.id, r.status])).toEqual([[mine.id, 'open']]);
    });

    it('undoes a claim nobody received: open again, the attempt not counted', async () => {
      const s = await fresh();
      const i = await put(s, intent());
      await s.intentClaim(claimBy({ token: 't1', workerId: 'w' }));
      expect(await s.intentUnclaim(i.id, 'wrong')).toBeNull();
      expect(await s.intentUnclaim(i.id, 't1')).toMatchObject({
        id: i.id,
        status: 'open',
        claimAttempts: 0,
        claimToken: null,
        claimExpiresAt: null,
      });
      expect(await s.intentUnclaim(i.id, 't1')).toBeNull();
      expect(await s.intentClaim(claimBy({ token: 't2' }))).toMatchObject({ claimAttempts: 1 });
    });

    it('lists newest first, filtered, continuing after a cursor', async () => {
      const s = await fresh();
      const rows: IntentRow[] = [];
      for (let k = 0; k < 5; k++) {
        rows.push(
          await put(s, intent({ createdAt: T0 + Math.floor(k / 2), goal: k % 2 ? 'odd' : 'even' })),
        );
      }
      // Newest first; within one created_at, the greater id first.
      const order = [...rows].sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1));
      const ids = (xs: IntentRow[]) => xs.map((r) => r.id);
      expect(ids(await s.intentsList({}, 10, null))).toEqual(ids(order));
      const first = await s.intentsList({}, 2, null);
      expect(ids(first)).toEqual(ids(order.slice(0, 2)));
      const cursor = { createdAt: first[1]!.createdAt, id: first[1]!.id };
      expect(ids(await s.intentsList({}, 10, cursor))).toEqual(ids(order.slice(2)));
      expect(ids(await s.intentsList({ goal: 'odd' }, 10, null))).toEqual(
        ids(order.filter((r) => r.goal === 'odd')),
      );
      expect(await s.intentsList({ namespace: 'other' }, 10, null)).toEqual([]);
      await s.intentClaim(claimBy({ token: 't', workerId: 'w9' }));
      expect(await s.intentsList({ status: 'claimed', workerId: 'w9' }, 10, null)).toHaveLength(1);
      expect(await s.intentsList({ publisher: 'kid_b' }, 10, null)).toEqual([]);
    });

    it('counts intents per namespace and status, and per minute', async () => {
      const s = await fresh();
      const minute = 60_000 * Math.ceil(T0 / 60_000);
      const a = await put(s, intent({ createdAt: minute + 1 }));
      await put(s, intent({ createdAt: minute + 2 }));
      await put(s, intent({ createdAt: minute + 60_000, namespace: 'other' }));
      await s.intentClaim(claimBy({ token: 't', now: minute + 1 }));
      await s.intentFulfill(
        { id: a.id, token: 't', keyId: 'kid_a', now: minute + 60_000 },
        null,
        'json',
      );
      const b = await put(s, intent({ createdAt: minute + 3 }));
      await s.intentCancel(b.id, minute + 120_000);
      expect(await s.intentsCount()).toEqual([
        { namespace: 'default', status: 'dead', n: 1 },
        { namespace: 'default', status: 'fulfilled', n: 1 },
        { namespace: 'default', status: 'open', n: 1 },
        { namespace: 'other', status: 'open', n: 1 },
      ]);
      expect(await s.intentsPerMinute(minute)).toEqual([
        { minute, published: 3, fulfilled: 0, dead: 0 },
        { minute: minute + 60_000, published: 1, fulfilled: 1, dead: 0 },
        { minute: minute + 120_000, published: 0, fulfilled: 0, dead: 1 },
      ]);
      expect(await s.intentsPerMinute(minute + 60_000)).toHaveLength(2);
    });

    it('lists open intents due later, soonest first, retries after a failure included', async () => {
      const s = await fresh();
      const late = await put(s, intent({ runAt: T0 + 500 }));
      const soon = await put(s, intent({ runAt: T0 + 100 }));
      await put(s, intent());
      expect((await s.intentsDueAfter(T0, 10)).map((r) => r.id)).toEqual([soon.id, late.id]);
      const retried = await put(s, intent({ goal: 'retry', backoffBase: 1 }));
      await s.intentClaim(claimBy({ goal: 'retry', token: 't1' }));
      await s.intentFail({ id: retried.id, token: 't1', keyId: 'kid_a', now: T0 }, 'x', () => 0);
      expect((await s.intentsDueAfter(T0, 10)).map((r) => r.id)).toEqual([
        soon.id,
        late.id,
        retried.id,
      ]);
      expect((await s.intentsDueAfter(T0 + 300, 10)).map((r) => r.id)).toEqual([
        late.id,
        retried.id,
      ]);
    });

    it('claims exactly what the routing predicate and the order of §4 pick', async () => {
      const s = await fresh();
      const pick = <T>(xs: readonly T[]) => fc.constantFrom(...xs);
      const intentArb = fc.record({
        namespace: pick(['default', 'n2']),
        goal: pick(['a', 'b']),
        publisher: pick(['kid_a', 'kid_b']),
        visibility: pick(['private', 'public'] as const),
        priority: pick([0, 100, 500]),
        runAt: pick([T0 - 2, T0 - 1, T0, T0 + 1]),
        createdAt: pick([T0 - 3, T0 - 2]),
        expiresAt: pick([T0, T0 + 1000]),
        targetWorker: pick([null, 'w1', 'w2']),
        requiredCapability: pick([null, 'gpu', 'cpu']),
      });
      const claimArb = fc.record({
        keyId: pick(['kid_a', 'kid_b']),
        namespace: pick(['default', 'n2']),
        goal: pick([null, 'a', 'b']),
        publisher: pick([null, 'kid_a', 'kid_b']),
        workerId: pick([null, 'w1', 'w2']),
        capabilities: pick([[], ['gpu'], ['cpu', 'gpu'], ['GPU']]),
      });
      await fc.assert(
        fc.asyncProperty(fc.array(intentArb, { maxLength: 12 }), claimArb, async (specs, claim) => {
          await s.intentsPurge(null);
          const rows: IntentRow[] = [];
          for (const spec of specs) rows.push(await put(s, intent(spec)));
          const expected = rows
            .filter((r) => r.runAt <= T0 && r.expiresAt > T0 && matchesClaim(r, claim))
            .sort(referenceOrder)[0];
          const got = await s.intentClaim(claimBy({ ...claim }));
          expect(got?.id ?? null).toBe(expected?.id ?? null);
        }),
        { numRuns: 150 },
      );
    });
    it('claims under flow control what the §4 order picks among the goals not held back', async () => {
      const s = await fresh();
      const pick = <T>(xs: readonly T[]) => fc.constantFrom(...xs);
      const intentArb = fc.record({
        namespace: pick(['default', 'n2']),
        goal: pick(['a', 'b', 'c']),
        visibility: pick(['private', 'public'] as const),
        priority: pick([0, 100, 500]),
        runAt: pick([T0 - 2, T0 - 1, T0, T0 + 1]),
      });
      const claimArb = fc.record({
        keyId: pick(['kid_a', 'kid_b']),
        namespace: pick(['default', 'n2']),
        goal: pick([null, 'a', 'b']),
        publisher: pick([null, 'kid_a']),
      });
      const pausedArb = fc.subarray(['*', 'a', 'b'], { minLength: 1 });
      await fc.assert(
        fc.asyncProperty(
          fc.array(intentArb, { maxLength: 10 }),
          claimArb,
          pausedArb,
          async (specs, claim, paused) => {
            await s.intentsPurge(null);
            const rows: IntentRow[] = [];
            for (const spec of specs) rows.push(await put(s, intent(spec)));
            const controls = paused.map((goal) => ({
              namespace: claim.namespace,
              goal,
              paused: true,
              maxInFlight: null,
              rate: null,
              updatedAt: T0,
            }));
            const held = (r: IntentRow): boolean => paused.includes('*') || paused.includes(r.goal);
            const candidates = rows
              .filter((r) => r.runAt <= T0 && r.expiresAt > T0 && matchesClaim(r, claimBy(claim)))
              .sort(referenceOrder);
            const got = await s.intentClaimFlow(claimBy(claim), controls);
            expect(got.row?.id ?? null).toBe(candidates.find((r) => !held(r))?.id ?? null);
            const first = candidates.find(held);
            expect(got.held?.goal ?? null).toBe(got.row ? null : (first?.goal ?? null));
            if (got.held) expect(got.held.hold).toEqual({ by: 'paused', retryAt: null });
          },
        ),
        { numRuns: 100 },
      );
    });

    it('keeps flow controls: a change merges, null clears, nothing left removes', async () => {
      const s = await fresh();
      expect(await s.flowPut('n', 'g', { paused: true }, T0)).toEqual({
        namespace: 'n',
        goal: 'g',
        paused: true,
        maxInFlight: null,
        rate: null,
        updatedAt: T0,
      });
      await s.flowPut('n', 'g', { rate: { limit: 3, per: 60 } }, T0 + 1);
      await s.flowPut('n', '*', { maxInFlight: 7 }, T0 + 2);
      expect(await s.flowList()).toEqual([
        { namespace: 'n', goal: '*', paused: false, maxInFlight: 7, rate: null, updatedAt: T0 + 2 },
        {
          namespace: 'n',
          goal: 'g',
          paused: true,
          maxInFlight: null,
          rate: { limit: 3, per: 60 },
          updatedAt: T0 + 1,
        },
      ]);
      expect(await s.flowPut('n', 'g', { paused: false, rate: null }, T0 + 3)).toBeNull();
      expect(await s.flowDelete('n', '*')).toBe(true);
      expect(await s.flowDelete('n', '*')).toBe(false);
      expect(await s.flowList()).toEqual([]);
    });

    it('holds max_in_flight until a claim ends, and a rate as a sliding window', async () => {
      const s = await fresh();
      const control = (over: object) => ({
        namespace: 'default',
        goal: 'g',
        paused: false,
        maxInFlight: null,
        rate: null,
        updatedAt: T0,
        ...over,
      });
      for (let i = 0; i < 8; i++) await put(s, intent({ createdAt: T0 - 100 + i }));
      const limit = [control({ maxInFlight: 2 })];
      const a = await s.intentClaimFlow(claimBy({ token: 'ta' }), limit);
      expect((await s.intentClaimFlow(claimBy(), limit)).row).not.toBeNull();
      const full = await s.intentClaimFlow(claimBy(), limit);
      expect(full).toEqual({
        row: null,
        held: { goal: 'g', control: 'g', hold: { by: 'max_in_flight', retryAt: T0 + 1000 } },
      });
      const ref = { id: a.row!.id, token: 'ta', keyId: 'kid_a', now: T0 + 10 };
      expect(await s.intentFulfill(ref, '1', 'json')).not.toBeNull();
      expect((await s.intentClaimFlow(claimBy(), limit)).row).not.toBeNull();
      expect(await s.flowHolds(limit, T0)).toEqual(
        new Map([['g', { by: 'max_in_flight', retryAt: T0 + 1000 }]]),
      );

      // 2 claims per 10 s.
      const rate = [control({ goal: '*', rate: { limit: 2, per: 10 } })];
      const at = (now: number) => s.intentClaimFlow(claimBy({ now }), rate);
      expect((await at(T0)).row).not.toBeNull();
      expect((await at(T0 + 100)).row).not.toBeNull();
      expect((await at(T0 + 5000)).held).toMatchObject({
        control: '*',
        hold: { by: 'rate', retryAt: T0 + 10_000 },
      });
      expect((await at(T0 + 10_200)).row).not.toBeNull();
      // A claim that took its time earlier but comes later is reckoned at the newest
      // claim's time: the window never loses a claim still inside it.
      expect((await at(T0 + 6000)).row).not.toBeNull();
      expect((await at(T0 + 10_300)).held?.hold).toEqual({ by: 'rate', retryAt: T0 + 20_200 });
      expect((await at(T0 + 20_200)).row).not.toBeNull();
    });

    it('keeps a schedule: created, the same definition unchanged, a new timing restarting from now', async () => {
      const s = await fresh();
      const made = await s.schedulePut(schedule(), T0);
      expect(made).toMatchObject({
        kind: 'created',
        row: { owner: 'kid_a', name: 's1', paused: false, lastTick: T0, nextAt: T0 + 60_000 },
      });
      expect(await s.scheduleGet('kid_a', 's1')).toEqual(made.row);
      expect(await s.scheduleGet('kid_b', 's1')).toBeNull();
      expect(await s.schedulePut(schedule(), T0 + 5000)).toEqual({
        kind: 'unchanged',
        row: made.row,
      });
      // Another intent keeps the position; another timing starts from now.
      const other = await s.schedulePut(
        schedule({ intent: '{"goal":"x","payload":1}' }),
        T0 + 6000,
      );
      expect(other).toMatchObject({ kind: 'updated', row: { lastTick: T0, updatedAt: T0 + 6000 } });
      const retimed = await s.schedulePut(schedule({ every: 30 }), T0 + 7000);
      expect(retimed.row).toMatchObject({ lastTick: T0 + 7000, nextAt: T0 + 30_000 });
      await s.schedulePut(schedule({ name: 's0', paused: true }), T0);
      expect((await s.scheduleList('kid_a')).map((r) => [r.name, r.paused])).toEqual([
        ['s0', true],
        ['s1', false],
      ]);
      expect(await s.scheduleList('kid_b')).toEqual([]);
      expect(await s.scheduleDelete('kid_a', 's0')).toBe(true);
      expect(await s.scheduleDelete('kid_a', 's0')).toBe(false);
    });

    it("records a run's failure once, with its alert, whichever path and however many at once", async () => {
      const s = await fresh();
      const onFailure = '{"goal":"alert"}';
      await s.schedulePut(schedule({ deadline: 30, onFailure }), T0);
      expect(await s.schedulesWithDeadline()).toEqual([{ owner: 'kid_a', name: 's1' }]);
      const tickAt = async (k: number) => {
        const out = await s.scheduleTick('kid_a', 's1', T0 + k * 60_000 + 10, runOf, null);
        expect(out.published).toHaveLength(1);
        return out.published[0]!;
      };
      // The first fulfilled in time, the second fulfilled late, the third never.
      const fulfil = async (run: IntentRow, at: number) => {
        const c = await s.intentClaim(claimBy({ goal: 'tick', token: `t-${run.id}`, now: at }));
        expect(c?.id).toBe(run.id);
        await s.intentFulfill(
          { id: run.id, token: `t-${run.id}`, keyId: 'kid_a', now: at },
          '1',
          'json',
        );
      };
      const first = await tickAt(1);
      await fulfil(first, first.scheduledFor! + 29_000);
      const second = await tickAt(2);
      await fulfil(second, second.scheduledFor! + 31_000);
      const third = await tickAt(3);
      // Too early for the third: only the first two ticks are past their deadline.
      const at = third.scheduledFor! + 29_000;
      const passes = await Promise.all(
        [1, 2, 3].map(() => s.scheduleCheckDeadline('kid_a', 's1', at, alertOf, 100)),
      );
      const missed = passes.flat();
      expect(missed.map((m) => [m.run.id, m.reason, m.recorded])).toEqual([
        [second.id, 'missed', true],
      ]);
      expect(missed[0]!.alert).toMatchObject({ goal: 'alert', publisher: 'kid_a', status: 'open' });
      expect(await s.intentGet(missed[0]!.alert!.id)).toMatchObject({ goal: 'alert' });
      expect((await s.scheduleGet('kid_a', 's1'))!.checkedUntil).toBe(at - 30_000);
      // Later: the third is missed; the second is not missed again.
      const later = await s.scheduleCheckDeadline('kid_a', 's1', at + 2000, alertOf, 100);
      expect(later.map((m) => m.run.id)).toEqual([third.id]);
      // It then dies: its failure is the miss, recorded already; no second alert.
      const again = await s.scheduleRunFailed(
        { ...third, status: 'dead' },
        'dead',
        at + 3000,
        alertOf,
      );
      expect(again).toMatchObject({ recorded: false, alert: null });
      const failures = await s.scheduleFailures('kid_a', 's1', T0, T0 + 10 * 60_000);
      expect(
        failures
          .sort((a, b) => a.scheduledFor - b.scheduledFor)
          .map((f) => [f.scheduledFor, f.reason]),
      ).toEqual([
        [second.scheduledFor, 'missed'],
        [third.scheduledFor, 'missed'],
      ]);
      expect(failures.every((f) => f.alertId !== null)).toBe(true);

      // A dead run of a schedule without on_failure: recorded, no alert; found once.
      await s.schedulePut(schedule({ name: 'plain', paused: true }), T0);
      const once: RunMaker = (sc, at, now) => ({ ...runOf(sc, at, now), maxAttempts: 1 });
      const trig = async (at: number) => {
        const out = await s.scheduleTrigger('kid_a', 'plain', at, once, null);
        if (out.kind !== 'created') throw new Error(out.kind);
        return out.row;
      };
      // A cancelled run is no failure.
      const cancelled = await trig(T0 + 1000);
      expect((await s.intentCancel(cancelled.id, T0 + 2000))?.deadReason).toBe('cancelled');
      expect(await s.runsDeadUnrecorded(T0, 10)).toEqual([]);
      const run = await trig(T0 + 3000);
      expect(
        (await s.intentClaim(claimBy({ goal: 'tick', token: 'tq', now: T0 + 4000 })))?.id,
      ).toBe(run.id);
      const last = await s.intentFail(
        { id: run.id, token: 'tq', keyId: 'kid_a', now: T0 + 5000 },
        'boom',
        () => 0,
      );
      expect(last).toMatchObject({ status: 'dead', schedule: 'plain' });
      expect(await s.runsDeadUnrecorded(T0 + 6000, 10)).toEqual([]);
      expect((await s.runsDeadUnrecorded(T0, 10)).map((r) => r.id)).toEqual([run.id]);
      const outs = await Promise.all(
        [1, 2].map(() => s.scheduleRunFailed(last!, 'dead', T0 + 900_000, alertOf)),
      );
      expect(outs.map((o) => o.recorded).sort()).toEqual([false, true]);
      expect(outs.every((o) => o.alert === null)).toBe(true);
      expect(await s.runsDeadUnrecorded(T0, 10)).toEqual([]);
      // Kept while the run is there, then deleted with it gone (the third is still open).
      expect(await s.runFailuresDelete(T0 + 10_000_000)).toBe(0);
      await s.intentsDeleteFinished(T0 + 10_000_000);
      expect(await s.runFailuresDelete(T0 + 10_000_000)).toBe(2);
      expect(await s.scheduleFailures('kid_a', 's1', T0, T0 + 10 * 60_000)).toHaveLength(1);
    });

    it('ticks once per tick: owed runs published, the last tick advanced, none twice even at once', async () => {
      const s = await fresh();
      await s.schedulePut(schedule(), T0);
      expect(await s.schedulesDue(T0 + 59_999, 10)).toEqual([]);
      expect(await s.schedulesDue(T0 + 60_000, 10)).toEqual([{ owner: 'kid_a', name: 's1' }]);
      // Five ticks owed; five passes at once (several nodes) publish them once.
      const now = T0 + 5 * 60_000 + 10;
      const outs = await Promise.all(
        [1, 2, 3, 4, 5].map(() => s.scheduleTick('kid_a', 's1', now, runOf, null)),
      );
      const published = outs.flatMap((o) => o.published);
      expect(published.map((r) => r.scheduledFor).sort()).toEqual(
        [1, 2, 3, 4, 5].map((k) => T0 + k * 60_000),
      );
      const runs = await s.scheduleRuns('kid_a', 's1', 20);
      expect(runs.map((r) => r.scheduledFor)).toEqual([5, 4, 3, 2, 1].map((k) => T0 + k * 60_000));
      expect(runs[0]).toMatchObject({ schedule: 's1', publisher: 'kid_a', status: 'open' });
      expect(await s.intentGet(runs[0]!.id)).toEqual(runs[0]);
      expect(await s.scheduleGet('kid_a', 's1')).toMatchObject({
        lastTick: T0 + 300_000,
        nextAt: T0 + 360_000,
      });
      expect(await s.schedulesDue(now, 10)).toEqual([]);
      expect((await s.scheduleTick('kid_a', 's1', now, runOf, null)).published).toEqual([]);
      // The unique index is the guard: a run for a tick that has one is not inserted.
      const again = await s.scheduleTrigger('kid_a', 's1', T0 + 300_000, runOf, null);
      expect(again).toMatchObject({ kind: 'existing', row: { id: runs[0]!.id } });
    });

    it('lets ticks go while the last run is open (overlap skip) or the quota is full; pauses and resumes from now', async () => {
      const s = await fresh();
      await s.schedulePut(schedule({ overlap: 'skip' }), T0);
      const first = await s.scheduleTick('kid_a', 's1', T0 + 180_000, runOf, null);
      expect(first).toMatchObject({ skipped: 2 });
      expect(first.published.map((r) => r.scheduledFor)).toEqual([T0 + 60_000]);
      expect(await s.scheduleTick('kid_a', 's1', T0 + 240_000, runOf, null)).toMatchObject({
        published: [],
        skipped: 1,
      });
      // Fulfilled: the next tick publishes.
      const c = await s.intentClaim(claimBy({ goal: 'tick', token: 'tk', now: T0 + 240_000 }));
      await s.intentFulfill(
        { id: c!.id, token: 'tk', keyId: 'kid_a', now: T0 + 241_000 },
        '1',
        'json',
      );
      expect(
        (await s.scheduleTick('kid_a', 's1', T0 + 300_000, runOf, null)).published,
      ).toHaveLength(1);

      await s.schedulePut(schedule({ name: 'q', catchUp: 'all' }), T0);
      const quota = await s.scheduleTick('kid_a', 'q', T0 + 180_000, runOf, 2);
      // kid_a has one open run of s1: room for one more.
      expect(quota.published).toHaveLength(1);
      expect(quota.skipped).toBe(2);
      expect(await s.scheduleTrigger('kid_a', 'q', T0 + 181_000, runOf, 2)).toEqual({
        kind: 'limit_exceeded',
        open: 2,
      });

      const paused = await s.schedulePause('kid_a', 'q', true, T0 + 200_000);
      expect(paused).toMatchObject({ paused: true, lastTick: T0 + 180_000 });
      expect(await s.schedulesDue(T0 + 900_000, 10)).toEqual([{ owner: 'kid_a', name: 's1' }]);
      expect(await s.scheduleTick('kid_a', 'q', T0 + 900_000, runOf, null)).toEqual({
        published: [],
        skipped: 0,
      });
      const resumed = await s.schedulePause('kid_a', 'q', false, T0 + 900_500);
      expect(resumed).toMatchObject({
        paused: false,
        lastTick: T0 + 900_500,
        nextAt: T0 + 960_000,
      });
      expect(await s.schedulePause('kid_b', 'q', true, T0)).toBeNull();
      expect(await s.scheduleTrigger('kid_b', 'q', T0, runOf, null)).toEqual({ kind: 'not_found' });
    });

    it('merges the fleet sightings of several nodes: latest wins, counts add, first and last seen', async () => {
      const s = await fresh();
      const seen = (over: Partial<WorkerSave> = {}): WorkerSave => ({
        keyId: 'kid_a',
        workerId: 'w1',
        capabilities: '["gpu"]',
        asks: '[["default","g",null]]',
        userAgent: 'ua-1',
        address: '10.0.0.1',
        firstSeen: T0,
        lastSeen: T0 + 1000,
        fulfilled: 2,
        failed: 1,
        lastError: 'boom',
        ...over,
      });
      await s.workersSave([seen(), seen({ keyId: 'kid_b', capabilities: null, asks: null })]);
      // Another node saw it later, with other capabilities and nothing failed.
      await s.workersSave([
        seen({
          capabilities: '["cpu"]',
          userAgent: 'ua-2',
          firstSeen: T0 + 500,
          lastSeen: T0 + 3000,
          fulfilled: 5,
          failed: 0,
          lastError: null,
        }),
      ]);
      // And a node that saw it earlier writes late: its capabilities lose, its counts add.
      await s.workersSave([
        seen({
          capabilities: '["old"]',
          userAgent: null,
          firstSeen: T0 - 100,
          lastSeen: T0 + 2000,
        }),
      ]);
      const w1 = await s.workerGet('kid_a', 'w1');
      expect(w1).toEqual({
        keyId: 'kid_a',
        workerId: 'w1',
        capabilities: '["cpu"]',
        asks: '[["default","g",null]]',
        userAgent: 'ua-2',
        address: '10.0.0.1',
        firstSeen: T0 - 100,
        lastSeen: T0 + 3000,
        fulfilled: 9,
        failed: 2,
        lastError: 'boom',
        command: null,
      });
      expect((await s.workerGet('kid_b', 'w1'))?.capabilities).toBe('[]');
      expect((await s.workersList(null)).map((w) => w.keyId)).toEqual(['kid_a', 'kid_b']);
      expect((await s.workersList('kid_b')).map((w) => w.keyId)).toEqual(['kid_b']);
      expect(await s.workerGet('kid_c', 'w1')).toBeNull();

      // A command by worker id reaches it under every key, or under one.
      expect(await s.workerCommandSet('w1', 'kid_b', 'quiet')).toEqual([
        { keyId: 'kid_b', workerId: 'w1' },
      ]);
      expect((await s.workerCommandSet('w1', null, 'stop')).length).toBe(2);
      expect(await s.workerCommandSet('nobody', null, 'stop')).toEqual([]);
      expect(await s.workersCommanded()).toEqual(
        expect.arrayContaining([
          { keyId: 'kid_a', workerId: 'w1', command: 'stop' },
          { keyId: 'kid_b', workerId: 'w1', command: 'stop' },
        ]),
      );
      // A later sighting keeps the command.
      await s.workersSave([seen({ lastSeen: T0 + 4000 })]);
      expect((await s.workerGet('kid_a', 'w1'))?.command).toBe('stop');
      await s.workerCommandSet('w1', 'kid_a', null);
      expect(await s.workersCommanded()).toEqual([
        { keyId: 'kid_b', workerId: 'w1', command: 'stop' },
      ]);

      // Forgotten by an admin, or by retention.
      expect(await s.workerForget('w1', 'kid_b')).toEqual([{ keyId: 'kid_b', workerId: 'w1' }]);
      expect(await s.workerForget('w1', 'kid_b')).toEqual([]);
      await s.workersSave([seen({ workerId: 'w2', firstSeen: T0 - 10, lastSeen: T0 - 10 })]);
      expect(await s.workersDeleteSeenBefore(T0)).toBe(1);
      expect((await s.workersList(null)).map((w) => w.workerId)).toEqual(['w1']);
    });

    it('reports held intents by worker, counts per goal and open intents by route', async () => {
      const s = await fresh();
      await put(s, intent({ goal: 'a', createdAt: T0 - 5000 }));
      await put(s, intent({ goal: 'a' }));
      await put(s, intent({ goal: 'b', requiredCapability: 'gpu', visibility: 'public' }));
      await put(s, intent({ goal: 'b', runAt: T0 + 60_000 }));
      const held = await s.intentClaim(claimBy({ goal: 'a', workerId: 'w1' }));
      await s.intentClaim(claimBy({ goal: 'a', keyId: 'kid_a' }));
      expect(held).not.toBeNull();
      expect(await s.intentsHeld(null)).toEqual([
        {
          id: held!.id,
          namespace: 'default',
          goal: 'a',
          claimer: 'kid_a',
          workerId: 'w1',
          claimExpiresAt: T0 + 60_000,
        },
      ]);
      expect(await s.intentsHeld('kid_b')).toEqual([]);
      expect(await s.goalCounts()).toEqual([
        { namespace: 'default', goal: 'a', status: 'claimed', n: 2, oldest: T0 - 5000 },
        { namespace: 'default', goal: 'b', status: 'open', n: 2, oldest: T0 },
      ]);
      // Only what is due now, grouped by what the claim rule looks at.
      expect(await s.openRoutes(T0, 100)).toEqual([
        {
          namespace: 'default',
          goal: 'b',
          visibility: 'public',
          publisher: 'kid_a',
          targetWorker: null,
          requiredCapability: 'gpu',
          n: 1,
          oldest: T0,
        },
      ]);
    });
  });
}
