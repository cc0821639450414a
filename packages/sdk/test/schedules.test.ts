/**
 * client.schedules against a real bus: set (created, then the same spec unchanged), get with
 * the payload's exact text, list, pause, resume, trigger, delete; signed requests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotFoundError, ValidationError, jsonText } from '../src/index.js';
import { clientOf, closeBus, startTestBus, uniqueGoal, waitFor, type TestBus } from './support.js';

describe('client.schedules', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => closeBus(t));

  it('sets, reads, pauses, resumes, triggers and deletes a schedule', async () => {
    const c = clientOf(t);
    const goal = uniqueGoal('sched');
    const spec = {
      every: 1,
      catchUp: 'all' as const,
      overlap: 'allow' as const,
      paused: true,
      intent: { goal, payload: jsonText('{"n":12345678901234567890}'), priority: 5 },
    };
    const made = await c.schedules.set('sdk', spec);
    expect(made).toMatchObject({ name: 'sdk', every: 1, paused: true, created: true });
    expect(made.payloadText).toBe('{"n":12345678901234567890}');
    const again = await c.schedules.set('sdk', spec);
    expect(again.created).toBe(false);
    expect(again.updated_at).toBe(made.updated_at);

    expect((await c.schedules.list()).map((s) => s.name)).toEqual(['sdk']);
    const shown = await c.schedules.get('sdk');
    expect(shown).toMatchObject({ name: 'sdk', next_runs: [], runs: [] });
    expect(shown!.payloadText).toBe('{"n":12345678901234567890}');
    expect(await c.schedules.get('absent')).toBeUndefined();

    const run = await c.schedules.trigger('sdk');
    expect(run).toMatchObject({ status: 'published', schedule: 'sdk' });
    const claimed = await c.claim({ goal, waitSeconds: 2 });
    expect(claimed!.payloadText).toBe('{"n":12345678901234567890}');
    expect(await c.getStatus(run.id)).toMatchObject({ schedule: 'sdk' });

    expect((await c.schedules.resume('sdk')).paused).toBe(false);
    await waitFor(async () => ((await c.schedules.get('sdk'))?.runs.length ?? 0) >= 2, 5000);
    expect((await c.schedules.pause('sdk')).paused).toBe(true);

    expect(await c.schedules.delete('sdk')).toBe(true);
    expect(await c.schedules.delete('sdk')).toBe(false);
    await expect(c.schedules.trigger('sdk')).rejects.toBeInstanceOf(NotFoundError);
    await expect(
      c.schedules.set('bad', { cron: 'not cron', intent: { goal, payload: {} } }),
    ).rejects.toBeInstanceOf(ValidationError);
  });

  it('sets a deadline and an alert (its payload as written); get shows each run outcome and alert', async () => {
    const c = clientOf(t);
    const goal = uniqueGoal('sched-alert');
    const alertGoal = uniqueGoal('sched-alert-to');
    const made = await c.schedules.set('sdk-alert', {
      every: 3600,
      paused: true,
      deadline: 1,
      onFailure: { goal: alertGoal, payloadText: '{"to":12345678901234567890}' },
      intent: { goal, payload: {} },
    });
    expect(made).toMatchObject({ deadline: 1, on_failure: { goal: alertGoal } });
    expect(made.onFailureText).toBe(
      `{"goal":"${alertGoal}","payload":{"to":12345678901234567890}}`,
    );
    const run = await c.schedules.trigger('sdk-alert');
    const alert = await c.claim({ goal: alertGoal, waitSeconds: 5 });
    expect(alert!.payload).toMatchObject({
      schedule: 'sdk-alert',
      reason: 'missed',
      run: { id: run.id },
    });
    expect(alert!.payloadText).toContain('"to":12345678901234567890');
    const shown = await c.schedules.get('sdk-alert');
    expect(shown!.runs[0]).toMatchObject({ id: run.id, outcome: 'missed', alert_id: alert!.id });
    const plain = await c.schedules.set('sdk-alert', {
      every: 3600,
      intent: { goal, payload: {} },
    });
    expect(plain).toMatchObject({ deadline: null, on_failure: null, onFailureText: null });
    await c.schedules.delete('sdk-alert');
  });
});
