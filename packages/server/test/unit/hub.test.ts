import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import type { ClaimFilter } from '../../src/core/routing.js';
import type { ClaimableEvent } from '../../src/wake/announce.js';
import { WaiterHub, type Carrier } from '../../src/wake/hub.js';
import { MinHeap } from '../../src/wake/min-heap.js';
import { DueSchedule } from '../../src/wake/due-schedule.js';
import fc from 'fast-check';

const filter = (over: Partial<ClaimFilter> = {}): ClaimFilter => ({
  keyId: 'kid_a',
  namespace: 'default',
  goal: null,
  publisher: null,
  workerId: null,
  capabilities: [],
  ...over,
});
const event = (over: Partial<ClaimableEvent> = {}): ClaimableEvent => ({
  id: 'i1',
  namespace: 'default',
  goal: 'g',
  visibility: 'public',
  publisher: 'kid_b',
  targetWorker: null,
  requiredCapability: null,
  ...over,
});

describe('WaiterHub', () => {
  let hub: WaiterHub;
  afterEach(() => hub?.close());

  it('hands a claimable event to one matching waiter, oldest first', async () => {
    hub = new WaiterHub(new ManualClock(0), { maxWaiters: 10, maxWaitersPerKey: 10 });
    const other = hub.waitForClaim(filter({ namespace: 'x' }), false, 5000)!;
    const first = hub.waitForClaim(filter(), false, 5000)!;
    const second = hub.waitForClaim(filter(), false, 5000)!;
    // True: a waiter of this node took it (the wake relay then tells no other node).
    expect(hub.claimable(event(), 0)).toBe(true);
    expect(await first.wait()).toEqual({ kind: 'woken', event: event() });
    expect(hub.waiting).toBe(2);
    // No waiter that matches: false, and nobody woken.
    expect(hub.claimable(event({ namespace: 'y' }), 0)).toBe(false);
    // Due later: scheduled, not handed to anyone now.
    expect(hub.claimable(event({ id: 'i2' }), 50)).toBe(false);
    expect(hub.waiting).toBe(2);
    other.cancel();
    second.cancel();
    expect(hub.waiting).toBe(0);
  });

  it('coverOf: a new claim is covered by a waiting one that found nothing, until something is left untaken', async () => {
    hub = new WaiterHub(new ManualClock(0), { maxWaiters: 10, maxWaitersPerKey: 10 });
    expect(hub.coverOf(filter())).toBeNull(); // nobody waits
    const e0 = hub.epoch;
    const w = hub.waitForClaim(filter({ capabilities: ['gpu', 'cpu'] }), false, 5000)!;
    expect(hub.coverOf(filter())).toBeNull(); // its attempt has not answered yet
    w.foundNothing(e0);
    expect(hub.coverOf(filter({ goal: 'g', capabilities: ['gpu'] }))).toBe(e0);
    // Not covered: another key, another publisher filter, a capability it lacks, another
    // namespace, and a claim naming its worker while intents may name theirs.
    expect(hub.coverOf(filter({ keyId: 'kid_x' }))).toBeNull();
    expect(hub.coverOf(filter({ publisher: 'kid_b' }))).toBeNull();
    expect(hub.coverOf(filter({ capabilities: ['tpu'] }))).toBeNull();
    expect(hub.coverOf(filter({ namespace: 'x' }))).toBeNull();
    expect(hub.coverOf(filter({ workerId: 'w1' }))).toBeNull();
    // An intent no waiting claim matched is in the store for the next claim to find.
    expect(hub.claimable(event({ namespace: 'x' }), 0)).toBe(false);
    expect(hub.coverOf(filter())).toBeNull();
    w.cancel();

    // One handed to a waiting claim leaves the others covered; a resync does not.
    const e1 = hub.epoch;
    const a = hub.waitForClaim(filter(), false, 5000)!;
    const b = hub.waitForClaim(filter(), false, 5000)!;
    a.foundNothing(e1);
    b.foundNothing(e1);
    expect(hub.claimable(event(), 0)).toBe(true);
    expect(await a.wait()).toEqual({ kind: 'woken', event: event() });
    expect(hub.coverOf(filter())).toBe(e1);
    hub.resync();
    expect(hub.coverOf(filter())).toBeNull();
    expect(await b.wait()).toEqual({ kind: 'woken', event: null });

    // While the wake relay hears nobody, no claim is covered, even by a newer empty claim.
    hub.hearing(false);
    const e2 = hub.epoch;
    const c = hub.waitForClaim(filter(), false, 5000)!;
    c.foundNothing(e2);
    expect(hub.coverOf(filter())).toBeNull();
    hub.hearing(true);
    expect(hub.coverOf(filter())).toBeNull(); // found nothing before it heard again
    c.cancel();
  });

  it('coverOf: a claim naming its worker is covered once the store said no open intent names one, until one is seen', async () => {
    let answer!: (may: boolean) => void;
    let asked = new Promise<boolean>((r) => (answer = r));
    let asks = 0;
    hub = new WaiterHub(new ManualClock(0), { maxWaiters: 10, maxWaitersPerKey: 10 }, null, () => {
      asks++;
      return asked;
    });
    hub.start();
    const e = hub.epoch;
    const w = hub.waitForClaim(filter({ workerId: 'w0' }), false, 5000)!;
    w.foundNothing(e);
    expect(hub.coverOf(filter({ workerId: 'w1' }))).toBeNull();
    answer(false);
    await asked;
    await Promise.resolve();
    expect(hub.coverOf(filter({ workerId: 'w1' }))).toBe(e);
    // An intent for worker w9 (taken by nobody here: w0 is not w9).
    expect(hub.claimable(event({ targetWorker: 'w9' }), 0)).toBe(false);
    const e2 = hub.epoch;
    const v = hub.waitForClaim(filter({ workerId: 'w0' }), false, 5000)!;
    v.foundNothing(e2);
    expect(hub.coverOf(filter())).toBe(e2);
    expect(hub.coverOf(filter({ workerId: 'w1' }))).toBeNull();
    w.cancel();
    v.cancel();

    // A resync (announcements missed) asks the store again; only the answer counts.
    asked = new Promise<boolean>((r) => (answer = r));
    hub.resync();
    expect(asks).toBe(2);
    const e3 = hub.epoch;
    const u = hub.waitForClaim(filter({ workerId: 'w0' }), false, 5000)!;
    u.foundNothing(e3);
    expect(hub.coverOf(filter({ workerId: 'w1' }))).toBeNull();
    answer(false);
    await asked;
    await Promise.resolve();
    expect(hub.coverOf(filter({ workerId: 'w1' }))).toBe(e3);
    u.cancel();
  });

  it('carry: the woken claim under way that carries the wake-up of an intent, one intent at a time', () => {
    hub = new WaiterHub(new ManualClock(0), { maxWaiters: 10, maxWaitersPerKey: 10 });
    const a: Carrier = { event: null };
    const b: Carrier = { event: null };
    hub.carry(a, event({ id: 'x' }));
    hub.carry(b, event({ id: 'y' }));
    expect(hub.carrierOf('x')).toBe(a);
    // a's claim took y, b's intent: b, still under way, carries x's wake-up instead.
    hub.carry(b, a.event);
    hub.carry(a, null);
    expect(hub.carrierOf('x')).toBe(b);
    expect(hub.carrierOf('y')).toBeUndefined();
    expect(b.event?.id).toBe('x');
    hub.carry(b, null);
    expect(hub.carrierOf('x')).toBeUndefined();
  });

  it('keyRevoked ends the waiting claims and result waits of that key only', async () => {
    hub = new WaiterHub(new ManualClock(0), { maxWaiters: 10, maxWaitersPerKey: 10 });
    const claim = hub.waitForClaim(filter(), false, 5000)!;
    const result = hub.waitForResult('i9', 'kid_a', false, 5000)!;
    const other = hub.waitForClaim(filter({ keyId: 'kid_b' }), false, 5000)!;
    hub.keyRevoked('kid_a');
    expect(await claim.wait()).toEqual({ kind: 'revoked' });
    expect(await result.wait()).toEqual({ kind: 'revoked' });
    expect(hub.waiting).toBe(1);
    hub.claimable(event(), 0);
    expect(await other.wait()).toEqual({ kind: 'woken', event: event() });
  });

  it('resync wakes every waiting claim and result wait, and reloads the run_ats from the store', async () => {
    const clock = { now: () => Date.now() };
    let loads = 0;
    const later = event({ id: 'later' });
    hub = new WaiterHub(clock, { maxWaiters: 10, maxWaitersPerKey: 10 }, async () => {
      loads++;
      // The second load is the resync's: it finds an intent announced while deaf.
      return loads === 1 ? [] : [{ at: Date.now() + 30, event: later }];
    });
    hub.start();
    await new Promise((r) => setTimeout(r, 10));
    const a = hub.waitForClaim(filter({ namespace: 'x' }), false, 5000)!;
    const b = hub.waitForResult('i9', 'kid_a', false, 5000)!;
    hub.resync();
    expect(await a.wait()).toEqual({ kind: 'woken', event: null });
    expect(await b.wait()).toEqual({ kind: 'woken', event: null });
    expect(hub.waiting).toBe(0);
    const c = hub.waitForClaim(filter(), false, 2000)!;
    expect(await c.wait()).toEqual({ kind: 'woken', event: later });
    expect(loads).toBe(2);
  });

  it('times out, and is refused past its limits', async () => {
    hub = new WaiterHub(new ManualClock(0), { maxWaiters: 2, maxWaitersPerKey: 1 });
    const t = hub.waitForClaim(filter(), false, 10)!;
    expect(hub.waitForClaim(filter(), false, 10)).toBeNull();
    expect(hub.waitForClaim(filter(), true, 10)).not.toBeNull();
    expect(hub.waitForClaim(filter({ keyId: 'kid_c' }), false, 10)).toBeNull();
    expect(await t.wait()).toEqual({ kind: 'timeout' });
  });

  it('fires scheduled wake-ups when run_at comes due', async () => {
    const clock = { now: () => Date.now() };
    hub = new WaiterHub(clock, { maxWaiters: 10, maxWaitersPerKey: 10 });
    const t = hub.waitForClaim(filter(), false, 2000)!;
    const started = Date.now();
    hub.claimable(event(), Date.now() + 50);
    const outcome = await t.wait();
    expect(outcome.kind).toBe('woken');
    expect(Date.now() - started).toBeGreaterThanOrEqual(40);
  });

  it('ends every wait on close and on abort', async () => {
    hub = new WaiterHub(new ManualClock(0), { maxWaiters: 10, maxWaitersPerKey: 10 });
    const ac = new AbortController();
    const a = hub.waitForClaim(filter(), false, 5000, ac)!;
    const r = hub.waitForResult('i1', 'kid_a', false, 5000)!;
    ac.abort();
    expect(await a.wait()).toEqual({ kind: 'closed' });
    hub.finished('i1');
    expect(await r.wait()).toEqual({ kind: 'woken', event: null });
    const b = hub.waitForClaim(filter(), false, 5000)!;
    hub.close();
    expect(await b.wait()).toEqual({ kind: 'closed' });
    expect(hub.waitForClaim(filter(), false, 5000)).toBeNull();
    expect(hub.waiting).toBe(0);
  });
});

describe('MinHeap', () => {
  it('pops in order and stays a heap when the largest is dropped', () => {
    fc.assert(
      fc.property(fc.array(fc.integer()), fc.nat(5), (xs, drops) => {
        const h = new MinHeap<number>((a, b) => a - b);
        for (const x of xs) h.push(x);
        const sorted = [...xs].sort((a, b) => a - b);
        for (let i = 0; i < drops && h.size > 0; i++) {
          h.dropLargest();
          sorted.pop();
        }
        const out: number[] = [];
        while (h.size > 0) out.push(h.pop()!);
        expect(out).toEqual(sorted);
      }),
    );
  });
});

describe('DueSchedule', () => {
  it('fires every due wake-up in order, holding at most its capacity in memory', async () => {
    const clock = { now: () => Date.now() };
    const t0 = Date.now() + 50;
    // The "store": 25 intents due over 250 ms, several sharing a run_at.
    const store = Array.from({ length: 25 }, (_, i) => ({
      at: t0 + Math.floor(i / 2) * 20,
      event: event({ id: `i${i}` }),
    }));
    const fired: string[] = [];
    let maxSize = 0;
    let loads = 0;
    const schedule: DueSchedule = new DueSchedule(
      clock,
      (e) => {
        if (!fired.includes(e.id)) fired.push(e.id);
        maxSize = Math.max(maxSize, schedule.size);
      },
      4,
      async (after, limit) => {
        loads++;
        return store.filter((r) => r.at > after).slice(0, limit);
      },
    );
    schedule.start();
    // Events announced while running beyond the horizon are left to the loader.
    schedule.add(t0 + 10_000, event({ id: 'far' }));
    await new Promise((r) => setTimeout(r, 600));
    schedule.stop();
    expect(fired).toEqual(store.map((r) => r.event.id));
    expect(maxSize).toBeLessThanOrEqual(4);
    expect(loads).toBeGreaterThan(3);
  });
});
