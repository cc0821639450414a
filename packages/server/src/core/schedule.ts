/**
 * When a schedule fires (issue 17): a cron expression of 5 fields, or 6 with seconds, in an
 * IANA time zone; or every N seconds. Pure arithmetic over times in ms: the clock is an
 * argument. Daylight saving time follows croner's rules: a local time that does not exist
 * fires once, at the next valid instant; a repeated hour fires once.
 */
import { Cron } from 'croner';
import cronstrue from 'cronstrue';
import { invalid } from './errors.js';

export interface Timing {
  /** A cron expression, or null for `every`. */
  cron: string | null;
  /** Seconds between ticks, aligned on the unix epoch (every 60: on each minute), or null. */
  every: number | null;
  /** The IANA zone the cron expression is read in; `UTC` by default. */
  timezone: string;
}

/** What a schedule does about ticks that passed while the bus was not running. */
export type CatchUp = 'none' | 'latest' | 'all';

/** At most this many missed ticks are published at once (`catch_up: "all"`). */
export const MAX_CATCH_UP = 100;
/**
 * A tick is on time while it is at most this old; with `catch_up: "none"` an older one was
 * missed (the bus was down) and is skipped. The ticker looks every second.
 */
export const ON_TIME_MS = 30_000;

const cronOf = (t: Timing): Cron =>
  new Cron(t.cron!, { timezone: t.timezone, paused: true, mode: '5-or-6-parts' });

/** The timing of a schedule body, or 400 naming the field. */
export function checkTiming(body: { cron?: unknown; every?: unknown; timezone?: unknown }): Timing {
  const { cron, every } = body;
  if ((cron === undefined) === (every === undefined)) {
    throw invalid('cron', 'A schedule has either "cron" or "every", not both and not neither');
  }
  const timezone = body.timezone ?? 'UTC';
  if (typeof timezone !== 'string' || !isTimeZone(timezone)) {
    throw invalid('timezone', 'timezone must be an IANA time zone, such as "Europe/Berlin"');
  }
  if (every !== undefined) {
    if (typeof every !== 'number' || !Number.isInteger(every) || every < 1 || every > 31_622_400) {
      throw invalid('every', 'every must be a whole number of seconds from 1 to 31622400');
    }
    return { cron: null, every, timezone };
  }
  if (typeof cron !== 'string' || !/^\S+(\s+\S+){4,5}$/.test(cron.trim())) {
    throw invalid(
      'cron',
      'cron must be 5 fields (minute hour day month weekday), or 6 with seconds',
    );
  }
  const timing = { cron: cron.trim().replace(/\s+/g, ' '), every: null, timezone };
  try {
    if (cronOf(timing).nextRun(new Date(0)) === null) throw new Error('it never fires');
  } catch (err) {
    throw invalid('cron', `cron "${timing.cron}" is not valid: ${(err as Error).message}`);
  }
  return timing;
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** The first tick strictly after `after` (ms), or null if the expression never fires again. */
export function nextTick(t: Timing, after: number): number | null {
  if (t.every !== null) {
    const period = t.every * 1000;
    return (Math.floor(after / period) + 1) * period;
  }
  return cronOf(t).nextRun(new Date(after))?.getTime() ?? null;
}

/** The next `n` ticks after `after`, soonest first. */
export function nextTicks(t: Timing, after: number, n: number): number[] {
  if (t.every === null)
    return cronOf(t)
      .nextRuns(n, new Date(after))
      .map((d) => d.getTime());
  const out: number[] = [];
  for (let at = after; out.length < n;) out.push((at = nextTick(t, at)!));
  return out;
}

/** The newest ticks in (after, upTo], at most `n`, oldest first. */
function newestTicks(t: Timing, after: number, upTo: number, n: number): number[] {
  if (t.every !== null) {
    const period = t.every * 1000;
    const out: number[] = [];
    for (let k = Math.floor(upTo / period); out.length < n && k * period > after; k--) {
      out.push(k * period);
    }
    return out.reverse();
  }
  // previousRuns counts back from upTo itself (exclusive): a tick exactly at upTo is due.
  return cronOf(t)
    .previousRuns(n, new Date(upTo + 1))
    .map((d) => d.getTime())
    .filter((at) => at > after && at <= upTo)
    .reverse();
}

/**
 * The ticks a schedule owes at `now`, oldest first, given the last tick it published (or
 * the moment it started or resumed, `since`): every tick in (since, now] that its
 * catch-up policy keeps. On time (not older than ON_TIME_MS), a tick is always owed.
 */
export function dueTicks(t: Timing, since: number, now: number, catchUp: CatchUp): number[] {
  const newest = newestTicks(t, since, now, catchUp === 'all' ? MAX_CATCH_UP : 1);
  if (catchUp !== 'none') return newest;
  return newest.filter((at) => now - at <= ON_TIME_MS);
}

/** The newest tick in (since, now], or null: where a schedule stands once `now` is handled. */
export function lastTickBy(t: Timing, since: number, now: number): number | null {
  return newestTicks(t, since, now, 1)[0] ?? null;
}

/** What a schedule does when its last run is still open or claimed at a tick. */
export type Overlap = 'allow' | 'skip';

/** A schedule as a PUT defines it (times in ms). */
export interface ScheduleDefinition extends Timing {
  /** The key id of its owner (`main` for the main key). */
  owner: string;
  name: string;
  /** The intent each run publishes: JSON text, its payload exactly as sent. */
  intent: string;
  overlap: Overlap;
  catchUp: CatchUp;
  /** Null: a new schedule is active, an existing one keeps its state. */
  paused: boolean | null;
  /** Seconds after its tick by which a run must be fulfilled, else it is missed; or null. */
  deadline: number | null;
  /** The alert of a run that dies or is missed, JSON text `{"goal", "namespace"?, "payload"?}`. */
  onFailure: string | null;
}

/** A schedule as the store keeps it. */
export interface ScheduleState extends Omit<ScheduleDefinition, 'paused'> {
  paused: boolean;
  /** The last tick handled (published or skipped), or when it was created or resumed. */
  lastTick: number;
  /**
   * Runs for ticks up to this one (ms) have been held to the deadline (the deadline pass);
   * a deadline given to a schedule holds the runs from then on.
   */
  checkedUntil: number;
  /** The first tick after lastTick, or null when it never fires again. */
  nextAt: number | null;
  createdAt: number;
  updatedAt: number;
}

const sameTiming = (a: Timing, b: Timing): boolean =>
  a.cron === b.cron && a.every === b.every && a.timezone === b.timezone;

/**
 * A PUT applied to what the store holds: created, replaced, or unchanged (the same body
 * again). A new timing, or a resume, starts from `now`: ticks before it are not owed.
 */
export function defineSchedule(
  prior: ScheduleState | null,
  def: ScheduleDefinition,
  now: number,
): { kind: 'created' | 'updated' | 'unchanged'; state: ScheduleState } {
  const paused = def.paused ?? prior?.paused ?? false;
  const { owner, name, cron, every, timezone, intent, overlap, catchUp, deadline, onFailure } = def;
  const timing = { cron, every, timezone };
  if (prior === null) {
    const state = { owner, name, ...timing, intent, overlap, catchUp, paused, deadline, onFailure };
    return {
      kind: 'created',
      state: {
        ...state,
        lastTick: now,
        // Runs with a tick after this are held to the deadline (a trigger's tick is now).
        checkedUntil: now - 1,
        nextAt: nextTick(timing, now),
        createdAt: now,
        updatedAt: now,
      },
    };
  }
  if (
    sameTiming(prior, timing) &&
    prior.intent === intent &&
    prior.overlap === overlap &&
    prior.catchUp === catchUp &&
    prior.paused === paused &&
    prior.deadline === deadline &&
    prior.onFailure === onFailure
  ) {
    return { kind: 'unchanged', state: prior };
  }
  const restart = !sameTiming(prior, timing) || (prior.paused && !paused);
  const lastTick = restart ? now : prior.lastTick;
  return {
    kind: 'updated',
    state: {
      ...prior,
      ...timing,
      intent,
      overlap,
      catchUp,
      paused,
      deadline,
      onFailure,
      lastTick,
      // A deadline given now holds the runs from now on, not the ones before it.
      checkedUntil: prior.deadline === null && deadline !== null ? now - 1 : prior.checkedUntil,
      nextAt: nextTick(timing, lastTick),
      updatedAt: now,
    },
  };
}

/** Pause or resume; a resume starts from `now` (the ticks while paused are not owed). */
export function pauseSchedule(prior: ScheduleState, paused: boolean, now: number): ScheduleState {
  if (prior.paused === paused) return prior;
  const lastTick = paused ? prior.lastTick : now;
  return { ...prior, paused, lastTick, nextAt: nextTick(prior, lastTick), updatedAt: now };
}

/** The ticks a schedule owes at `now` and where it then stands (see dueTicks). */
export function owedAt(s: ScheduleState, now: number): { ticks: number[]; lastTick: number } {
  if (s.paused || s.nextAt === null || s.nextAt > now) return { ticks: [], lastTick: s.lastTick };
  return {
    ticks: dueTicks(s, s.lastTick, now, s.catchUp),
    lastTick: lastTickBy(s, s.lastTick, now) ?? s.lastTick,
  };
}

/** The timing in words, for people: "At 03:00 (Europe/Berlin)", "Every 60 seconds". */
export function describeTiming(t: Timing): string {
  if (t.every !== null) return t.every === 1 ? 'Every second' : `Every ${t.every} seconds`;
  let words: string;
  try {
    words = cronstrue.toString(t.cron!, { use24HourTimeFormat: true });
  } catch {
    words = t.cron!;
  }
  return t.timezone === 'UTC' ? `${words} (UTC)` : `${words} (${t.timezone})`;
}

/** Why a run failed: it died (after its attempts, or expired), or missed its deadline. */
export type RunFailure = 'dead' | 'missed';

/** What the deadline pass needs of a run. */
export interface RunState {
  status: 'open' | 'claimed' | 'fulfilled' | 'dead';
  scheduledFor: number;
  completedAt: number | null;
}

/**
 * Whether a run missed its deadline (seconds after its tick), judged at or after the
 * deadline: it was not fulfilled by then. A run that died before it is dead, not missed
 * (its alert, if any, says so); one fulfilled or dead only after it was missed first.
 */
export function missedDeadline(run: RunState, deadline: number): boolean {
  const due = run.scheduledFor + deadline * 1000;
  const finishedInTime =
    (run.status === 'fulfilled' || run.status === 'dead') &&
    run.completedAt !== null &&
    run.completedAt <= due;
  return !finishedInTime;
}

/** The members of the alert's payload the bus writes; on_failure.payload may not use them. */
export const ALERT_MEMBERS = ['schedule', 'run', 'reason', 'error', 'deadline'] as const;

/** The run an alert is about. */
export interface FailedRun {
  id: string;
  scheduledFor: number;
  status: RunState['status'];
  error: string | null;
  deadReason: string | null;
}

/**
 * The payload of a failed run's alert, as JSON text: the schedule, the run, the reason
 * (`dead` with the run's last error, or its dead reason; `missed` with the deadline) and then
 * the members of on_failure.payload, exactly as they were sent.
 */
export function alertPayload(
  s: { name: string; deadline: number | null },
  run: FailedRun,
  reason: RunFailure,
  extraText: string | undefined,
): string {
  const own = JSON.stringify({
    schedule: s.name,
    run: { id: run.id, scheduled_for: run.scheduledFor / 1000, status: run.status },
    reason,
    error: reason === 'dead' ? (run.error ?? run.deadReason) : null,
    deadline: s.deadline,
  });
  const inner = extraText?.trim().slice(1, -1).trim() ?? '';
  return inner === '' ? own : `${own.slice(0, -1)},${inner}}`;
}

/** What became of a run: its status, or `cancelled`, or `missed` (see missedDeadline). */
export function runOutcome(
  status: RunState['status'],
  deadReason: string | null,
  failure: RunFailure | null,
): RunState['status'] | 'cancelled' | 'missed' {
  if (failure === 'missed') return 'missed';
  if (status === 'dead' && deadReason === 'cancelled') return 'cancelled';
  return status;
}
