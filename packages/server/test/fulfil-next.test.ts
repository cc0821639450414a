/**
 * [ext] issue 21: a fulfil or fail with `next=1` that also claims the worker's next intent,
 * over real HTTP, on the store the suite runs on (both, through the server-pg project).
 * The outcome is recorded first, as without `next`; then the claim, through the claim's
 * own path: its filters and headers, the long poll, flow controls and worker commands.
 * Then the SDK's WorkerRuntime, counted on the bus's side (/metrics): one request per job.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IntentClient, WorkerRuntime, type RuntimeLogger } from '../../sdk/src/index.js';
import {
  ADMIN_TOKEN,
  MAIN_KEY,
  errorCode,
  publish,
  startTestBus,
  type ApiResponse,
  type TestBus,
} from './helpers.js';

let t: TestBus;
beforeAll(async () => {
  t = await startTestBus({ env: { BUS_RATE_LIMIT_PER_MINUTE: '100000' } });
});
afterAll(async () => t.close());

let seq = 0;
/** A namespace of its own per test. */
const ns = (name: string): string => `nx-${name}-${++seq}`;

async function claimIn(namespace: string, worker?: string): Promise<ApiResponse> {
  const r = await t.api('POST', `/claim?namespace=${namespace}`, {
    headers: worker ? { 'x-worker-id': worker } : {},
  });
  expect(r.status, r.text).toBe(200);
  return r;
}

const fulfilNext = (
  id: string,
  token: string,
  query: string,
  headers: Record<string, string> = {},
): Promise<ApiResponse> =>
  t.api('POST', `/fulfill/${id}?${query}`, {
    body: { claim_token: token, result: { ok: 1 } },
    headers,
  });

const statusOf = async (id: string): Promise<Record<string, unknown>> =>
  (await t.api('GET', `/status/${id}`)).json;

describe('POST /fulfill/<id>?next=1', () => {
  it('fulfils, then claims and answers the next intent with its worker and capabilities', async () => {
    const n = ns('basic');
    const first = await publish(t.api, { goal: 'g', namespace: n, payload: { n: 1 } });
    const second = await publish(t.api, {
      goal: 'g',
      namespace: n,
      payload: { n: 2 },
      required_capability: 'gpu',
    });
    const c = await claimIn(n, 'nx-w1');
    expect(c.json.id).toBe(first);
    const r = await fulfilNext(first, c.json.claim_token, `next=1&namespace=${n}`, {
      'x-worker-id': 'nx-w1',
      'x-worker-capabilities': 'gpu',
    });
    expect(r.status, r.text).toBe(200);
    expect(r.headers.get('x-intent-done')).toBe(`${first} fulfilled`);
    expect(r.json).toMatchObject({
      id: second,
      namespace: n,
      goal: 'g',
      payload: { n: 2 },
      claim_attempts: 1,
      required_capability: 'gpu',
    });
    expect(typeof r.json.claim_token).toBe('string');
    const done = await t.api('GET', `/result/${first}`);
    expect(done.json).toMatchObject({ status: 'fulfilled', result: { ok: 1 } });
    expect(await statusOf(second)).toMatchObject({ status: 'claimed', worker_id: 'nx-w1' });
    // The token it answered is live: the next job is fulfilled with it, plainly.
    const last = await t.api('POST', `/fulfill/${second}`, {
      body: { claim_token: r.json.claim_token },
    });
    expect(last.json).toEqual({ ok: true, id: second, status: 'fulfilled' });
  });

  it('claims with the parameters it is given: worker_id and capabilities in the query, goal', async () => {
    const n = ns('query');
    const a = await publish(t.api, { goal: 'a', namespace: n });
    await publish(t.api, { goal: 'b', namespace: n });
    const want = await publish(t.api, {
      goal: 'c',
      namespace: n,
      required_capability: 'ocr',
    });
    const c = await claimIn(n);
    expect(c.json.id).toBe(a);
    const r = await fulfilNext(
      a,
      c.json.claim_token,
      `next=1&namespace=${n}&goal=c&worker_id=nx-q&capabilities=ocr,cpu`,
    );
    expect(r.json.id).toBe(want);
    expect(await statusOf(want)).toMatchObject({ worker_id: 'nx-q' });
  });

  it('a stale token: the usual 404, nothing recorded, nothing claimed', async () => {
    const n = ns('stale');
    const id = await publish(t.api, { goal: 'g', namespace: n });
    const other = await publish(t.api, { goal: 'g', namespace: n });
    const c = await claimIn(n);
    expect(c.json.id).toBe(id);
    const r = await fulfilNext(id, 'f'.repeat(32), `next=1&namespace=${n}`);
    expect(r.status).toBe(404);
    expect(errorCode(r)).toBe('not_found');
    expect(r.headers.get('x-intent-done')).toBeNull();
    expect((await statusOf(id)).status).toBe('claimed');
    expect((await statusOf(other)).status).toBe('open');
    const failed = await t.api('POST', `/fail/${id}?next=1&namespace=${n}`, {
      body: { claim_token: 'nope' },
    });
    expect(failed.status).toBe(404);
    expect((await statusOf(other)).status).toBe('open');
  });

  it('bad claim parameters: 4xx before anything happens, the lease still live', async () => {
    const n = ns('bad');
    const id = await publish(t.api, { goal: 'g', namespace: n });
    const c = await claimIn(n);
    const token = c.json.claim_token as string;
    for (const q of ['next=2', 'next=yes', `next=1&wait=31`, `next=1&namespace=bad%20ns`]) {
      const r = await fulfilNext(id, token, q);
      expect(r.status, q).toBe(400);
      expect(errorCode(r), q).toBe('invalid_request');
    }
    const long = await fulfilNext(id, token, `next=1&worker_id=${'w'.repeat(129)}`);
    expect(long.status).toBe(400);
    // A tester key may only name itself as the publisher (as on /claim): 403, not fulfilled.
    const tester = await t.newKey('nx-bad');
    const mine = await publish(t.api, { goal: 'g', namespace: n }, tester.api_key);
    const tc = await t.api('POST', `/claim?namespace=${n}&publisher=${tester.key_id}`, {
      key: tester.api_key,
    });
    expect(tc.json.id).toBe(mine);
    const forbidden = await t.api('POST', `/fulfill/${mine}?next=1&publisher=main`, {
      key: tester.api_key,
      body: { claim_token: tc.json.claim_token },
    });
    expect(forbidden.status).toBe(403);
    expect((await statusOf(mine)).status).toBe('claimed');
    expect((await statusOf(id)).status).toBe('claimed');
  });

  it('nothing to claim: 204 with Retry-After, the fulfil recorded and told', async () => {
    const n = ns('empty');
    const id = await publish(t.api, { goal: 'g', namespace: n });
    const c = await claimIn(n);
    const r = await fulfilNext(id, c.json.claim_token, `next=1&namespace=${n}`);
    expect(r.status).toBe(204);
    expect(r.text).toBe('');
    expect(r.headers.get('retry-after')).toBe('1');
    expect(r.headers.get('x-intent-done')).toBe(`${id} fulfilled`);
    expect((await statusOf(id)).status).toBe('fulfilled');
  });

  it('wait long-polls for the next intent after the fulfil', async () => {
    const n = ns('wait');
    const id = await publish(t.api, { goal: 'g', namespace: n });
    const c = await claimIn(n);
    const started = performance.now();
    const pending = fulfilNext(id, c.json.claim_token, `next=1&namespace=${n}&wait=10`);
    // The fulfil is recorded before the wait.
    for (let i = 0; (await statusOf(id)).status !== 'fulfilled'; i++) {
      if (i > 200) throw new Error('not fulfilled while waiting');
      await new Promise((r) => setTimeout(r, 10));
    }
    await new Promise((r) => setTimeout(r, 300));
    const later = await publish(t.api, { goal: 'g', namespace: n });
    const r = await pending;
    expect(r.status, r.text).toBe(200);
    expect(r.json.id).toBe(later);
    expect(r.headers.get('x-intent-done')).toBe(`${id} fulfilled`);
    expect(performance.now() - started).toBeGreaterThanOrEqual(300);
    // And a wait that times out answers 204 with the outcome told.
    const again = await fulfilNext(later, r.json.claim_token, `next=1&namespace=${n}&wait=0.3`);
    expect(again.status).toBe(204);
    expect(again.headers.get('x-intent-done')).toBe(`${later} fulfilled`);
  });

  it('a client gone during the wait is handed nothing: the fulfil stays, the next job open', async () => {
    const n = ns('gone');
    const id = await publish(t.api, { goal: 'g', namespace: n });
    const c = await claimIn(n);
    const waiting = t.bus.hub.waiting;
    const ac = new AbortController();
    const pending = fetch(`${t.url}/fulfill/${id}?next=1&namespace=${n}&wait=10`, {
      method: 'POST',
      headers: { 'x-api-key': MAIN_KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ claim_token: c.json.claim_token }),
      signal: ac.signal,
    }).catch((err: unknown) => err);
    for (let i = 0; t.bus.hub.waiting <= waiting; i++) {
      if (i > 300) throw new Error('the claim never waited');
      await new Promise((r) => setTimeout(r, 10));
    }
    ac.abort();
    expect(await pending).toBeInstanceOf(Error);
    for (let i = 0; t.bus.hub.waiting > waiting; i++) {
      if (i > 300) throw new Error('the waiter stayed');
      await new Promise((r) => setTimeout(r, 10));
    }
    const later = await publish(t.api, { goal: 'g', namespace: n });
    expect((await statusOf(id)).status).toBe('fulfilled');
    expect((await statusOf(later)).status).toBe('open');
  });

  it('respects a flow control: a paused goal is not claimed, Retry-After as /claim', async () => {
    const n = ns('flow');
    const id = await publish(t.api, { goal: 'run', namespace: n });
    const held = await publish(t.api, { goal: 'held', namespace: n });
    const c = await t.api('POST', `/claim?namespace=${n}&goal=run`);
    expect(c.json.id).toBe(id);
    const put = await t.api('PUT', `/admin/flow/${n}/held`, {
      admin: true,
      body: { paused: true },
    });
    expect(put.status).toBe(200);
    const r = await fulfilNext(id, c.json.claim_token, `next=1&namespace=${n}&goal=held`);
    expect(r.status).toBe(204);
    expect(r.headers.get('retry-after')).toBe('1');
    expect(r.headers.get('x-intent-done')).toBe(`${id} fulfilled`);
    expect(await statusOf(held)).toMatchObject({ status: 'open', held_by: 'paused' });
    // max_in_flight 1 over the namespace: the fulfil frees the slot its own claim takes.
    await t.api('PUT', `/admin/flow/${n}/held`, { admin: true, body: { paused: false } });
    await t.api('PUT', `/admin/flow/${n}/*`, { admin: true, body: { max_in_flight: 1 } });
    const two = await publish(t.api, { goal: 'held', namespace: n });
    const first = await t.api('POST', `/claim?namespace=${n}`);
    expect(first.json.id).toBe(held);
    expect((await t.api('POST', `/claim?namespace=${n}`)).status).toBe(204);
    const chained = await fulfilNext(held, first.json.claim_token, `next=1&namespace=${n}`);
    expect(chained.status, chained.text).toBe(200);
    expect(chained.json.id).toBe(two);
  });

  it('a quiet worker gets the command instead of a job, after the fulfil', async () => {
    const n = ns('quiet');
    const id = await publish(t.api, { goal: 'g', namespace: n });
    const other = await publish(t.api, { goal: 'g', namespace: n });
    const c = await claimIn(n, 'nx-quiet');
    expect(c.json.id).toBe(id);
    const q = await t.api('POST', '/admin/workers/nx-quiet/quiet', { admin: true });
    expect(q.status).toBe(200);
    const r = await fulfilNext(id, c.json.claim_token, `next=1&namespace=${n}`, {
      'x-worker-id': 'nx-quiet',
    });
    expect(r.status).toBe(204);
    expect(r.headers.get('x-intent-worker-command')).toBe('quiet');
    expect(r.headers.get('retry-after')).toBe('5');
    expect(r.headers.get('x-intent-done')).toBe(`${id} fulfilled`);
    expect((await statusOf(id)).status).toBe('fulfilled');
    expect((await statusOf(other)).status).toBe('open');
    await t.api('POST', '/admin/workers/nx-quiet/resume', { admin: true });
  });

  it('an error after the outcome still tells it: a key revoked while its claim waits', async () => {
    const n = ns('revoked');
    const tester = await t.newKey('nx-revoke');
    const id = await publish(t.api, { goal: 'g', namespace: n }, tester.api_key);
    const c = await t.api('POST', `/claim?namespace=${n}`, { key: tester.api_key });
    expect(c.json.id).toBe(id);
    const waiting = t.bus.hub.waiting;
    const pending = t.api('POST', `/fulfill/${id}?next=1&namespace=${n}&wait=10`, {
      key: tester.api_key,
      body: { claim_token: c.json.claim_token },
    });
    for (let i = 0; t.bus.hub.waiting <= waiting; i++) {
      if (i > 300) throw new Error('the claim never waited');
      await new Promise((r) => setTimeout(r, 10));
    }
    const revoked = await t.api('POST', '/admin/revoke_key', {
      admin: true,
      body: { key_id: tester.key_id },
    });
    expect(revoked.status).toBe(200);
    const r = await pending;
    expect(r.status).toBe(401);
    expect(errorCode(r)).toBe('unauthorized');
    expect(r.headers.get('x-intent-done')).toBe(`${id} fulfilled`);
    expect((await statusOf(id)).status).toBe('fulfilled');
  });

  it('without next (or next=0): the 2.1 answer, unknown parameters ignored', async () => {
    const n = ns('plain');
    await publish(t.api, { goal: 'g', namespace: n });
    await publish(t.api, { goal: 'g', namespace: n });
    await publish(t.api, { goal: 'g', namespace: n });
    for (const q of ['', '?next=0', '?foo=bar&namespace=other']) {
      const c = await claimIn(n);
      const r = await t.api('POST', `/fulfill/${c.json.id}${q}`, {
        body: { claim_token: c.json.claim_token },
      });
      expect(r.status, q).toBe(200);
      expect(r.text, q).toBe(`{"ok":true,"id":"${c.json.id}","status":"fulfilled"}`);
      expect(r.headers.get('x-intent-done'), q).toBeNull();
    }
    const open = await t.api('GET', `/admin/intents?namespace=${n}&status=open`, { admin: true });
    expect(open.json.items).toEqual([]);
  });
});

describe('POST /fail/<id>?next=1', () => {
  it('fails (open again to retry, or dead), then claims the next intent', async () => {
    const n = ns('fail');
    const retried = await publish(t.api, { goal: 'g', namespace: n, max_attempts: 2 });
    const next = await publish(t.api, { goal: 'g', namespace: n, max_attempts: 1 });
    const c = await claimIn(n, 'nx-fail');
    expect(c.json.id).toBe(retried);
    const r = await t.api('POST', `/fail/${retried}?next=1&namespace=${n}`, {
      body: { claim_token: c.json.claim_token, error: 'try again' },
      headers: { 'x-worker-id': 'nx-fail' },
    });
    expect(r.status, r.text).toBe(200);
    // Open again, after its backoff: not claimable now, so the next one is claimed.
    expect(r.headers.get('x-intent-done')).toBe(`${retried} open`);
    expect(r.json.id).toBe(next);
    expect(await statusOf(retried)).toMatchObject({
      status: 'open',
      error: 'try again',
      claim_attempts: 1,
    });
    const last = await t.api('POST', `/fail/${next}?next=1&namespace=${n}`, {
      body: { claim_token: r.json.claim_token, error: 'no' },
    });
    expect(last.status).toBe(204);
    expect(last.headers.get('x-intent-done')).toBe(`${next} dead`);
    expect((await statusOf(next)).status).toBe('dead');
    const plain = await t.api('POST', `/fail/${retried}`, { body: { claim_token: 'x' } });
    expect(plain.status).toBe(404);
  });
});

/** Requests the bus answered by route, from its own /metrics. */
async function served(route: string): Promise<number> {
  const r = await t.api('GET', '/metrics', { admin: true });
  const prefix = `intent_bus_http_request_duration_seconds_count{method="POST",route="${route}",`;
  return r.text
    .split('\n')
    .filter((l) => l.startsWith(prefix))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

const silent: RuntimeLogger = { info() {}, warn() {}, error() {} };

async function runJobs(
  goal: string,
  jobs: number,
  options: { concurrency: number; claimNext?: boolean; fetch?: typeof fetch },
  logger: RuntimeLogger = silent,
): Promise<{ claims: number; fulfils: number; fails: number }> {
  const client = new IntentClient({
    baseUrl: t.url,
    apiKey: MAIN_KEY,
    adminToken: ADMIN_TOKEN,
    fetch: options.fetch,
    // A request whose URL the transport rewrites cannot carry the signature of the first.
    sign: options.fetch === undefined,
  });
  const ids: string[] = [];
  for (let i = 0; i < jobs; i++) {
    // Every third job fails once (max_attempts 1: dead), so fail?next=1 is taken too.
    ids.push(await publish(t.api, { goal, payload: { i }, max_attempts: 1 }));
  }
  const before = {
    claims: await served('/claim'),
    fulfils: await served('/fulfill/:id'),
    fails: await served('/fail/:id'),
  };
  const runtime = new WorkerRuntime({
    client,
    workerId: `nx-rt-${goal}`,
    concurrency: options.concurrency,
    claimNext: options.claimNext,
    logger,
  });
  const ac = new AbortController();
  let seen = 0;
  const done = runtime.listen({
    goal,
    signal: ac.signal,
    handleSignals: false,
    waitSeconds: 1,
    handler: (job) => {
      if (++seen === jobs) setTimeout(() => ac.abort(), 50);
      if ((job.payload as { i: number }).i % 3 === 2) throw new Error('every third');
      return { i: (job.payload as { i: number }).i };
    },
  });
  const summary = await done;
  const failing = ids.filter((_, i) => i % 3 === 2).length;
  expect(summary).toMatchObject({
    claimed: jobs,
    fulfilled: jobs - failing,
    failed: failing,
    leaseLost: 0,
  });
  for (const [i, id] of ids.entries()) {
    expect((await statusOf(id)).status).toBe(i % 3 === 2 ? 'dead' : 'fulfilled');
  }
  return {
    claims: (await served('/claim')) - before.claims,
    fulfils: (await served('/fulfill/:id')) - before.fulfils,
    fails: (await served('/fail/:id')) - before.fails,
  };
}

describe('the SDK client: fulfillAndClaim and failAndClaim', () => {
  it('answers the outcome and the claim; a 404 is a lost lease; a dropped header is no 2.1 bus', async () => {
    const client = new IntentClient({ baseUrl: t.url, apiKey: MAIN_KEY });
    const n = ns('sdk');
    const a = await publish(t.api, { goal: 'g', namespace: n, payload: { big: 1 } });
    const b = await publish(t.api, { goal: 'g', namespace: n, max_attempts: 1 });
    const c = await client.claim({ namespace: n, workerId: 'nx-sdk' });
    expect(c?.id).toBe(a);
    const claim = { namespace: n, workerId: 'nx-sdk', capabilities: ['x'] };
    const r = await client.fulfillAndClaim(a, c!.claim_token, { ok: true }, claim);
    expect(r.supported).toBe(true);
    expect(r.done).toEqual({ id: a, status: 'fulfilled' });
    expect(r.next?.intent?.id).toBe(b);
    expect(r.next?.intent?.payloadText).toBe('{}');
    await expect(client.fulfillAndClaim(a, c!.claim_token, null, claim)).rejects.toMatchObject({
      name: 'LeaseLostError',
    });
    const f = await client.failAndClaim(b, r.next!.intent!.claim_token, 'no', claim);
    expect(f).toMatchObject({
      done: { id: b, status: 'dead' },
      next: { intent: null, retryAfterSeconds: 1, command: null },
      supported: true,
    });
    // A proxy that drops X-Intent-Done: the claim's answer is still taken as one.
    const stripping: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      const headers = new Headers(res.headers);
      headers.delete('x-intent-done');
      const body = res.status === 204 ? null : await res.arrayBuffer();
      return new Response(body, { status: res.status, headers });
    };
    const behind = new IntentClient({ baseUrl: t.url, apiKey: MAIN_KEY, fetch: stripping });
    const d = await publish(t.api, { goal: 'g', namespace: n });
    const e = await publish(t.api, { goal: 'g', namespace: n });
    const cd = await behind.claim({ namespace: n });
    expect(cd?.id).toBe(d);
    const got = await behind.fulfillAndClaim(d, cd!.claim_token, 1, { namespace: n });
    expect(got).toMatchObject({ done: { id: d, status: 'fulfilled' }, supported: true });
    expect(got.next?.intent?.id).toBe(e);
    const none = await behind.failAndClaim(e, got.next!.intent!.claim_token, 'x', {
      namespace: n,
    });
    expect(none).toMatchObject({ done: { id: e, status: null }, supported: true });
    expect(none.next?.intent).toBeNull();
  });
});

describe('the SDK runtime with next=1', () => {
  const JOBS = 30;

  it('runs N jobs with one request each (outcome and next claim), claims apart only to start and end', async () => {
    const n = await runJobs('nx-rt-on', JOBS, { concurrency: 3 });
    expect(n.fulfils + n.fails).toBe(JOBS);
    // The runtime claims for its free slots (one claim of up to 3 to begin with), and again
    // after a 204 (and while it waits at the end); every other job came with an outcome.
    expect(n.claims).toBeLessThanOrEqual(3 * 3);
    expect(n.claims).toBeGreaterThanOrEqual(1);
  });

  it('obeys a quiet told with the outcome, then a stop: no job taken meanwhile', async () => {
    const goal = 'nx-rt-quiet';
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await publish(t.api, { goal, payload: { i } }));
    const client = new IntentClient({ baseUrl: t.url, apiKey: MAIN_KEY });
    const claims = await served('/claim');
    const runtime = new WorkerRuntime({ client, workerId: 'nx-rt-quiet-1' });
    const ran: string[] = [];
    const done = runtime.listen({
      goal,
      handleSignals: false,
      waitSeconds: 1,
      handler: async (job) => {
        ran.push(job.id);
        // Told while the job runs: its fulfil's claim answers the command instead of a job.
        const q = await t.api('POST', '/admin/workers/nx-rt-quiet-1/quiet', { admin: true });
        expect(q.status).toBe(200);
        return null;
      },
    });
    for (let i = 0; (await statusOf(ids[0]!)).status !== 'fulfilled'; i++) {
      if (i > 300) throw new Error('the first job was not fulfilled');
      await new Promise((r) => setTimeout(r, 10));
    }
    await new Promise((r) => setTimeout(r, 300));
    expect((await statusOf(ids[1]!)).status).toBe('open');
    const stop = await t.api('POST', '/admin/workers/nx-rt-quiet-1/stop', { admin: true });
    expect(stop.status).toBe(200);
    // A quiet worker asks again every 5 s, and hears the stop then.
    const summary = await done;
    expect(summary).toMatchObject({ claimed: 1, fulfilled: 1, stoppedByBus: true });
    expect(ran).toEqual([ids[0]]);
    expect((await statusOf(ids[2]!)).status).toBe('open');
    // The first claim and the quiet worker's one question: the quiet came with the fulfil.
    expect((await served('/claim')) - claims).toBe(2);
    await t.api('POST', '/admin/workers/nx-rt-quiet-1/resume', { admin: true });
  });

  it('claimNext false: a claim per job, as before', async () => {
    // One slot: a claim brings one job (with more free slots it may bring several).
    const n = await runJobs('nx-rt-off', JOBS, { concurrency: 1, claimNext: false });
    expect(n.fulfils + n.fails).toBe(JOBS);
    expect(n.claims).toBeGreaterThanOrEqual(JOBS);
  });

  it('falls back to claiming apart when the bus answers a plain fulfil (a bus without next)', async () => {
    // A bus that ignores `next`, as a 2.1 bus does: the parameter never reaches this one.
    const dropped: string[] = [];
    const without: typeof fetch = (input, init) => {
      const url = String(input);
      if (/[?&]next=1/.test(url)) dropped.push(url);
      return fetch(
        url.replace(/\?.*$/, (q) => (q.includes('next=1') ? '' : q)),
        init,
      );
    };
    const lines: string[] = [];
    const logger: RuntimeLogger = { ...silent, info: (m) => lines.push(m) };
    const n = await runJobs(
      'nx-rt-old',
      JOBS,
      { concurrency: 1, fetch: without, claimNext: true },
      logger,
    );
    expect(n.fulfils + n.fails).toBe(JOBS);
    // Asked once, answered plainly, never asked again: a claim per job.
    expect(dropped).toHaveLength(1);
    expect(n.claims).toBeGreaterThanOrEqual(JOBS);
    expect(lines).toContain('the bus does not claim with an outcome (next=1): claiming apart');
  });
});
