/**
 * Several `serve` processes on one PostgreSQL database: one bus. A long poll on one node
 * is woken by a publish on another; three nodes under 60 workers lose nothing when one is
 * SIGKILLed halfway; and a database restart mid-run gives 503s, then service again, with
 * nothing lost. Each test has a database (or a whole private cluster) of its own.
 */
import { performance } from 'node:perf_hooks';
import { afterAll, describe, expect, it } from 'vitest';
import { makeApi, type Api } from './helpers.js';
import { createDatabase, PrivateCluster, pgAdmin, type TestDatabase } from './pg-database.js';
import {
  expectUnavailable,
  serverEnv,
  startProcess,
  type ServerProcess,
} from './process-helpers.js';
import { violations } from './reliability/history.js';
import { Load } from './reliability/load.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const LEASE_SECONDS = 2;

const running: ServerProcess[] = [];
const databases: TestDatabase[] = [];
afterAll(async () => {
  for (const p of running) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  for (const d of databases) await d.drop();
});

async function startNodes(url: string, n: number): Promise<ServerProcess[]> {
  const env = serverEnv('/nonexistent/unused.db', {
    BUS_DATABASE_URL: url,
    BUS_LOG_LEVEL: 'info',
    BUS_CLAIM_TIMEOUT_SECONDS: String(LEASE_SECONDS),
  });
  // Started together: the migrations run once, under their lock.
  const nodes = await Promise.all(Array.from({ length: n }, () => startProcess(env)));
  running.push(...nodes);
  return nodes;
}

/** Ms from a publish on `from` (answered 201) to the claim waiting on `to` answering. */
async function crossNodeClaim(from: Api, to: Api, goal: string): Promise<number> {
  const waiting = to('POST', `/claim?goal=${goal}&wait=10`);
  await sleep(300); // the claim is waiting on its node
  const published = await from('POST', '/intent', { body: { goal, payload: {} } });
  expect(published.status).toBe(201);
  const at = performance.now();
  const claimed = await waiting;
  const ms = performance.now() - at;
  expect(claimed.status).toBe(200);
  expect(claimed.json.id).toBe(published.json.id);
  return ms;
}

describe('several nodes on one PostgreSQL database', () => {
  it('wakes a long poll on one node with a publish on another, and a result wait too', async () => {
    const db = await createDatabase('ib_nodes');
    databases.push(db);
    const [a, b] = await startNodes(db.url, 2);
    const apiA = makeApi(a!.url);
    const apiB = makeApi(b!.url);
    expect((await apiA('GET', '/health')).json).toMatchObject({ wake_relay: 'listening' });

    const ms = [
      await crossNodeClaim(apiA, apiB, 'nodes.now'),
      await crossNodeClaim(apiB, apiA, 'nodes.now'),
    ];
    console.log(
      `cross-node long poll: publish on one node → claim on the other in ${ms.map((m) => m.toFixed(1)).join(', ')} ms`,
    );
    for (const m of ms) expect(m).toBeLessThan(1000);

    // A delayed intent published on A wakes a claim waiting on B when it comes due.
    const waiting = apiB('POST', '/claim?goal=nodes.later&wait=10');
    await sleep(300);
    const p = await apiA('POST', '/intent', {
      body: { goal: 'nodes.later', payload: {}, delay: 1 },
    });
    const t0 = performance.now();
    const c = await waiting;
    expect(c.status).toBe(200);
    expect(c.json.id).toBe(p.json.id);
    expect(performance.now() - t0).toBeLessThan(2500);

    // A result wait on A ends when B fulfils.
    const result = apiA('GET', `/result/${p.json.id}?wait=10`);
    await sleep(300);
    const f = await apiB('POST', `/fulfill/${p.json.id}`, {
      body: { claim_token: c.json.claim_token, result: 'done' },
    });
    expect(f.status).toBe(200);
    const t1 = performance.now();
    expect((await result).json).toMatchObject({ status: 'fulfilled', result: 'done' });
    expect(performance.now() - t1).toBeLessThan(1000);
  });

  it('three nodes, 60 workers, 5,000 intents, one node SIGKILLed halfway: every intent fulfilled exactly once', async () => {
    const db = await createDatabase('ib_nodes');
    databases.push(db);
    const nodes = await startNodes(db.url, 3);
    const alive = (i: number): string | null =>
      nodes[i]!.child.exitCode === null && nodes[i]!.child.signalCode === null
        ? nodes[i]!.url
        : null;
    const load = new Load({
      node: alive,
      nodes: 3,
      publishers: 6,
      workers: 60,
      goal: 'nodes.kill',
      maxPublished: 5000,
    });
    const deadline = performance.now() + 90_000;
    while (load.fulfilled < 2500) {
      if (performance.now() > deadline) throw new Error(`only ${load.fulfilled} fulfilled in time`);
      await sleep(50);
    }
    const claimsBefore = load.history.claims.length;
    nodes[1]!.child.kill('SIGKILL');
    expect((await nodes[1]!.exited).signal).toBe('SIGKILL');

    while (load.history.acknowledged.size < 5000) {
      if (performance.now() > deadline) throw new Error('not all published in time');
      await sleep(50);
    }
    const verdict = await load.drain(90_000);
    console.log(load.summary('3 nodes, 60 workers, node 2 SIGKILLed halfway', verdict));
    expect(load.refusals).toEqual([]);
    expect(verdict.checked).toBeGreaterThanOrEqual(5000);
    expect(verdict.fulfilled).toBe(verdict.checked);
    expect(load.history.claims.length).toBeGreaterThan(claimsBefore);
    expect(violations(verdict), load.detail(verdict)).toBe(0);
  }, 180_000);

  it('answers 503 while the database restarts, serves again by itself, and loses nothing', async () => {
    const cluster = new PrivateCluster();
    try {
      await cluster.init();
      await pgAdmin('CREATE DATABASE bus', cluster.url());
      const nodes = await startNodes(cluster.url('bus'), 2);
      const apis = nodes.map((n) => makeApi(n.url));
      const load = new Load({
        node: (i) => nodes[i]!.url,
        nodes: 2,
        publishers: 4,
        workers: 20,
        goal: 'nodes.restart',
      });
      await sleep(1500);
      const before = load.history.acknowledged.size;
      cluster.stop('fast');
      await sleep(300);
      for (const api of apis) await expectUnavailable(api, 'nodes.restart');
      await sleep(2000);
      cluster.start();
      // Both nodes serve again by themselves, and hear each other again.
      const deadline = performance.now() + 20_000;
      for (const api of apis) {
        for (;;) {
          const h = await api('GET', '/health');
          if (h.status === 200 && h.json.wake_relay === 'listening') break;
          if (performance.now() > deadline) throw new Error(`not recovered: ${h.text}`);
          await sleep(100);
        }
      }
      for (const n of nodes) expect(n.child.exitCode).toBeNull();
      await sleep(1500); // more load after the restart
      const verdict = await load.drain(60_000);
      console.log(load.summary('2 nodes, database restarted mid-run', verdict));
      expect(load.unavailable).toBeGreaterThan(0);
      expect(verdict.checked).toBeGreaterThan(before);
      expect(load.refusals).toEqual([]);
      expect(violations(verdict), load.detail(verdict)).toBe(0);
      const ms = await crossNodeClaim(apis[0]!, apis[1]!, 'nodes.after');
      expect(ms).toBeLessThan(1000);
    } finally {
      for (const n of running) if (n.child.exitCode === null) n.child.kill('SIGKILL');
      cluster.destroy();
    }
  }, 120_000);
});
