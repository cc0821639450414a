/**
 * The event stream on two PostgreSQL nodes (issue 20): a run published on A, claimed,
 * reported and fulfilled on B, is seen whole and in order by a stream on A (the events
 * cross nodes through the wake relay's NOTIFY); a tester key's stream on A shows nothing
 * of another key's intent changed on B. A purge on A ends a result wait on B at once (the
 * relay's resync).
 */
import { performance } from 'node:perf_hooks';
import { afterAll, describe, expect, it } from 'vitest';
import { MAIN_KEY } from './helpers.js';
import { twoNodes } from './process-helpers.js';
import { SseClient } from './sse-client.js';

const cluster = twoNodes('ib_events');
const clients: SseClient[] = [];

afterAll(() => {
  for (const c of clients) c.close();
});

describe('GET /events on two PostgreSQL nodes', () => {
  it('a stream on A sees every change made on B, in order', async () => {
    const s = await SseClient.open(`${cluster.urls[0]}/events?goal=nodes.ev`, MAIN_KEY);
    clients.push(s);
    const p = await cluster.a('POST', '/intent', { body: { goal: 'nodes.ev', payload: {} } });
    expect(p.status).toBe(201);
    const id = p.json.id as string;
    await s.until((r) => r.length >= 1);
    const c = await cluster.b('POST', '/claim?goal=nodes.ev');
    expect(c.json.id).toBe(id);
    const token = c.json.claim_token as string;
    const pr = await cluster.b('POST', `/progress/${id}`, {
      body: { claim_token: token, percent: 40, message: 'on B', data: [1, 2] },
    });
    expect(pr.status).toBe(200);
    expect(
      (await cluster.b('POST', `/fulfill/${id}`, { body: { claim_token: token } })).status,
    ).toBe(200);
    const recs = await s.until((r) => r.length >= 4);
    expect(recs.map((r) => r.event)).toEqual(['published', 'claimed', 'progress', 'fulfilled']);
    expect(recs.every((r) => r.data.id === id)).toBe(true);
    expect(recs[2]!.data.progress).toMatchObject({ percent: 40, message: 'on B', data: [1, 2] });
    // The ids are A's, in the order A learnt them.
    const seqs = recs.map((r) => Number(r.id!.split('-')[1]));
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(new Set(recs.map((r) => r.id!.split('-')[0])).size).toBe(1);
  });

  it("a tester key's stream on A shows nothing of another key's intent changed on B", async () => {
    const key = async (owner: string): Promise<string> => {
      const r = await cluster.a('POST', '/admin/generate_key', { admin: true, body: { owner } });
      return r.json.api_key as string;
    };
    const alice = await key('alice');
    const bob = await key('bob');
    const sa = await SseClient.open(`${cluster.urls[0]}/events?goal=nodes.iso`, alice);
    const sm = await SseClient.open(`${cluster.urls[0]}/events?goal=nodes.iso`, MAIN_KEY);
    clients.push(sa, sm);
    const theirs = await cluster.b('POST', '/intent', {
      key: bob,
      body: { goal: 'nodes.iso', payload: {} },
    });
    const mine = await cluster.b('POST', '/intent', {
      key: alice,
      body: { goal: 'nodes.iso', payload: {} },
    });
    await sm.until((r) => r.length >= 2);
    await sa.until((r) => r.length >= 1);
    await new Promise((r) => setTimeout(r, 300));
    expect(sa.records.map((r) => r.data.id)).toEqual([mine.json.id]);
    expect(sm.records.map((r) => r.data.id)).toEqual([theirs.json.id, mine.json.id]);
  });
});

describe('a purge on two PostgreSQL nodes', () => {
  it('a purge on A ends a result wait on B at once', async () => {
    const p = await cluster.a('POST', '/intent', {
      body: { goal: 'g', namespace: 'nodes-purge', payload: {} },
    });
    expect(p.status).toBe(201);
    const started = performance.now();
    const waiting = cluster.b('GET', `/result/${p.json.id as string}?wait=25`);
    await new Promise((r) => setTimeout(r, 300));
    const r = await cluster.a('POST', '/admin/purge', {
      admin: true,
      body: { confirm: true, namespace: 'nodes-purge' },
    });
    expect(r.status, r.text).toBe(200);
    expect((await waiting).status).toBe(404);
    expect(performance.now() - started).toBeLessThan(10_000);
  });
});
