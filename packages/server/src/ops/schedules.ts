/**
 * Schedules (issue 17): a key's recurring intents. The routes parse; these decide what a
 * request may do, have the store act in one atomic step and announce every run published,
 * so that waiting claims wake for a run as for a publish. The ticker (housekeeping) runs
 * tickSchedules every second, on one node at a time.
 */
import {
  LIMITS,
  rawMember,
  schemas,
  withRawMembers,
  type PublishRequest,
  type ScheduleIntent,
  type ScheduleRequest,
} from '@intent-bus/protocol';
import { BusError, invalid, notFound } from '../core/errors.js';
import type { Log } from '../core/log.js';
import { MAIN_KEY_ID, type Principal } from '../core/principal.js';
import {
  ALERT_MEMBERS,
  alertPayload,
  checkTiming,
  nextTicks,
  type ScheduleDefinition,
} from '../core/schedule.js';
import { REASON_CANCELLED } from '../core/lifecycle.js';
import { checkJsonValue, normalizePublish } from '../core/validate.js';
import type { BusEvents } from '../events.js';
import { timeOrderedId } from '../ids.js';
import type {
  AlertMaker,
  FailureOutcome,
  IntentRow,
  RunFailureRow,
  RunMaker,
  ScheduleRow,
  Store,
} from '../store/store.js';
import type { OpsContext } from './context.js';

/**
 * The members of a schedule's intent as stored, in the order of its schema (the payload
 * last, as sent).
 */
const INTENT_FIELDS = (
  Object.keys(schemas.scheduleBody.properties.intent.properties) as Array<keyof ScheduleIntent>
).filter((f) => f !== 'payload');

/** The intent of a schedule's runs as JSON text, its payload exactly as sent. */
function storedIntent(intent: ScheduleIntent, payloadText: string | undefined): string {
  const out: Record<string, unknown> = {};
  for (const f of INTENT_FIELDS) if (intent[f] !== undefined) out[f] = intent[f];
  return withRawMembers(out, { payload: payloadText ?? JSON.stringify(intent.payload) });
}

/** The run of schedule `s` for the tick `scheduledFor`, published at `now`. */
export const makeRun: RunMaker = (s, scheduledFor, now) => ({
  ...normalizePublish(JSON.parse(s.intent) as PublishRequest, {
    id: timeOrderedId(now),
    publisher: s.owner,
    now,
    payloadText: rawMember(s.intent, 'payload'),
  }),
  schedule: s.name,
  scheduledFor,
});

/**
 * The alert of a run that failed: an intent of the schedule's key, with on_failure's goal and
 * namespace, whose payload names the schedule, the run and the reason (core alertPayload).
 * It is not counted against a tester key's quota: there is at most one per run, and the
 * runs are.
 */
export const makeAlert: AlertMaker = (s, run, reason, now) => {
  const f = JSON.parse(s.onFailure!) as { goal: string; namespace?: string };
  return normalizePublish(
    { goal: f.goal, namespace: f.namespace, payload: null },
    {
      id: timeOrderedId(now),
      publisher: s.owner,
      now,
      payloadText: alertPayload(
        s,
        { ...run, scheduledFor: run.scheduledFor! },
        reason,
        rawMember(s.onFailure!, 'payload'),
      ),
    },
  );
};

/** A tester key's runs count against its quota of open and claimed intents. */
const quotaOf = (owner: string, maxOpenPerKey: number): number | null =>
  owner === MAIN_KEY_ID ? null : maxOpenPerKey;

export interface ScheduleInput {
  name: string;
  body: ScheduleRequest;
  /** The exact text of the body's `intent` member (its payload is kept as sent). */
  intentText: string | undefined;
  /** The exact text of the body's `on_failure` member. */
  onFailureText: string | undefined;
}

/** on_failure as stored (JSON text, its payload as sent), or 400 naming the field. */
function storedAlert(body: ScheduleRequest, text: string | undefined): string | null {
  const f = body.on_failure;
  if (f === undefined) return null;
  const goal = f.goal.trim();
  if (goal.length < 1 || goal.length > LIMITS.goalMaxLength) {
    throw invalid(
      'on_failure.goal',
      `on_failure.goal must be 1-${LIMITS.goalMaxLength} characters after trimming`,
    );
  }
  if (f.payload === undefined) {
    return JSON.stringify({ goal, ...(f.namespace !== undefined && { namespace: f.namespace }) });
  }
  checkJsonValue('on_failure.payload', f.payload);
  const taken = ALERT_MEMBERS.find((m) => Object.hasOwn(f.payload!, m));
  if (taken !== undefined) {
    throw invalid(
      `on_failure.payload.${taken}`,
      `on_failure.payload may not hold "${taken}": the alert's payload has its own (${ALERT_MEMBERS.join(', ')})`,
    );
  }
  const payloadText =
    (text === undefined ? undefined : rawMember(text, 'payload')) ?? JSON.stringify(f.payload);
  return withRawMembers(
    { goal, ...(f.namespace !== undefined && { namespace: f.namespace }) },
    { payload: payloadText },
  );
}

/** A PUT's body as a definition: 400 naming the field for anything a publish would refuse. */
export function definitionOf(p: Principal, input: ScheduleInput): ScheduleDefinition {
  const { body } = input;
  const timing = checkTiming(body);
  const payloadText =
    input.intentText === undefined ? undefined : rawMember(input.intentText, 'payload');
  try {
    normalizePublish(body.intent, { id: '', publisher: p.keyId, now: 0, payloadText });
  } catch (err) {
    if (err instanceof BusError && err.extra.field !== undefined) {
      throw new BusError(err.code, `intent.${err.message}`, { field: `intent.${err.extra.field}` });
    }
    throw err;
  }
  return {
    owner: p.keyId,
    name: input.name,
    ...timing,
    intent: storedIntent(body.intent, payloadText),
    overlap: body.overlap ?? 'allow',
    catchUp: body.catch_up ?? 'latest',
    paused: body.paused ?? null,
    deadline: body.deadline ?? null,
    onFailure: storedAlert(body, input.onFailureText),
  };
}

const missing = (): BusError => notFound('Schedule not found');

/** Creates (201), replaces or leaves unchanged (200) the key's schedule of that name. */
export async function putSchedule(
  ctx: OpsContext,
  p: Principal,
  input: ScheduleInput,
): Promise<{ status: 200 | 201; row: ScheduleRow }> {
  const out = await ctx.store.schedulePut(definitionOf(p, input), ctx.clock.now());
  return { status: out.kind === 'created' ? 201 : 200, row: out.row };
}

export function listSchedules(ctx: OpsContext, p: Principal): Promise<ScheduleRow[]> {
  return ctx.store.scheduleList(p.keyId);
}

export interface ScheduleView {
  row: ScheduleRow;
  /** The next fire times (ms), none while paused. */
  next: number[];
  /** The newest runs first. */
  runs: IntentRow[];
  /** The failures recorded for those runs, by tick. */
  failures: Map<number, RunFailureRow>;
}

/** One of the key's schedules, its next fire times and its last runs; 404 for another's. */
export async function showSchedule(
  ctx: OpsContext,
  p: Principal,
  name: string,
  runsShown: number = LIMITS.scheduleRunsShown,
): Promise<ScheduleView> {
  const row = await ctx.store.scheduleGet(p.keyId, name);
  if (!row) throw missing();
  const next =
    row.paused || row.nextAt === null
      ? []
      : nextTicks(row, Math.max(row.lastTick, ctx.clock.now()), LIMITS.scheduleNextShown);
  const runs = await ctx.store.scheduleRuns(p.keyId, name, runsShown);
  const failures = new Map<number, RunFailureRow>();
  if (runs.length > 0) {
    const ticks = runs.map((r) => r.scheduledFor!);
    const recorded = await ctx.store.scheduleFailures(
      p.keyId,
      name,
      Math.min(...ticks),
      Math.max(...ticks),
    );
    for (const f of recorded) failures.set(f.scheduledFor, f);
  }
  return { row, next, runs, failures };
}

/** The principal an admin acts as on a key's schedule: its owner. */
export const ownerOf = (keyId: string): Principal => ({
  keyId,
  isMain: keyId === MAIN_KEY_ID,
  keyHash: null,
});

/** At most this many schedules in the admin's view, each with its last runs. */
const ADMIN_SCHEDULES = 200;
const ADMIN_RUNS = 10;

/** Every key's schedules with their next runs and last runs (the dashboard's view). */
export async function allSchedules(ctx: OpsContext): Promise<ScheduleView[]> {
  const out: ScheduleView[] = [];
  for (const row of await ctx.store.schedulesAll(ADMIN_SCHEDULES)) {
    try {
      out.push(await showSchedule(ctx, ownerOf(row.owner), row.name, ADMIN_RUNS));
    } catch (err) {
      // Deleted since it was listed.
      if (!(err instanceof BusError && err.code === 'not_found')) throw err;
    }
  }
  return out;
}

export async function deleteSchedule(ctx: OpsContext, p: Principal, name: string): Promise<void> {
  if (!(await ctx.store.scheduleDelete(p.keyId, name))) throw missing();
}

/** Pause (no more ticks) or resume (ticking from now: the ticks while paused are not owed). */
export async function pauseSchedule(
  ctx: OpsContext,
  p: Principal,
  name: string,
  paused: boolean,
): Promise<ScheduleRow> {
  const row = await ctx.store.schedulePause(p.keyId, name, paused, ctx.clock.now());
  if (!row) throw missing();
  return row;
}

/** Publishes one run now, paused or not and whatever the overlap policy: it was asked for. */
export async function triggerSchedule(
  ctx: OpsContext,
  p: Principal,
  name: string,
): Promise<IntentRow> {
  const maxOpen = quotaOf(p.keyId, ctx.config.maxOpenPerKey);
  const out = await ctx.store.scheduleTrigger(p.keyId, name, ctx.clock.now(), makeRun, maxOpen);
  if (out.kind === 'not_found') throw missing();
  if (out.kind === 'limit_exceeded') {
    throw new BusError(
      'limit_exceeded',
      `This key has ${out.open} open or claimed intents (limit ${maxOpen})`,
      { retryAfterSeconds: 5 },
    );
  }
  if (out.kind === 'created') ctx.events.published(out.row);
  return out.row;
}

export interface TickContext {
  store: Store;
  events: BusEvents;
  clock: { now(): number };
  log: Log;
  maxOpenPerKey: number;
}

const DUE_BATCH = 200;

/**
 * Publishes every run owed now, schedule by schedule (each in one atomic step of the
 * store), and announces them. One schedule that fails is logged and left for the next
 * pass; the others go on.
 */
export async function tickSchedules(ctx: TickContext): Promise<number> {
  const now = ctx.clock.now();
  let published = 0;
  const due = await ctx.store.schedulesDue(now, DUE_BATCH);
  for (const { owner, name } of due) {
    try {
      const out = await ctx.store.scheduleTick(
        owner,
        name,
        now,
        makeRun,
        quotaOf(owner, ctx.maxOpenPerKey),
      );
      for (const row of out.published) ctx.events.published(row);
      published += out.published.length;
      // Counted, not logged: a schedule every second with a long run lets a tick go each second.
      if (out.skipped > 0) ctx.events.scheduleSkipped(owner, name, out.skipped);
    } catch (err) {
      ctx.log.warn({ err, owner, schedule: name }, 'schedule tick failed');
    }
  }
  return published;
}

/** What a run's failure needs: the store, where to announce it, a clock and a log. */
export interface FailureContext {
  store: Store;
  events: BusEvents;
  clock: { now(): number };
  log: Log;
}

/** Announces a failure this node recorded, and the alert published with it. */
function announceFailure(ctx: FailureContext, out: FailureOutcome): void {
  if (!out.recorded) return;
  ctx.events.runFailed(out);
  if (out.alert !== null) ctx.events.published(out.alert);
}

/** Whether a dead intent is a run whose death is a failure (an admin's cancel is not). */
const diedAsRun = (row: IntentRow): boolean =>
  row.schedule !== null && row.status === 'dead' && row.deadReason !== REASON_CANCELLED;

/**
 * A schedule's run died (BusEvents reports it as it happens): its failure is recorded and
 * its alert published, once. A failure here is logged; the pass of RunWatch finds the run.
 */
export async function runDied(ctx: FailureContext, row: IntentRow): Promise<void> {
  if (!diedAsRun(row)) return;
  try {
    announceFailure(
      ctx,
      await ctx.store.scheduleRunFailed(row, 'dead', ctx.clock.now(), makeAlert),
    );
  } catch (err) {
    ctx.log.warn({ err, schedule: row.schedule, run: row.id }, 'recording a failed run failed');
  }
}

const WATCH_BATCH = 200;
/** How far back each pass looks for a dead run whose failure was not recorded. */
const DEAD_LOOKBACK_MS = 60_000;

/**
 * The second half of the ticker's pass (one node at a time): the runs of every schedule
 * with a deadline held to it (missed ones recorded and alerted), and the dead runs whose
 * death was not recorded as it happened (the node that made it stopped first) recorded
 * now. The first pass of a node looks back over the retention time, later ones a minute.
 */
export class RunWatch {
  private since: number | null = null;

  constructor(private readonly retentionSeconds: number) {}

  async pass(ctx: FailureContext): Promise<number> {
    const now = ctx.clock.now();
    let recorded = 0;
    for (const { owner, name } of await ctx.store.schedulesWithDeadline()) {
      try {
        for (const out of await ctx.store.scheduleCheckDeadline(
          owner,
          name,
          now,
          makeAlert,
          WATCH_BATCH,
        )) {
          announceFailure(ctx, out);
          recorded++;
        }
      } catch (err) {
        ctx.log.warn({ err, owner, schedule: name }, 'schedule deadline check failed');
      }
    }
    const since = this.since ?? now - this.retentionSeconds * 1000;
    const dead = await ctx.store.runsDeadUnrecorded(since, WATCH_BATCH);
    for (const row of dead) {
      const out = await ctx.store.scheduleRunFailed(row, 'dead', now, makeAlert);
      announceFailure(ctx, out);
      if (out.recorded) recorded++;
    }
    this.since =
      dead.length === WATCH_BATCH
        ? dead.at(-1)!.completedAt!
        : Math.max(since, now - DEAD_LOOKBACK_MS);
    return recorded;
  }
}
