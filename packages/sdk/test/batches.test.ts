/**
 * The SDK's batches [ext] (issue 21) against a real bus over real HTTP: publishMany (exact
 * payloads, per-item errors, a retry that publishes nothing twice), claimMany, fulfillMany
 * and failMany with a dead token among good ones, and a WorkerRuntime that claims for its
 * free slots at once, or one at a time from a bus that answers one intent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaseLostError, ValidationError, WorkerRuntime, jsonText } from '../src/index.js';
import { clientOf, closeBus, startTestBus, uniqueGoal, type TestBus } from './support.js';

let t: TestBus;
beforeAll(async () => {
  t = await startTestBus();
});
afterAll(async () => closeBus(t));

describe('IntentClient batches', () => {
  it('publishes many, claims many and ends many, each item answered on its own', async () => {
    const c = clientOf(t);
    const goal = uniqueGoal('sdk_batch');
    const out = await c.publishMany([
      { goal, payload: { n: 1 } },
      { goal, payload: jsonText('{"big":12345678901234567890}') },
      { goal, payloadText: '[1.0]', priority: 700 },
      { goal, payload: 1, priority: 5000 },
    ]);
    expect(out.map((r) => r.status)).toEqual([201, 201, 201, 400]);
    const bad = out[3]!;
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.error).toBeInstanceOf(ValidationError);
    const jobs = await c.claimMany(10, { goal });
    expect(jobs).toHaveLength(3);
    expect(jobs[0]!.payloadText).toBe('[1.0]');
    expect(jobs.map((j) => j.payloadText)).toContain('{"big":12345678901234567890}');
    expect(await c.claimMany(10, { goal })).toEqual([]);
    const [a, b, d] = jobs;
    const ful = await c.fulfillMany([
      { id: a!.id, claimToken: a!.claim_token, resultText: '{"x":1.50}' },
      { id: b!.id, claimToken: 'dead' },
    ]);
    expect(ful[0]).toEqual({
      ok: true,
      status: 200,
      value: { ok: true, id: a!.id, status: 'fulfilled' },
    });
    expect(ful[1]!.ok).toBe(false);
    if (!ful[1]!.ok) expect(ful[1]!.error).toBeInstanceOf(LeaseLostError);
    expect((await c.getResult(a!.id)).resultText).toBe('{"x":1.50}');
    const fl = await c.failMany([
      { id: b!.id, claimToken: b!.claim_token, error: 'nope' },
      { id: d!.id, claimToken: d!.claim_token },
    ]);
    expect(fl.map((r) => r.ok && r.value.status)).toEqual(['open', 'open']);
  });

  it('retries a lost batch publish without publishing twice (each item has its key)', async () => {
    let posts = 0;
    const losing: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      // The first answer to the batch is lost after the bus committed it.
      if (String(input).endsWith('/intents') && ++posts === 1) throw new TypeError('lost');
      return res;
    };
    const c = clientOf(t, { fetch: losing });
    const goal = uniqueGoal('sdk_retry');
    const out = await c.publishMany(Array.from({ length: 20 }, (_, i) => ({ goal, payload: i })));
    expect(posts).toBe(2);
    expect(out.every((r) => r.ok)).toBe(true);
    expect(await clientOf(t).claimMany(100, { goal })).toHaveLength(20);
  });
});

describe('WorkerRuntime and batches', () => {
  async function runAll(
    fetchImpl: typeof fetch,
    goal: string,
    n: number,
  ): Promise<{ fulfilled: number; claimUrls: string[] }> {
    const claimUrls: string[] = [];
    const recording: typeof fetch = (input, init) => {
      if (String(input).includes('/claim')) claimUrls.push(String(input));
      return fetchImpl(input, init);
    };
    // Unsigned: the signature covers the URL, which the bus without batches below changes.
    const c = clientOf(t, { fetch: recording, sign: false });
    await clientOf(t).publishMany(Array.from({ length: n }, (_, i) => ({ goal, payload: i })));
    const ac = new AbortController();
    let done = 0;
    const summary = await new WorkerRuntime({ client: c, concurrency: 4 }).listen({
      goal,
      waitSeconds: 1,
      signal: ac.signal,
      handleSignals: false,
      handler: async (job) => {
        if (++done === n) setTimeout(() => ac.abort(), 10);
        return job.payload;
      },
    });
    expect(summary.claimed).toBe(n);
    return { fulfilled: summary.fulfilled, claimUrls };
  }

  it('claims up to its free slots at once (max=k)', async () => {
    const { fulfilled, claimUrls } = await runAll(fetch, uniqueGoal('rt_batch'), 10);
    expect(fulfilled).toBe(10);
    expect(claimUrls[0]).toContain('max=4');
    expect(claimUrls.every((u) => !/max=(?:[5-9]|\d\d)/.test(u))).toBe(true);
  });

  it('works with a bus that answers one intent to a claim of many', async () => {
    // A bus without batches ignores `max`: the same claim without it.
    const withoutMax: typeof fetch = (input, init) =>
      fetch(
        String(input).replace(/[?&]max=\d+/, (m) => (m.startsWith('?') ? '?' : '')),
        init,
      );
    const { fulfilled, claimUrls } = await runAll(withoutMax, uniqueGoal('rt_single'), 6);
    expect(fulfilled).toBe(6);
    expect(claimUrls.some((u) => u.includes('max='))).toBe(true);
  });
});
