/**
 * Schedules' deadlines and alerts (issue 17) over HTTP, on both stores (the server-pg project
 * runs this file on PostgreSQL): a worker fails a run to death and one alert comes, with the
 * schedule, the run and the last error in its payload and on_failure's members as sent; a run
 * nobody fulfils by its deadline is missed, with one alert, and stays missed once fulfilled
 * late; a run fulfilled in time has none; a dead run whose death was not recorded as it
 * happened (its node stopped first) is found by the next pass; each key sees only its own
 * schedules and alerts; the counters by schedule; the body's errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, startTestBus, type Api, type ApiResponse, type TestBus } from './helpers.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 8000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function expectError(r: ApiResponse, status: number, code: string, field?: string): void {
  expect(r.status, r.text).toBe(status);
  expect(errorCode(r)).toBe(code);
  if (field !== undefined) expect(r.json.error.field, r.text).toBe(field);
}

interface Run {
  id: string;
  scheduled_for: number;
  status: string;
  outcome: string;
  alert_id: string | null;
}

const detail = async (api: Api, name: string, key?: string) => {
  const r = await api('GET', `/schedules/${name}`, { key });
  expect(r.status, r.text).toBe(200);
  return r.json as { runs: Run[]; deadline: number | null; on_failure: unknown };
};

/** Every intent of a goal (the admin listing), oldest first. */
const intentsOf = async (api: Api, goal: string) => {
  const r = await api('GET', `/admin/intents?goal=${goal}&limit=200`, { admin: true });
  expect(r.status, r.text).toBe(200);
  return (r.json.items as Array<{ id: string }>).reverse();
};

/** Who published an intent (its key id; `main` for the main key). */
const publisherOf = async (api: Api, id: string): Promise<string> =>
  (await api('GET', `/admin/intents/${id}`, { admin: true })).json.publisher;

/** A schedule that ticks once an hour, paused: its runs come from triggers, one at a time. */
const triggered = (goal: string, over: Record<string, unknown> = {}) => ({
  every: 3600,
  paused: true,
  intent: { goal, payload: { job: goal }, max_attempts: 1 },
  ...over,
});

describe('schedules: deadline and on_failure', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  it('a run that dies publishes one alert naming the schedule, the run and the last error', async () => {
    const goal = 'alerts.dies';
    const put = await t.api('PUT', '/schedules/dies', {
      raw: JSON.stringify(
        triggered(goal, {
          on_failure: {
            goal: 'alerts.phone',
            namespace: 'ops',
            payload: { channel: 'discord', big: 'BIG' },
          },
        }),
      ).replace('"BIG"', '12345678901234567890'),
      headers: { 'content-type': 'application/json' },
    });
    expect(put.status, put.text).toBe(201);
    expect(put.json.on_failure).toMatchObject({ goal: 'alerts.phone', namespace: 'ops' });
    expect(put.text).toContain('"payload":{"channel":"discord","big":12345678901234567890}');
    expect(put.json.deadline).toBeNull();

    const trig = await t.api('POST', '/schedules/dies/trigger');
    expect(trig.status, trig.text).toBe(201);
    // The worker: claims the run and fails it; one attempt, so it dies.
    const claim = await t.api('POST', `/claim?goal=${goal}&wait=5`);
    expect(claim.json.id).toBe(trig.json.id);
    const failed = await t.api('POST', `/fail/${claim.json.id}`, {
      body: { claim_token: claim.json.claim_token, error: 'disk full' },
    });
    expect(failed.json.status, failed.text).toBe('dead');

    // Whoever waits for the alert is woken by it.
    const alert = await t.api('POST', '/claim?namespace=ops&goal=alerts.phone&wait=5');
    expect(alert.status, alert.text).toBe(200);
    expect(alert.json.payload).toEqual({
      schedule: 'dies',
      run: { id: trig.json.id, scheduled_for: trig.json.scheduled_for, status: 'dead' },
      reason: 'dead',
      error: 'disk full',
      deadline: null,
      channel: 'discord',
      big: JSON.parse('12345678901234567890'),
    });
    // The payload's number as it was sent.
    expect(alert.text).toContain('"big":12345678901234567890');
    await t.api('POST', `/fulfill/${alert.json.id}`, {
      body: { claim_token: alert.json.claim_token, result: 'sent' },
    });

    // Two passes later (the one that looks for unrecorded deaths too): still one alert.
    await sleep(2200);
    const alerts = await intentsOf(t.api, 'alerts.phone');
    expect(alerts.map((a) => a.id)).toEqual([alert.json.id]);
    expect(await publisherOf(t.api, alert.json.id)).toBe('main');
    const runs = (await detail(t.api, 'dies')).runs;
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ status: 'dead', outcome: 'dead', alert_id: alert.json.id });
  });

  it('a run not fulfilled by its deadline is missed, with one alert; fulfilled late, still missed', async () => {
    const goal = 'alerts.slow';
    const put = await t.api('PUT', '/schedules/slow', {
      body: triggered(goal, { deadline: 1, on_failure: { goal: 'alerts.late' } }),
    });
    expect(put.status, put.text).toBe(201);
    expect(put.json.deadline).toBe(1);
    const trig = await t.api('POST', '/schedules/slow/trigger');
    expect(trig.status).toBe(201);
    const alert = await t.api('POST', '/claim?goal=alerts.late&wait=6');
    expect(alert.status, alert.text).toBe(200);
    expect(alert.json.namespace).toBe('default');
    expect(alert.json.payload).toEqual({
      schedule: 'slow',
      run: { id: trig.json.id, scheduled_for: trig.json.scheduled_for, status: 'open' },
      reason: 'missed',
      error: null,
      deadline: 1,
    });
    const missed = (await detail(t.api, 'slow')).runs[0]!;
    expect(missed).toMatchObject({ id: trig.json.id, status: 'open', outcome: 'missed' });
    expect(missed.alert_id).toBe(alert.json.id);

    // Fulfilled late: still missed, and no second alert; nor when it then fails to death.
    const claim = await t.api('POST', `/claim?goal=${goal}&wait=5`);
    expect(claim.json.id).toBe(trig.json.id);
    await t.api('POST', `/fail/${claim.json.id}`, {
      body: { claim_token: claim.json.claim_token, error: 'too late anyway' },
    });
    await sleep(2200);
    expect((await intentsOf(t.api, 'alerts.late')).map((a) => a.id)).toEqual([alert.json.id]);
    expect((await detail(t.api, 'slow')).runs[0]).toMatchObject({
      status: 'dead',
      outcome: 'missed',
      alert_id: alert.json.id,
    });
  });

  it('a run fulfilled in time: no alert, outcome fulfilled; a cancelled run: no alert either', async () => {
    const goal = 'alerts.quick';
    const put = await t.api('PUT', '/schedules/quick', {
      body: triggered(goal, { deadline: 2, on_failure: { goal: 'alerts.never' } }),
    });
    expect(put.status).toBe(201);
    const trig = await t.api('POST', '/schedules/quick/trigger');
    const claim = await t.api('POST', `/claim?goal=${goal}&wait=5`);
    expect(claim.json.id).toBe(trig.json.id);
    const done = await t.api('POST', `/fulfill/${claim.json.id}`, {
      body: { claim_token: claim.json.claim_token, result: 'ok' },
    });
    expect(done.status).toBe(200);
    // A second run, cancelled by the admin before it runs.
    await sleep(5);
    const second = await t.api('POST', '/schedules/quick/trigger');
    const cancelled = await t.api('POST', `/admin/intents/${second.json.id}/cancel`, {
      admin: true,
    });
    expect(cancelled.status, cancelled.text).toBe(200);
    // Past both deadlines and a pass more.
    await sleep(3500);
    expect(await intentsOf(t.api, 'alerts.never')).toEqual([]);
    const runs = (await detail(t.api, 'quick')).runs;
    expect(runs.map((r) => [r.id, r.outcome, r.alert_id])).toEqual([
      [second.json.id, 'cancelled', null],
      [trig.json.id, 'fulfilled', null],
    ]);
  });

  it('a dead run whose death was not recorded (its node stopped first) is found by the next pass', async () => {
    const goal = 'alerts.orphan';
    await t.api('PUT', '/schedules/orphan', {
      body: triggered(goal, { on_failure: { goal: 'alerts.orphan-alert' } }),
    });
    const trig = await t.api('POST', '/schedules/orphan/trigger');
    const claim = await t.api('POST', `/claim?goal=${goal}&wait=5`);
    // Failed through the store itself: the death is stored, nobody is told of it.
    const dead = await t.bus.store.intentFail(
      { id: claim.json.id, token: claim.json.claim_token, keyId: 'main', now: Date.now() },
      'lost with its node',
      Math.random,
    );
    expect(dead?.status).toBe('dead');
    const alert = await t.api('POST', '/claim?goal=alerts.orphan-alert&wait=6');
    expect(alert.status, alert.text).toBe(200);
    expect(alert.json.payload).toMatchObject({
      schedule: 'orphan',
      run: { id: trig.json.id },
      reason: 'dead',
      error: 'lost with its node',
    });
    await sleep(2200);
    expect(await intentsOf(t.api, 'alerts.orphan-alert')).toHaveLength(1);
  });

  it('keeps each key to its own: another key sees neither the schedule nor its alerts', async () => {
    const a = await t.newKey('alice');
    const b = await t.newKey('bob');
    const goal = 'alerts.alice';
    const put = await t.api('PUT', '/schedules/alice-job', {
      key: a.api_key,
      body: triggered(goal, { on_failure: { goal: 'alerts.alice-phone' } }),
    });
    expect(put.status, put.text).toBe(201);
    const trig = await t.api('POST', '/schedules/alice-job/trigger', { key: a.api_key });
    expect(trig.status).toBe(201);
    const claim = await t.api('POST', `/claim?goal=${goal}&wait=5`, { key: a.api_key });
    await t.api('POST', `/fail/${claim.json.id}`, {
      key: a.api_key,
      body: { claim_token: claim.json.claim_token, error: 'nope' },
    });
    const alerts = await until('the alert', async () => {
      const found = await intentsOf(t.api, 'alerts.alice-phone');
      return found.length > 0 ? found : undefined;
    });
    expect(alerts).toHaveLength(1);
    expect(await publisherOf(t.api, alerts[0]!.id)).toBe(a.key_id);
    // Bob: no such schedule, no alert to claim or read.
    expectError(await t.api('GET', '/schedules/alice-job', { key: b.api_key }), 404, 'not_found');
    const bobs = await t.api('POST', '/claim?goal=alerts.alice-phone', { key: b.api_key });
    expect(bobs.status).toBe(204);
    expectError(
      await t.api('GET', `/status/${alerts[0]!.id}`, { key: b.api_key }),
      404,
      'not_found',
    );
    // Alice claims her own alert.
    const hers = await t.api('POST', '/claim?goal=alerts.alice-phone', { key: a.api_key });
    expect(hers.status).toBe(200);
    expect(hers.json.payload).toMatchObject({ schedule: 'alice-job', reason: 'dead' });
    expect((await detail(t.api, 'alice-job', a.api_key)).runs[0]).toMatchObject({
      outcome: 'dead',
      alert_id: alerts[0]!.id,
    });
  });

  it('counts runs published, failed and missed, and alerts, by owner and schedule', async () => {
    const r = await t.api('GET', '/metrics', { admin: true });
    expect(r.status).toBe(200);
    const value = (name: string, schedule: string): number => {
      const line = r.text
        .split('\n')
        .find((l) => l.startsWith(`${name}{owner="main",schedule="${schedule}"}`));
      return line === undefined ? 0 : Number(line.split(' ').at(-1));
    };
    expect(value('intent_bus_schedule_runs_published_total', 'dies')).toBe(1);
    expect(value('intent_bus_schedule_runs_failed_total', 'dies')).toBe(1);
    expect(value('intent_bus_schedule_alerts_total', 'dies')).toBe(1);
    expect(value('intent_bus_schedule_runs_missed_total', 'slow')).toBe(1);
    expect(value('intent_bus_schedule_runs_failed_total', 'slow')).toBe(0);
    expect(value('intent_bus_schedule_runs_published_total', 'quick')).toBe(2);
    expect(value('intent_bus_schedule_runs_missed_total', 'quick')).toBe(0);
    expect(value('intent_bus_schedule_alerts_total', 'quick')).toBe(0);
    expect(r.text).toContain('# TYPE intent_bus_schedule_runs_missed_total counter');
  });

  it('refuses a bad deadline or on_failure with 400 and the field', async () => {
    const put = (over: Record<string, unknown>) =>
      t.api('PUT', '/schedules/bad-alert', { body: triggered('g', over) });
    expectError(await put({ deadline: 0 }), 400, 'invalid_request', 'deadline');
    expectError(await put({ deadline: 1.5 }), 400, 'invalid_request', 'deadline');
    expectError(await put({ deadline: '60' }), 400, 'invalid_request', 'deadline');
    expectError(await put({ on_failure: 'alert' }), 400, 'invalid_request', 'on_failure');
    expectError(await put({ on_failure: {} }), 400, 'invalid_request', 'on_failure.goal');
    expectError(
      await put({ on_failure: { goal: '  ' } }),
      400,
      'invalid_request',
      'on_failure.goal',
    );
    expectError(
      await put({ on_failure: { goal: 'a', namespace: 'bad ns' } }),
      400,
      'invalid_request',
      'on_failure.namespace',
    );
    expectError(
      await put({ on_failure: { goal: 'a', payload: [1] } }),
      400,
      'invalid_request',
      'on_failure.payload',
    );
    expectError(
      await put({ on_failure: { goal: 'a', payload: { reason: 'mine' } } }),
      400,
      'invalid_request',
      'on_failure.payload.reason',
    );
    expectError(
      await put({ on_failure: { goal: 'a', priority: 1 } }),
      400,
      'invalid_request',
      'on_failure.priority',
    );
    expectError(await t.api('GET', '/schedules/bad-alert'), 404, 'not_found');
    // A deadline and an alert given later, and taken away again: a declarative PUT.
    const plain = await put({});
    expect(plain.status).toBe(201);
    const body = { deadline: 30, on_failure: { goal: 'a', payload: { to: 'me' } } };
    const added = await put(body);
    expect(added.status).toBe(200);
    expect(added.json).toMatchObject({
      deadline: 30,
      on_failure: { goal: 'a', payload: { to: 'me' } },
    });
    expect((await put(body)).text).toBe(added.text);
    const removed = await put({});
    expect(removed.json).toMatchObject({ deadline: null, on_failure: null });
  });
});
