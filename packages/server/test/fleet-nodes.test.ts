/**
 * The fleet on several nodes (issue 18): two `serve` processes on one PostgreSQL database.
 * A worker seen by one node is listed by the other (the registry is written through to the
 * store in batches), counts seen on both add up, and a quiet given through one node reaches
 * a worker long-polling on the other within about a second; a fulfil?next=1 waiting on one
 * node is woken by a publish and by a quiet given on the other (issue 21).
 */
import { performance } from 'node:perf_hooks';
import { beforeAll, describe, expect, it } from 'vitest';
import type { WorkerInfo } from '@intent-bus/protocol';
import type { Api } from './helpers.js';
import { twoNodes } from './process-helpers.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const cluster = twoNodes('ib_fleet');
let a: Api;
let b: Api;
beforeAll(() => void ({ a, b } = cluster));

const worker = (id: string) => ({ 'x-worker-id': id, 'x-worker-capabilities': 'gpu' });

/** The worker `id` as `api` lists it, once `done` holds (or after 6 s). */
async function listedBy(
  api: Api,
  id: string,
  done: (w: WorkerInfo | undefined) => boolean,
): Promise<WorkerInfo | undefined> {
  const until = performance.now() + 6000;
  for (;;) {
    const r = await api('GET', '/workers');
    expect(r.status).toBe(200);
    const w = (r.json.workers as WorkerInfo[]).find((x) => x.worker_id === id);
    if (done(w) || performance.now() > until) return w;
    await sleep(100);
  }
}

describe('the fleet on two PostgreSQL nodes', () => {
  it('lists on B a worker seen only by A, with the counts of both', async () => {
    expect((await a('POST', '/claim?goal=fl.g', { headers: worker('pi-a') })).status).toBe(204);
    const onB = await listedBy(b, 'pi-a', (w) => w !== undefined);
    expect(onB).toMatchObject({ worker_id: 'pi-a', status: 'online', capabilities: ['gpu'] });
    // A job fulfilled through A and one through B: B lists both.
    for (const api of [a, b]) {
      const p = await api('POST', '/intent', { body: { goal: 'fl.g', payload: {} } });
      expect(p.status).toBe(201);
      const c = await api('POST', '/claim?goal=fl.g', { headers: worker('pi-a') });
      expect(c.status).toBe(200);
      const f = await api('POST', `/fulfill/${c.json.id}`, {
        body: { claim_token: c.json.claim_token },
      });
      expect(f.status).toBe(200);
    }
    const both = await listedBy(b, 'pi-a', (w) => w?.fulfilled === 2);
    expect(both?.fulfilled).toBe(2);
    // A hears of B's count at B's next flush (every 2 s): within the wait, not at once.
    const onA = await listedBy(a, 'pi-a', (w) => w?.fulfilled === 2);
    expect(onA?.fulfilled).toBe(2);
  });

  it('a quiet given through A ends a long poll of the worker waiting on B, and B tells it so', async () => {
    expect((await b('POST', '/claim?goal=fl.q', { headers: worker('phone-b') })).status).toBe(204);
    await listedBy(a, 'phone-b', (w) => w !== undefined);
    const started = performance.now();
    const waiting = b('POST', '/claim?goal=fl.q&wait=25', { headers: worker('phone-b') });
    await sleep(300);
    const q = await a('POST', '/admin/workers/phone-b/quiet', { admin: true });
    expect(q.status, q.text).toBe(200);
    const told = performance.now();
    const ended = await waiting;
    expect(ended.status).toBe(204);
    expect(ended.headers.get('x-intent-worker-command')).toBe('quiet');
    // B reads the commands every 500 ms: well within the 25 s wait.
    expect(performance.now() - told).toBeLessThan(3000);
    expect(performance.now() - started).toBeLessThan(10_000);
    // An intent published on A is not claimed by it through B.
    await a('POST', '/intent', { body: { goal: 'fl.q', payload: {} } });
    const again = await b('POST', '/claim?goal=fl.q', { headers: worker('phone-b') });
    expect(again.status).toBe(204);
    expect(again.headers.get('x-intent-worker-command')).toBe('quiet');
    // Resumed through B, it claims through A.
    expect((await b('POST', '/admin/workers/phone-b/resume', { admin: true })).status).toBe(200);
    let claimed = 0;
    for (let i = 0; i < 30 && claimed !== 200; i++) {
      claimed = (await a('POST', '/claim?goal=fl.q', { headers: worker('phone-b') })).status;
      if (claimed !== 200) await sleep(100);
    }
    expect(claimed).toBe(200);
    expect((await listedBy(b, 'phone-b', (w) => w?.command === null))?.command).toBeNull();
  });
  it('a fulfil?next=1 waiting on A takes a job published on B; a quiet given through B ends the next (issue 21)', async () => {
    const first = await a('POST', '/intent', { body: { goal: 'fl.next', payload: {} } });
    const c = await a('POST', '/claim?goal=fl.next', { headers: worker('pi-next') });
    expect(c.json.id).toBe(first.json.id);
    const fulfilNext = (id: string, token: string) =>
      a('POST', `/fulfill/${id}?next=1&goal=fl.next&wait=20`, {
        headers: worker('pi-next'),
        body: { claim_token: token },
      });
    const pending = fulfilNext(c.json.id, c.json.claim_token);
    await sleep(300);
    const second = await b('POST', '/intent', { body: { goal: 'fl.next', payload: { n: 2 } } });
    const r = await pending;
    expect(r.status, r.text).toBe(200);
    expect(r.json.id).toBe(second.json.id);
    expect(r.headers.get('x-intent-done')).toBe(`${first.json.id} fulfilled`);
    await listedBy(b, 'pi-next', (w) => w !== undefined);
    const started = performance.now();
    const waiting = fulfilNext(r.json.id, r.json.claim_token);
    await sleep(300);
    const q = await b('POST', '/admin/workers/pi-next/quiet', { admin: true });
    expect(q.status, q.text).toBe(200);
    const ended = await waiting;
    expect(ended.status).toBe(204);
    expect(ended.headers.get('x-intent-worker-command')).toBe('quiet');
    expect(ended.headers.get('x-intent-done')).toBe(`${second.json.id} fulfilled`);
    expect(performance.now() - started).toBeLessThan(10_000);
    expect((await b('POST', '/admin/workers/pi-next/resume', { admin: true })).status).toBe(200);
  });
});
