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
import { BusError, notFound } from '../core/errors.js';
import type { Log } from '../core/log.js';
import { MAIN_KEY_ID, type Principal } from '../core/principal.js';
import { checkTiming, nextTicks, type ScheduleDefinition } from '../core/schedule.js';
import { normalizePublish } from '../core/validate.js';
import type { BusEvents } from '../events.js';
import { randomHex128 } from '../ids.js';
import type { IntentRow, RunMaker, ScheduleRow, Store } from '../store/store.js';
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
    id: randomHex128(),
    publisher: s.owner,
    now,
    payloadText: rawMember(s.intent, 'payload'),
  }),
  schedule: s.name,
  scheduledFor,
});

/** A tester key's runs count against its quota of open and claimed intents. */
const quotaOf = (owner: string, maxOpenPerKey: number): number | null =>
  owner === MAIN_KEY_ID ? null : maxOpenPerKey;

export interface ScheduleInput {
  name: string;
  body: ScheduleRequest;
  /** The exact text of the body's `intent` member (its payload is kept as sent). */
  intentText: string | undefined;
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
}

/** One of the key's schedules, its next fire times and its last runs; 404 for another's. */
export async function showSchedule(
  ctx: OpsContext,
  p: Principal,
  name: string,
): Promise<ScheduleView> {
  const row = await ctx.store.scheduleGet(p.keyId, name);
  if (!row) throw missing();
  const next =
    row.paused || row.nextAt === null
      ? []
      : nextTicks(row, Math.max(row.lastTick, ctx.clock.now()), LIMITS.scheduleNextShown);
  const runs = await ctx.store.scheduleRuns(p.keyId, name, LIMITS.scheduleRunsShown);
  return { row, next, runs };
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
      if (out.skipped > 0) {
        ctx.log.info(
          { owner, schedule: name, published: out.published.length, skipped: out.skipped },
          'schedule ticks let go (overlap skip or quota)',
        );
      }
    } catch (err) {
      ctx.log.warn({ err, owner, schedule: name }, 'schedule tick failed');
    }
  }
  return published;
}
