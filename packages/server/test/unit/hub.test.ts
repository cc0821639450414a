import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import type { ClaimFilter } from '../../src/core/routing.js';
import { WaiterHub, type ClaimableEvent } from '../../src/wake/hub.js';
import { MinHeap } from '../../src/wake/min-heap.js';
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
    hub.claimable(event(), 0);
    expect(await first.wait()).toEqual({ kind: 'woken', event: event() });
    expect(hub.waiting).toBe(2);
    other.cancel();
    second.cancel();
    expect(hub.waiting).toBe(0);
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
    const a = hub.waitForClaim(filter(), false, 5000, ac.signal)!;
    const r = hub.waitForResult('i1', 5000)!;
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
