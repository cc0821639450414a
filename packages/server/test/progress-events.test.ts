/**
 * Progress and the event stream (issue 20), on the store the project runs them on: a
 * progress report extends the lease, the per-intent write limit keeps the latest value,
 * the stream carries every change of a run in order, resumes with Last-Event-ID inside the
 * window, announces a gap beyond it, hides other keys' intents, cuts a slow reader and caps
 * the streams of a key.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MAIN_KEY, errorCode, publish, startTestBus, type TestBus } from './helpers.js';
import { SseClient } from './sse-client.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let bus: TestBus | null = null;
const clients: SseClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await bus?.close();
  bus = null;
});

async function open(url: string, key = MAIN_KEY, headers: Record<string, string> = {}) {
  const c = await SseClient.open(url, key, headers);
  clients.push(c);
  return c;
}

describe('progress', () => {
  it('is a heartbeat: a job longer than its lease, reporting progress, is fulfilled once', async () => {
    bus = await startTestBus({ env: { BUS_CLAIM_TIMEOUT_SECONDS: '2' } });
    const { api } = bus;
    const id = await publish(api, { goal: 'pr.long' });
    const claimed = await api('POST', '/claim?goal=pr.long');
    const token = claimed.json.claim_token as string;
    // 5 s of work on a 2 s lease, a report every 600 ms.
    for (let i = 1; i <= 8; i++) {
      await sleep(600);
      const r = await api('POST', `/progress/${id}`, {
        body: { claim_token: token, percent: i * 10, message: `step ${i}`, data: { n: i } },
      });
      expect(r.status, r.text).toBe(200);
    }
    // The sweeper ran meanwhile: nobody else got the intent.
    expect((await api('POST', '/claim?goal=pr.long')).status).toBe(204);
    const f = await api('POST', `/fulfill/${id}`, { body: { claim_token: token, result: 1 } });
    expect(f.status).toBe(200);
    const st = await api('GET', `/status/${id}`);
    expect(st.json).toMatchObject({ status: 'fulfilled', claim_attempts: 1 });
    // The last report is the one kept, even if it was held for the end of its second.
    expect(st.json.progress).toMatchObject({ percent: 80, message: 'step 8', data: { n: 8 } });
  }, 20_000);

  it('without reports the same lease is lost', async () => {
    bus = await startTestBus({ env: { BUS_CLAIM_TIMEOUT_SECONDS: '2' } });
    const { api } = bus;
    const id = await publish(api, { goal: 'pr.lost' });
    const token = (await api('POST', '/claim?goal=pr.lost')).json.claim_token as string;
    await sleep(3500);
    const r = await api('POST', `/progress/${id}`, { body: { claim_token: token, percent: 1 } });
    expect(r.status).toBe(404);
    expect(errorCode(r)).toBe('not_found');
  });

  it('writes at most once per intent per second and keeps the latest value', async () => {
    bus = await startTestBus();
    const { api } = bus;
    const id = await publish(api, { goal: 'pr.rate' });
    const token = (await api('POST', '/claim?goal=pr.rate')).json.claim_token as string;
    const stream = await open(`${bus.url}/events?id=${id}`);
    const held: boolean[] = [];
    for (let i = 1; i <= 20; i++) {
      // Sent as text: the number is not a double's.
      const r = await api('POST', `/progress/${id}`, {
        raw: `{"claim_token":"${token}","percent":${i},"data":{"big":12345678901234567890}}`,
        headers: { 'content-type': 'application/json' },
      });
      expect(r.status).toBe(200);
      held.push(r.json.held as boolean);
    }
    expect(held[0]).toBe(false);
    expect(held.slice(1).every(Boolean)).toBe(true);
    // The held report is written when the second ends.
    await stream.until((r) =>
      r.some((x) => x.event === 'progress' && x.data.progress.percent === 20),
    );
    const writes = stream.records.filter((x) => x.event === 'progress');
    expect(writes.length).toBe(2);
    const st = await api('GET', `/status/${id}`);
    expect(st.json.progress.percent).toBe(20);
    // The data exactly as sent.
    expect(st.text).toContain('"data":{"big":12345678901234567890}');
  });

  it('holds no report for an intent cancelled within the second: the next one is 404', async () => {
    bus = await startTestBus();
    const { api } = bus;
    const id = await publish(api, { goal: 'pr.cancel' });
    const token = (await api('POST', '/claim?goal=pr.cancel')).json.claim_token as string;
    const report = () => api('POST', `/progress/${id}`, { body: { claim_token: token } });
    expect((await report()).json.held).toBe(false);
    expect((await report()).json.held).toBe(true);
    expect((await api('POST', `/admin/intents/${id}/cancel`, { admin: true })).status).toBe(200);
    const after = await report();
    expect(after.status).toBe(404);
    expect(errorCode(after)).toBe('not_found');
    expect((await api('GET', `/status/${id}`)).json.status).toBe('dead');
  });

  it('refuses bad progress with clear 4xx', async () => {
    bus = await startTestBus();
    const { api } = bus;
    const id = await publish(api, { goal: 'pr.bad' });
    const token = (await api('POST', '/claim?goal=pr.bad')).json.claim_token as string;
    for (const body of [
      { claim_token: token, percent: 101 },
      { claim_token: token, message: 'x'.repeat(201) },
      { claim_token: token, data: 'y'.repeat(1100) },
      { percent: 1 },
    ]) {
      const r = await api('POST', `/progress/${id}`, { body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(errorCode(r)).toBe('invalid_request');
    }
    const stale = await api('POST', `/progress/${id}`, { body: { claim_token: 'nope' } });
    expect(stale.status).toBe(404);
  });
});

describe('GET /events', () => {
  it('carries every change of a run, in order, with ids', async () => {
    bus = await startTestBus();
    const { api } = bus;
    const s = await open(`${bus.url}/events?namespace=ev`);
    expect(s.status).toBe(200);
    expect(s.res!.headers['content-type']).toContain('text/event-stream');
    const id = await publish(api, { goal: 'ev.g', namespace: 'ev', max_attempts: 3 });
    await publish(api, { goal: 'other', namespace: 'elsewhere' });
    let token = (await api('POST', '/claim?namespace=ev')).json.claim_token as string;
    await api('POST', `/progress/${id}`, { body: { claim_token: token, percent: 50 } });
    await api('POST', `/fail/${id}`, { body: { claim_token: token, error: 'boom' } });
    await api('POST', `/admin/intents/${id}/retry`, { admin: true });
    token = (await api('POST', '/claim?namespace=ev')).json.claim_token as string;
    await api('POST', `/fulfill/${id}`, { body: { claim_token: token, result: 'ok' } });
    const types = ['published', 'claimed', 'progress', 'failed', 'retried', 'claimed', 'fulfilled'];
    const recs = await s.until((r) => r.length >= types.length);
    expect(recs.map((r) => r.event)).toEqual(types);
    expect(recs.every((r) => r.data.id === id && r.data.namespace === 'ev')).toBe(true);
    expect(recs[2]!.data.progress).toMatchObject({ percent: 50, message: null, data: null });
    const seqs = recs.map((r) => Number(r.id!.split('-')[1]));
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    // Cancel and dead.
    const id2 = await publish(api, { goal: 'ev.g', namespace: 'ev' });
    await api('POST', `/admin/intents/${id2}/cancel`, { admin: true });
    const more = await s.until((r) => r.length >= types.length + 2);
    expect(more.slice(-2).map((r) => r.event)).toEqual(['published', 'cancelled']);
    expect(more.at(-1)!.data).toMatchObject({ status: 'dead', dead_reason: 'cancelled' });
  });

  it('resumes with Last-Event-ID losing nothing, and announces a gap beyond the window', async () => {
    bus = await startTestBus({ env: { BUS_EVENT_WINDOW: '5' } });
    const { api } = bus;
    const s = await open(`${bus.url}/events`);
    await publish(api, { goal: 'rs.a' });
    const [first] = await s.until((r) => r.length >= 1);
    s.close();
    const ids = [await publish(api, { goal: 'rs.b' }), await publish(api, { goal: 'rs.c' })];
    const again = await open(`${bus.url}/events`, MAIN_KEY, { 'last-event-id': first!.id! });
    const recs = await again.until((r) => r.length >= 2);
    expect(recs.map((r) => r.data.id)).toEqual(ids);
    // Six more: the first id is out of the window of five.
    for (let i = 0; i < 6; i++) await publish(api, { goal: 'rs.d' });
    const late = await open(`${bus.url}/events`, MAIN_KEY, { 'last-event-id': first!.id! });
    const gap = await late.until((r) => r.length >= 1);
    expect(gap[0]!.event).toBe('gap');
    const foreign = await open(`${bus.url}/events?last_event_id=ffffffff-3`);
    expect((await foreign.until((r) => r.length >= 1))[0]!.event).toBe('gap');
  });

  it("never shows a tester key another key's intents", async () => {
    bus = await startTestBus();
    const { api } = bus;
    const alice = (await bus.newKey('alice')).api_key;
    const bob = (await bus.newKey('bob')).api_key;
    const sa = await open(`${bus.url}/events`, alice);
    const sm = await open(`${bus.url}/events`);
    const mine = await publish(api, { goal: 'iso.g' }, alice);
    const theirs = await publish(api, { goal: 'iso.g' }, bob);
    const pub = await publish(api, { goal: 'iso.p', visibility: 'public' }, bob);
    // Alice claims Bob's public intent: from then on she sees its changes (as /status).
    const c = await api('POST', '/claim?goal=iso.p', { key: alice });
    expect(c.json.id).toBe(pub);
    await sm.until((r) => r.length >= 4);
    await sleep(200);
    expect(sa.records.map((r) => [r.event, r.data.id])).toEqual([
      ['published', mine],
      ['claimed', pub],
    ]);
    expect(sa.records.some((r) => r.data.id === theirs)).toBe(false);
    // Filtering by another key's intent id shows nothing of it either.
    const byId = await open(`${bus.url}/events?id=${theirs}`, alice);
    await api('POST', `/admin/intents/${theirs}/cancel`, { admin: true });
    await sm.until((r) => r.length >= 5);
    await sleep(200);
    expect(byId.records).toEqual([]);
  });

  it('caps the streams of a key with 429 too_many_streams', async () => {
    bus = await startTestBus({ env: { BUS_MAX_STREAMS_PER_KEY: '2' } });
    const key = (await bus.newKey('capped')).api_key;
    await open(`${bus.url}/events`, key);
    await open(`${bus.url}/events`, key);
    const r = await bus.api('GET', '/events', { key });
    expect(r.status).toBe(429);
    expect(errorCode(r)).toBe('too_many_streams');
    expect(bus.bus.streams.connections).toBe(2);
  });

  it("ends a revoked key's streams", async () => {
    bus = await startTestBus();
    const k = await bus.newKey('gone');
    const s = await open(`${bus.url}/events`, k.api_key);
    expect(bus.bus.streams.connections).toBe(1);
    const r = await bus.api('POST', '/admin/revoke_key', {
      admin: true,
      body: { key_id: k.key_id },
    });
    expect(r.status).toBe(200);
    await s.until(() => s.ended);
    expect(bus.bus.streams.connections).toBe(0);
    expect((await bus.api('GET', '/events', { key: k.api_key })).status).toBe(401);
  });

  it('cuts a slow reader with a last event saying why', async () => {
    bus = await startTestBus({ env: { BUS_STREAM_BUFFER_BYTES: '65536' } });
    const s = await open(`${bus.url}/events`);
    s.res!.pause(); // reads nothing from now on
    const id = await publish(bus.api, { goal: 'slow.g' });
    const row = await bus.bus.store.intentGet(id);
    // Events enough to fill the socket's buffers: each carries 1 KB of progress data.
    const data = JSON.stringify('z'.repeat(1000));
    for (let i = 0; i < 20_000 && bus.bus.streams.connections > 0; i++) {
      bus.bus.streams.push({
        type: 'progress',
        id,
        namespace: row!.namespace,
        goal: row!.goal,
        status: 'claimed',
        attempts: 1,
        at: Date.now(),
        publisher: row!.publisher,
        claimer: null,
        deadReason: null,
        progress: { percent: 1, message: null, data, at: Date.now() },
      });
      if (i % 500 === 0) await sleep(1);
    }
    expect(bus.bus.streams.connections).toBe(0);
    s.res!.resume();
    await s.until(() => s.ended, 10_000);
    expect(s.records.at(-1)).toMatchObject({ event: 'cut', data: { reason: 'slow_reader' } });
  });
});
