/**
 * Schedules (issue 17) over HTTP, on both stores (the server-pg project runs this file on
 * PostgreSQL): the API and its errors, a declarative PUT, isolation between keys, pause,
 * resume and trigger, overlap "skip" with a worker, catch-up after a stop under each policy
 * (a manual clock, the bus restarted on the same data), and the runs' status fields.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, startTestBus, type Api, type ApiResponse, type TestBus } from './helpers.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function expectError(r: ApiResponse, status: number, code: string, field?: string): void {
  expect(r.status, r.text).toBe(status);
  expect(errorCode(r)).toBe(code);
  if (field !== undefined) {
    expect(r.json.error.field, r.text).toBe(field);
    expect(r.json.error.message, r.text).toContain(field);
  }
}

/** Polls `f` until it returns a value other than undefined, or fails after `ms`. */
async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 8000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const every = (seconds: number, over: Record<string, unknown> = {}) => ({
  every: seconds,
  intent: { goal: 'sched.job', payload: { n: 1 } },
  ...over,
});

const runsOf = async (api: Api, name: string, key?: string) => {
  const r = await api('GET', `/schedules/${encodeURIComponent(name)}`, { key });
  expect(r.status, r.text).toBe(200);
  return r.json.runs as Array<{ id: string; scheduled_for: number; status: string }>;
};

describe('schedules: the API', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  it('creates (201), answers the same body again with 200 and changes nothing, replaces (200)', async () => {
    const body = {
      cron: '0 3 * * *',
      timezone: 'Europe/Berlin',
      intent: { goal: 'backup', payload: { big: 'BIG', f: 1 }, priority: 7 },
      overlap: 'skip',
      catch_up: 'all',
    };
    // A payload no double holds, as text: it must be kept exactly.
    const raw = JSON.stringify(body).replace('"BIG"', '12345678901234567890');
    const put = (text: string) =>
      t.api('PUT', '/schedules/nightly', {
        raw: text,
        headers: { 'content-type': 'application/json' },
      });
    const created = await put(raw);
    expect(created.status, created.text).toBe(201);
    expect(created.json).toMatchObject({
      name: 'nightly',
      cron: '0 3 * * *',
      every: null,
      timezone: 'Europe/Berlin',
      description: 'At 03:00 (Europe/Berlin)',
      overlap: 'skip',
      catch_up: 'all',
      paused: false,
      intent: { goal: 'backup', priority: 7 },
    });
    // The payload is kept exactly as sent.
    expect(created.text).toContain('12345678901234567890');
    expect(typeof created.json.next_run_at).toBe('number');

    await sleep(20);
    const again = await put(raw);
    expect(again.status, again.text).toBe(200);
    expect(again.text).toBe(created.text);

    const replaced = await put(raw.replace('0 3 * * *', '0 4 * * *'));
    expect(replaced.status).toBe(200);
    expect(replaced.json.cron).toBe('0 4 * * *');
    expect(replaced.json.updated_at).toBeGreaterThan(created.json.updated_at);
    expect(replaced.json.created_at).toBe(created.json.created_at);

    const one = await t.api('GET', '/schedules/nightly');
    expect(one.status).toBe(200);
    expect(one.text).toContain('12345678901234567890');
    expect(one.json.next_runs).toHaveLength(5);
    expect(one.json.next_runs[0]).toBe(one.json.next_run_at);
    for (const at of one.json.next_runs) {
      const local = new Intl.DateTimeFormat('en-GB', {
        timeZone: 'Europe/Berlin',
        hour: '2-digit',
        minute: '2-digit',
      }).format(new Date(at * 1000));
      expect(local).toBe('04:00');
    }
    expect(one.json.runs).toEqual([]);

    const list = await t.api('GET', '/schedules');
    expect(list.status).toBe(200);
    expect(list.json.map((s: { name: string }) => s.name)).toContain('nightly');

    const del = await t.api('DELETE', '/schedules/nightly');
    expect(del.status).toBe(200);
    expect(del.json).toEqual({ ok: true, name: 'nightly', deleted: true });
    expectError(await t.api('GET', '/schedules/nightly'), 404, 'not_found');
    expectError(await t.api('DELETE', '/schedules/nightly'), 404, 'not_found');
    for (const action of ['pause', 'resume', 'trigger']) {
      expectError(await t.api('POST', `/schedules/nightly/${action}`), 404, 'not_found');
    }
  });

  it('refuses bad input with 400 and the field', async () => {
    const put = (body: unknown, name = 'bad') => t.api('PUT', `/schedules/${name}`, { body });
    const intent = { goal: 'g', payload: {} };
    expectError(await put({ intent }), 400, 'invalid_request', 'cron');
    expectError(await put({ cron: '* * * * *', every: 5, intent }), 400, 'invalid_request', 'cron');
    expectError(await put({ cron: '61 * * * *', intent }), 400, 'invalid_request', 'cron');
    expectError(await put({ cron: '* * * *', intent }), 400, 'invalid_request', 'cron');
    expectError(await put({ cron: 5, intent }), 400, 'invalid_request', 'cron');
    expectError(await put({ every: 0, intent }), 400, 'invalid_request', 'every');
    expectError(await put({ every: 1.5, intent }), 400, 'invalid_request', 'every');
    expectError(await put({ every: '5', intent }), 400, 'invalid_request', 'every');
    expectError(
      await put({ every: 5, timezone: 'Mars/Olympus', intent }),
      400,
      'invalid_request',
      'timezone',
    );
    expectError(await put({ every: 5 }), 400, 'invalid_request', 'intent');
    expectError(
      await put({ every: 5, intent: { payload: {} } }),
      400,
      'invalid_request',
      'intent.goal',
    );
    expectError(
      await put({ every: 5, intent: { goal: 'g' } }),
      400,
      'invalid_request',
      'intent.payload',
    );
    expectError(
      await put({ every: 5, intent: { goal: '   ', payload: {} } }),
      400,
      'invalid_request',
      'intent.goal',
    );
    expectError(
      await put({ every: 5, intent: { ...intent, priority: 5000 } }),
      400,
      'invalid_request',
      'intent.priority',
    );
    expectError(
      await put({ every: 5, intent: { ...intent, namespace: 'bad ns' } }),
      400,
      'invalid_request',
      'intent.namespace',
    );
    expectError(
      await put({ every: 5, intent: { ...intent, delay: 5 } }),
      400,
      'invalid_request',
      'intent.delay',
    );
    expectError(
      await put({
        every: 5,
        intent: { ...intent, payload: JSON.parse('[[[[[[[[[[[1]]]]]]]]]]]') },
      }),
      400,
      'invalid_request',
    );
    expectError(
      await put({ every: 5, intent, overlap: 'never' }),
      400,
      'invalid_request',
      'overlap',
    );
    expectError(await put({ every: 5, intent, catch_up: 1 }), 400, 'invalid_request', 'catch_up');
    expectError(await put({ every: 5, intent, paused: 'no' }), 400, 'invalid_request', 'paused');
    // A typo is an error, not a default (deadline and on_failure: schedule-alerts.test.ts).
    expectError(await put({ every: 5, intent, deadline: 0 }), 400, 'invalid_request', 'deadline');
    expectError(await put({ every: 5, intent, catchup: 'all' }), 400, 'invalid_request', 'catchup');
    expectError(await put([1]), 400, 'invalid_request');
    expectError(await put({ every: 5, intent }, 'x'.repeat(129)), 400, 'invalid_request', 'name');
    expect((await put({ every: 5, intent }, 'x'.repeat(128))).status).toBe(201);
    // Nothing was made by the refused ones.
    expectError(await t.api('GET', '/schedules/bad'), 404, 'not_found');
    expectError(await t.api('GET', '/schedules/bad', { key: null }), 401, 'unauthorized');
  });

  it('keeps each key to its own schedules: another key gets 404', async () => {
    const a = await t.newKey('alice');
    const b = await t.newKey('bob');
    const putA = await t.api('PUT', '/schedules/shared-name', {
      key: a.api_key,
      body: every(3600, { paused: true }),
    });
    expect(putA.status).toBe(201);
    // The same name is another schedule for another key.
    const putB = await t.api('PUT', '/schedules/shared-name', {
      key: b.api_key,
      body: every(60),
    });
    expect(putB.status).toBe(201);
    expect(putB.json.every).toBe(60);
    expect((await t.api('GET', '/schedules/shared-name', { key: a.api_key })).json.every).toBe(
      3600,
    );
    const own = await t.api('PUT', '/schedules/alice-only', {
      key: a.api_key,
      body: every(60),
    });
    expect(own.status).toBe(201);
    for (const [method, path] of [
      ['GET', '/schedules/alice-only'],
      ['DELETE', '/schedules/alice-only'],
      ['POST', '/schedules/alice-only/pause'],
      ['POST', '/schedules/alice-only/resume'],
      ['POST', '/schedules/alice-only/trigger'],
    ] as const) {
      expectError(await t.api(method, path, { key: b.api_key }), 404, 'not_found');
      // The main key sees its own schedules only.
      expectError(await t.api(method, path), 404, 'not_found');
    }
    const listB = await t.api('GET', '/schedules', { key: b.api_key });
    expect(listB.json.map((s: { name: string }) => s.name)).toEqual(['shared-name']);
    const listA = await t.api('GET', '/schedules', { key: a.api_key });
    expect(listA.json.map((s: { name: string }) => s.name)).toEqual(['alice-only', 'shared-name']);
    expect(listA.json[0].paused).toBe(false);
    // Still there, untouched by bob's attempts.
    expect((await t.api('GET', '/schedules/alice-only', { key: a.api_key })).status).toBe(200);

    // A revoked key's schedules end with it.
    const r = await t.api('POST', '/admin/revoke_key', { admin: true, body: { key_id: a.key_id } });
    expect(r.status).toBe(200);
    const a2 = await t.newKey('alice again');
    expect((await t.api('GET', '/schedules', { key: a2.api_key })).json).toEqual([]);
  });
});

describe('schedules: runs', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  it('publishes a run per tick within a second, as an intent naming its schedule and tick; a waiting claim wakes', async () => {
    const goal = 'sched.tick';
    const waiting = t.api('POST', `/claim?goal=${goal}&wait=5`);
    const put = await t.api('PUT', '/schedules/ticking', {
      raw: `{"every": 1, "intent": {"goal": "${goal}", "payload": {"exact":1.0}}}`,
      headers: { 'content-type': 'application/json' },
    });
    expect(put.status).toBe(201);
    const claimed = await waiting;
    expect(claimed.status, claimed.text).toBe(200);
    expect(claimed.text).toContain('"payload":{"exact":1.0}');
    const status = await t.api('GET', `/status/${claimed.json.id}`);
    expect(status.json).toMatchObject({ goal, schedule: 'ticking', status: 'claimed' });
    const tick = status.json.scheduled_for as number;
    expect(Number.isInteger(tick)).toBe(true);
    // Published within a second of its tick.
    expect(status.json.created_at - tick).toBeGreaterThanOrEqual(0);
    expect(status.json.created_at - tick).toBeLessThan(1);

    await sleep(2500);
    const paused = await t.api('POST', '/schedules/ticking/pause');
    expect(paused.status).toBe(200);
    expect(paused.json).toMatchObject({ paused: true, next_run_at: null });
    const runs = await runsOf(t.api, 'ticking');
    const ticks = runs.map((r) => r.scheduled_for);
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    // Newest first, one per second, none twice.
    for (let i = 1; i < ticks.length; i++) expect(ticks[i - 1]! - ticks[i]!).toBe(1);
    expect(runs.at(-1)!.id).toBe(claimed.json.id);

    // The admin listing names them too; an ordinary intent has nulls.
    const listed = await t.api('GET', `/admin/intents?goal=${goal}`, { admin: true });
    expect(listed.json.items.every((i: { schedule: string }) => i.schedule === 'ticking')).toBe(
      true,
    );
    const plain = await t.api('POST', '/intent', { body: { goal: 'plain', payload: {} } });
    expect((await t.api('GET', `/status/${plain.json.id}`)).json).toMatchObject({
      schedule: null,
      scheduled_for: null,
    });
  });

  it('stops while paused, owes nothing for the pause, resumes from now; trigger publishes one now', async () => {
    const put = await t.api('PUT', '/schedules/pausable', {
      body: every(1, { catch_up: 'all', paused: true, intent: { goal: 'sched.p', payload: {} } }),
    });
    expect(put.status).toBe(201);
    expect(put.json.paused).toBe(true);
    await sleep(2200);
    expect(await runsOf(t.api, 'pausable')).toEqual([]);
    const detail = await t.api('GET', '/schedules/pausable');
    expect(detail.json.next_runs).toEqual([]);

    // A trigger publishes one run now, paused or not.
    const trig = await t.api('POST', '/schedules/pausable/trigger');
    expect(trig.status, trig.text).toBe(201);
    expect(trig.json).toMatchObject({ status: 'published', schedule: 'pausable' });
    const runs = await runsOf(t.api, 'pausable');
    expect(runs.map((r) => r.id)).toEqual([trig.json.id]);

    // Pausing again, or PUTting the same body, changes nothing.
    expect((await t.api('POST', '/schedules/pausable/pause')).json.paused).toBe(true);
    const resumedAt = Date.now() / 1000;
    const resumed = await t.api('POST', '/schedules/pausable/resume');
    expect(resumed.json.paused).toBe(false);
    expect(resumed.json.last_tick).toBeGreaterThanOrEqual(Math.floor(resumedAt));
    const after = await until('two runs after the resume', async () => {
      const r = await runsOf(t.api, 'pausable');
      return r.length >= 3 ? r : undefined;
    });
    // With catch_up "all", still no run for a tick while it was paused.
    for (const r of after.slice(0, -1)) expect(r.scheduled_for).toBeGreaterThan(resumedAt);
    // A PUT without "paused" leaves the state as it is.
    const again = await t.api('PUT', '/schedules/pausable', {
      body: every(1, { catch_up: 'all', intent: { goal: 'sched.p', payload: {} } }),
    });
    expect(again.json.paused).toBe(false);
    await t.api('POST', '/schedules/pausable/pause');
  });

  it('overlap "skip": no new run while the last is open or claimed; the next after it is fulfilled', async () => {
    const goal = 'sched.skip';
    expect(
      (
        await t.api('PUT', '/schedules/skipper', {
          body: every(1, {
            overlap: 'skip',
            catch_up: 'all',
            intent: { goal, payload: {}, backoff_base: 1 },
          }),
        })
      ).status,
    ).toBe(201);
    const claim = await t.api('POST', `/claim?goal=${goal}&wait=5`);
    expect(claim.status).toBe(200);
    // Claimed and then open: the ticks meanwhile are let go.
    await sleep(1500);
    expect(await runsOf(t.api, 'skipper')).toHaveLength(1);
    const failed = await t.api('POST', `/fail/${claim.json.id}`, {
      body: { claim_token: claim.json.claim_token, error: 'once' },
    });
    expect(failed.json.status).toBe('open');
    await sleep(1500);
    expect(await runsOf(t.api, 'skipper')).toHaveLength(1);
    // Fulfilled: the next tick publishes again.
    const again = await t.api('POST', `/claim?goal=${goal}&wait=10`);
    expect(again.json.id).toBe(claim.json.id);
    const done = await t.api('POST', `/fulfill/${again.json.id}`, {
      body: { claim_token: again.json.claim_token, result: 'ok' },
    });
    expect(done.status).toBe(200);
    const next = await t.api('POST', `/claim?goal=${goal}&wait=5`);
    expect(next.status).toBe(200);
    expect(next.json.id).not.toBe(claim.json.id);
    await t.api('POST', '/schedules/skipper/pause');
    const runs = await runsOf(t.api, 'skipper');
    expect(runs.map((r) => r.status)).toEqual(['claimed', 'fulfilled']);
    // The ticks let go are counted.
    const m = await t.api('GET', '/metrics', { admin: true });
    const line =
      /^intent_bus_schedule_ticks_skipped_total\{owner="main",schedule="skipper"\} (\d+)/m.exec(
        m.text,
      );
    expect(Number(line?.[1])).toBeGreaterThanOrEqual(2);
  });
});

describe('schedules: catch-up after a stop', () => {
  const MINUTE = 60_000;
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /**
   * A schedule every minute made at T, the bus stopped, restarted on the same data at a
   * minute tick plus 45 s (the last tick missed is 45 s old, past ON_TIME_MS), ten minutes
   * on: what the schedule then publishes.
   */
  async function restartAfterStop(policy: string) {
    const dir = mkdtempSync(join(tmpdir(), 'intent-bus-catchup-'));
    dirs.push(dir);
    const first = await startTestBus({ dir, manualClock: true });
    const createdAt = first.clock.now();
    const put = await first.api('PUT', '/schedules/minutely', {
      body: every(60, { catch_up: policy, intent: { goal: `sched.catch.${policy}`, payload: {} } }),
    });
    expect(put.status).toBe(201);
    await first.close();

    const second = await startTestBus({ dir, manualClock: true });
    try {
      const lastTick = Math.floor((createdAt + 10 * MINUTE) / MINUTE) * MINUTE;
      second.manual!.set(lastTick + 45_000);
      const schedule = await until('the ticker to pass the stop', async () => {
        const r = await second.api('GET', '/schedules/minutely');
        return r.json.last_tick * 1000 === lastTick ? r.json : undefined;
      });
      const missed: number[] = [];
      for (let at = lastTick; at > createdAt; at -= MINUTE) missed.push(at / 1000);
      return { schedule, missed };
    } finally {
      await second.close();
    }
  }

  it('none: the missed ticks are skipped', async () => {
    const { schedule } = await restartAfterStop('none');
    expect(schedule.runs).toEqual([]);
  });

  it('latest: one run, for the latest missed tick', async () => {
    const { schedule, missed } = await restartAfterStop('latest');
    expect(schedule.runs.map((r: { scheduled_for: number }) => r.scheduled_for)).toEqual([
      missed[0],
    ]);
  });

  it('all: one run for each missed tick, none twice', async () => {
    const { schedule, missed } = await restartAfterStop('all');
    expect(missed.length).toBeGreaterThanOrEqual(10);
    expect(schedule.runs.map((r: { scheduled_for: number }) => r.scheduled_for)).toEqual(missed);
  });
});
