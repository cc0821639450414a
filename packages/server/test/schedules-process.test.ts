/**
 * Schedules (issue 17) on real `serve` processes: one run per tick, none missing and none
 * doubled, through kill -9. Three nodes on one PostgreSQL database with one SIGKILLed in
 * the middle (just as the ticker's pass of that second begins), and one SQLite bus
 * SIGKILLed and started again on its file a few seconds later (catch_up "all" publishes
 * the ticks of the stop). And two nodes whose runs die or miss their deadlines: one alert per
 * failed run, whichever node saw the death or made the deadline pass.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { makeApi, type Api } from './helpers.js';
import { createDatabase, type TestDatabase } from './pg-database.js';
import { serverEnv, startProcess, storeFixture, type ServerProcess } from './process-helpers.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Sleeps until `offsetMs` past the next whole second (the ticker starts at +5 ms). */
const toSecondPlus = (offsetMs: number): Promise<void> =>
  sleep(1000 - (Date.now() % 1000) + offsetMs);

const running: ServerProcess[] = [];
const databases: TestDatabase[] = [];
const fixtures: Array<{ cleanup(): Promise<void> }> = [];
afterAll(async () => {
  for (const p of running) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  for (const d of databases) await d.drop();
  for (const f of fixtures) await f.cleanup();
});

const body = (goal: string) => ({
  every: 1,
  catch_up: 'all',
  intent: { goal, payload: { from: 'schedule' } },
});

/** Every intent of `goal` through the admin listing: their ticks (unix s). */
async function ticksOf(api: Api, goal: string): Promise<number[]> {
  const ticks: number[] = [];
  let cursor: string | null = null;
  do {
    const r = await api(
      'GET',
      `/admin/intents?goal=${goal}&limit=200${cursor ? `&cursor=${cursor}` : ''}`,
      { admin: true },
    );
    expect(r.status, r.text).toBe(200);
    for (const i of r.json.items as Array<{ schedule: string; scheduled_for: number }>) {
      expect(i.schedule).toBe('every-second');
      ticks.push(i.scheduled_for);
    }
    cursor = r.json.next_cursor;
  } while (cursor);
  return ticks.sort((a, b) => a - b);
}

/** One run per tick from the first tick after the schedule was made to its last tick. */
function expectEveryTickOnce(ticks: number[], createdAt: number, lastTick: number): void {
  const doubled = ticks.filter((t, i) => i > 0 && ticks[i - 1] === t);
  expect(doubled, 'ticks published twice').toEqual([]);
  const want: number[] = [];
  for (let t = Math.floor(createdAt) + 1; t <= lastTick; t++) want.push(t);
  const missing = want.filter((t) => !ticks.includes(t));
  expect(missing, 'ticks never published').toEqual([]);
  expect(ticks).toEqual(want);
}

describe('schedules on serve processes, through kill -9', () => {
  it('three nodes on PostgreSQL, one SIGKILLed midway: one intent per tick, none missing, none doubled', async () => {
    const db = await createDatabase('ib_sched');
    databases.push(db);
    const env = serverEnv('/nonexistent/unused.db', {
      BUS_DATABASE_URL: db.url,
      BUS_LOG_LEVEL: 'info',
    });
    const nodes = await Promise.all([0, 1, 2].map(() => startProcess(env)));
    running.push(...nodes);
    const [a, b, c] = nodes.map((n) => makeApi(n.url)) as [Api, Api, Api];
    const goal = 'sched.nodes';

    const put = await a('PUT', '/schedules/every-second', { body: body(goal) });
    expect(put.status, put.text).toBe(201);
    // The same body from the other nodes: nothing changes (but the ticks, which go on).
    const unticked = (text: string) => {
      const {
        last_tick: _,
        next_run_at: __,
        ...rest
      } = JSON.parse(text) as Record<string, unknown>;
      return rest;
    };
    for (const api of [b, c]) {
      const again = await api('PUT', '/schedules/every-second', { body: body(goal) });
      expect(again.status).toBe(200);
      expect(unticked(again.text)).toEqual(unticked(put.text));
    }
    await sleep(9000);
    // Just as every node's ticker starts the pass of this second.
    await toSecondPlus(6);
    nodes[1]!.child.kill('SIGKILL');
    expect((await nodes[1]!.exited).signal).toBe('SIGKILL');
    await sleep(10_000);

    const paused = await c('POST', '/schedules/every-second/pause');
    expect(paused.status).toBe(200);
    await sleep(1500); // a pass begun before the pause has ended
    const ticks = await ticksOf(a, goal);
    console.log(
      `3 nodes, node 2 SIGKILLed at ~10 s: ${ticks.length} runs, ticks ${ticks[0]}…${ticks.at(-1)}`,
    );
    expect(ticks.length).toBeGreaterThanOrEqual(18);
    expectEveryTickOnce(ticks, put.json.created_at, paused.json.last_tick);
    const detail = await a('GET', '/schedules/every-second');
    expect(detail.json.runs).toHaveLength(20);
  }, 60_000);

  it('SQLite, SIGKILLed and started again on its file: the ticks of the stop are published once each', async () => {
    const fixture = storeFixture('sqlite');
    fixtures.push(fixture);
    const first = await fixture.start({ BUS_LOG_LEVEL: 'info' });
    const goal = 'sched.sqlite';
    const put = await makeApi(first.url)('PUT', '/schedules/every-second', { body: body(goal) });
    expect(put.status, put.text).toBe(201);
    await sleep(4000);
    await toSecondPlus(6);
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    await sleep(3000); // three ticks with no bus

    const second = await fixture.start({ BUS_LOG_LEVEL: 'info' });
    const api = makeApi(second.url);
    await sleep(4000);
    const paused = await api('POST', '/schedules/every-second/pause');
    expect(paused.status).toBe(200);
    await sleep(1500);
    const ticks = await ticksOf(api, goal);
    console.log(
      `SQLite, SIGKILLed for 3 s: ${ticks.length} runs, ticks ${ticks[0]}…${ticks.at(-1)}`,
    );
    expect(ticks.length).toBeGreaterThanOrEqual(10);
    expectEveryTickOnce(ticks, put.json.created_at, paused.json.last_tick);
  }, 60_000);

  it('two nodes on PostgreSQL: each run that dies or misses its deadline has one alert, none twice', async () => {
    const db = await createDatabase('ib_alerts');
    databases.push(db);
    const env = serverEnv('/nonexistent/unused.db', {
      BUS_DATABASE_URL: db.url,
      BUS_LOG_LEVEL: 'info',
    });
    const nodes = await Promise.all([0, 1].map(() => startProcess(env)));
    running.push(...nodes);
    const [a, b] = nodes.map((n) => makeApi(n.url)) as [Api, Api];
    const onFailure = { goal: 'mn.alert', payload: { to: 'ops' } };
    // Runs a worker fails (one attempt: they die), and runs nobody takes (missed).
    const work = await a('PUT', '/schedules/work', {
      body: {
        every: 1,
        catch_up: 'all',
        intent: { goal: 'mn.work', payload: {}, max_attempts: 1 },
        on_failure: onFailure,
      },
    });
    expect(work.status, work.text).toBe(201);
    const idle = await b('PUT', '/schedules/idle', {
      body: {
        every: 1,
        catch_up: 'all',
        deadline: 1,
        intent: { goal: 'mn.nobody', payload: {} },
        on_failure: onFailure,
      },
    });
    expect(idle.status, idle.text).toBe(201);
    // The worker claims on one node and fails on the other, turn by turn.
    const dead = new Set<string>();
    const until = Date.now() + 6000;
    for (let turn = 0; Date.now() < until; turn++) {
      const [claimOn, failOn] = turn % 2 === 0 ? [a, b] : [b, a];
      const c = await claimOn('POST', '/claim?goal=mn.work&wait=1');
      if (c.status !== 200) continue;
      const f = await failOn('POST', `/fail/${c.json.id}`, {
        body: { claim_token: c.json.claim_token, error: `failed on turn ${turn}` },
      });
      expect(f.json.status, f.text).toBe('dead');
      dead.add(c.json.id);
    }
    for (const name of ['work', 'idle']) {
      expect((await a('POST', `/schedules/${name}/pause`)).status).toBe(200);
    }
    // The last idle runs pass their deadline; the last work run is claimed and failed.
    for (;;) {
      const c = await b('POST', '/claim?goal=mn.work&wait=1');
      if (c.status !== 200) break;
      await a('POST', `/fail/${c.json.id}`, {
        body: { claim_token: c.json.claim_token, error: 'last' },
      });
      dead.add(c.json.id);
    }
    await sleep(3500);

    const runsOf = async (name: string) =>
      (await a('GET', `/schedules/${name}`)).json.runs as Array<{ id: string; outcome: string }>;
    const idleRuns = await runsOf('idle');
    expect(idleRuns.length).toBeGreaterThanOrEqual(5);
    expect(idleRuns.every((r) => r.outcome === 'missed')).toBe(true);
    const workRuns = await runsOf('work');
    expect(new Set(workRuns.map((r) => r.id))).toEqual(dead);
    expect(workRuns.every((r) => r.outcome === 'dead')).toBe(true);

    const listed = await a('GET', '/admin/intents?goal=mn.alert&limit=200', { admin: true });
    const alerts: Array<{ schedule: string; run: { id: string }; reason: string; to: string }> = [];
    for (const item of listed.json.items as Array<{ id: string }>) {
      alerts.push((await b('GET', `/admin/intents/${item.id}`, { admin: true })).json.payload);
    }
    const alerted = alerts.map((p) => p.run.id);
    expect(
      alerted.filter((id, i) => alerted.indexOf(id) !== i),
      'alerted twice',
    ).toEqual([]);
    expect(new Set(alerted)).toEqual(new Set([...dead, ...idleRuns.map((r) => r.id)]));
    for (const p of alerts) {
      expect(p.to).toBe('ops');
      expect(p.reason).toBe(p.schedule === 'work' ? 'dead' : 'missed');
    }
    console.log(
      `2 nodes: ${dead.size} runs died, ${idleRuns.length} missed, ${alerts.length} alerts`,
    );
  }, 60_000);
});
