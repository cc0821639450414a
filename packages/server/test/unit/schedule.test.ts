/** The tick arithmetic of schedules (core/schedule.ts), with times given, never the clock. */
import { describe, expect, it } from 'vitest';
import { BusError } from '../../src/core/errors.js';
import {
  MAX_CATCH_UP,
  ON_TIME_MS,
  alertPayload,
  checkTiming,
  missedDeadline,
  runOutcome,
  dueTicks,
  lastTickBy,
  nextTick,
  nextTicks,
} from '../../src/core/schedule.js';

const at = (iso: string): number => Date.parse(iso);
const iso = (ms: number): string => new Date(ms).toISOString();

describe('schedule timing', () => {
  it('accepts 5 or 6 cron fields, or every N seconds, in an IANA zone (UTC by default)', () => {
    expect(checkTiming({ cron: '0 3 * * *' })).toEqual({
      cron: '0 3 * * *',
      every: null,
      timezone: 'UTC',
    });
    expect(checkTiming({ cron: ' */5  * * * * * ', timezone: 'Europe/Berlin' })).toEqual({
      cron: '*/5 * * * * *',
      every: null,
      timezone: 'Europe/Berlin',
    });
    expect(checkTiming({ every: 60 })).toEqual({ cron: null, every: 60, timezone: 'UTC' });
  });

  it('refuses a bad expression, a bad zone, both or neither, naming the field', () => {
    const field = (body: Record<string, unknown>): string | undefined => {
      try {
        checkTiming(body);
      } catch (err) {
        expect(err).toBeInstanceOf(BusError);
        expect((err as BusError).code).toBe('invalid_request');
        return (err as BusError).extra.field;
      }
      return undefined;
    };
    expect(field({ cron: '61 * * * *' })).toBe('cron');
    expect(field({ cron: '* * * *' })).toBe('cron');
    expect(field({ cron: '* * * * * * *' })).toBe('cron');
    expect(field({ cron: 3 })).toBe('cron');
    expect(field({ cron: '0 0 30 2 *' })).toBe('cron'); // 30 February never comes
    expect(field({})).toBe('cron');
    expect(field({ cron: '* * * * *', every: 5 })).toBe('cron');
    expect(field({ every: 0 })).toBe('every');
    expect(field({ every: 1.5 })).toBe('every');
    expect(field({ every: '5' })).toBe('every');
    expect(field({ every: 5, timezone: 'Mars/Olympus' })).toBe('timezone');
    expect(field({ cron: '* * * * *', timezone: 7 })).toBe('timezone');
  });

  it('ticks every N seconds on the epoch grid, strictly after the given time', () => {
    const t = checkTiming({ every: 60 });
    expect(iso(nextTick(t, at('2026-12-01T10:00:00Z'))!)).toBe('2026-12-01T10:01:00.000Z');
    expect(iso(nextTick(t, at('2026-12-01T10:00:30Z'))!)).toBe('2026-12-01T10:01:00.000Z');
    expect(nextTicks(t, at('2026-12-01T10:00:59.999Z'), 3).map(iso)).toEqual([
      '2026-12-01T10:01:00.000Z',
      '2026-12-01T10:02:00.000Z',
      '2026-12-01T10:03:00.000Z',
    ]);
  });

  it('fires a daily 02:30 in Europe/Berlin once on each day, across both DST transitions of 2026', () => {
    const t = checkTiming({ cron: '30 2 * * *', timezone: 'Europe/Berlin' });
    // 29 March: 02:00 → 03:00, so 02:30 does not exist: once, at the next valid instant.
    expect(nextTicks(t, at('2026-03-27T00:00:00Z'), 4).map(iso)).toEqual([
      '2026-03-27T01:30:00.000Z',
      '2026-03-28T01:30:00.000Z',
      '2026-03-29T01:00:00.000Z',
      '2026-03-30T00:30:00.000Z',
    ]);
    // 25 October: 03:00 → 02:00, so 02:30 happens twice: once.
    expect(nextTicks(t, at('2026-10-23T00:00:00Z'), 4).map(iso)).toEqual([
      '2026-10-23T00:30:00.000Z',
      '2026-10-24T00:30:00.000Z',
      '2026-10-25T00:30:00.000Z',
      '2026-10-26T01:30:00.000Z',
    ]);
  });

  it('owes the tick that just came, on every policy', () => {
    const t = checkTiming({ cron: '0 * * * *' });
    const since = at('2026-12-01T09:00:00Z');
    const now = at('2026-12-01T10:00:00.500Z');
    for (const policy of ['none', 'latest', 'all'] as const) {
      expect(dueTicks(t, since, now, policy).map(iso), policy).toEqual([
        '2026-12-01T10:00:00.000Z',
      ]);
    }
    // A tick exactly now is due; none is owed twice (since is exclusive).
    expect(dueTicks(t, since, at('2026-12-01T10:00:00Z'), 'none')).toHaveLength(1);
    expect(dueTicks(t, at('2026-12-01T10:00:00Z'), now, 'all')).toEqual([]);
  });

  it('after a stop of 5 hourly ticks: none skips them, latest publishes one, all each', () => {
    const t = checkTiming({ cron: '0 * * * *' });
    const since = at('2026-12-01T05:00:00Z');
    const now = at('2026-12-01T10:20:00Z'); // ticks 06..10 missed, the last 20 min ago
    expect(dueTicks(t, since, now, 'none')).toEqual([]);
    expect(dueTicks(t, since, now, 'latest').map(iso)).toEqual(['2026-12-01T10:00:00.000Z']);
    expect(dueTicks(t, since, now, 'all').map(iso)).toEqual(
      [6, 7, 8, 9, 10].map((h) => `2026-12-01T${String(h).padStart(2, '0')}:00:00.000Z`),
    );
    expect(iso(lastTickBy(t, since, now)!)).toBe('2026-12-01T10:00:00.000Z');
    expect(lastTickBy(t, now, now + 1000)).toBeNull();
  });

  it('catches up at most the newest 100 ticks, and a tick ON_TIME_MS old is still on time', () => {
    const t = checkTiming({ every: 1 });
    const since = at('2026-12-01T00:00:00Z');
    const now = since + 3_600_000; // 3,600 ticks missed
    const all = dueTicks(t, since, now, 'all');
    expect(all).toHaveLength(MAX_CATCH_UP);
    expect(all.at(-1)).toBe(now);
    expect(all[0]).toBe(now - (MAX_CATCH_UP - 1) * 1000);
    const hourly = checkTiming({ cron: '0 * * * *' });
    const tick = at('2026-12-01T10:00:00Z');
    expect(dueTicks(hourly, tick - 1, tick + ON_TIME_MS, 'none')).toEqual([tick]);
    expect(dueTicks(hourly, tick - 1, tick + ON_TIME_MS + 1, 'none')).toEqual([]);
  });
});

describe('deadlines and alerts', () => {
  const T = at('2026-12-01T03:00:00Z');
  const run = (status: 'open' | 'claimed' | 'fulfilled' | 'dead', completedAt: number | null) => ({
    status,
    scheduledFor: T,
    completedAt,
  });

  it('misses a run not fulfilled (or dead) by its tick + deadline, to the millisecond', () => {
    expect(missedDeadline(run('open', null), 60)).toBe(true);
    expect(missedDeadline(run('claimed', null), 60)).toBe(true);
    expect(missedDeadline(run('fulfilled', T + 60_000), 60)).toBe(false);
    expect(missedDeadline(run('fulfilled', T + 60_001), 60)).toBe(true);
    // Dead before the deadline: it is dead, not missed; dead after: missed first.
    expect(missedDeadline(run('dead', T + 1000), 60)).toBe(false);
    expect(missedDeadline(run('dead', T + 61_000), 60)).toBe(true);
  });

  it("writes the alert's payload: the run and the reason first, then on_failure's members as sent", () => {
    const failed = { id: 'r1', scheduledFor: T, status: 'dead' as const, error: null };
    const dead = alertPayload(
      { name: 'nightly', deadline: null },
      { ...failed, deadReason: 'expired' },
      'dead',
      ' { "to": 12345678901234567890 } ',
    );
    expect(dead).toBe(
      `{"schedule":"nightly","run":{"id":"r1","scheduled_for":${T / 1000},"status":"dead"},` +
        '"reason":"dead","error":"expired","deadline":null,"to": 12345678901234567890}',
    );
    const missed = alertPayload(
      { name: 'n', deadline: 30 },
      { ...failed, status: 'open', deadReason: null, error: 'ignored' },
      'missed',
      '{}',
    );
    expect(JSON.parse(missed)).toEqual({
      schedule: 'n',
      run: { id: 'r1', scheduled_for: T / 1000, status: 'open' },
      reason: 'missed',
      error: null,
      deadline: 30,
    });
    // No on_failure.payload, or an empty one: the same payload.
    const open = { ...failed, status: 'open' as const, deadReason: null };
    expect(alertPayload({ name: 'n', deadline: 30 }, open, 'missed', undefined)).toBe(missed);
  });

  it('tells a run outcome: its status, cancelled, or missed whatever came after', () => {
    expect(runOutcome('open', null, null)).toBe('open');
    expect(runOutcome('dead', 'cancelled', null)).toBe('cancelled');
    expect(runOutcome('dead', 'boom', 'dead')).toBe('dead');
    expect(runOutcome('fulfilled', null, 'missed')).toBe('missed');
    expect(runOutcome('dead', 'boom', 'missed')).toBe('missed');
  });
});
