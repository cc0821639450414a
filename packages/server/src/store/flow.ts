/**
 * The flow-control programs (core/flow.ts decides): a control's change, and the claim that
 * obeys the controls of its namespace. The claim first takes the lock of each control it
 * is under (an advisory lock on PostgreSQL, nothing on SQLite's single writer), so that
 * counting what is in flight or inside a rate's window and taking the intent are one step
 * across every node: no two claims under the same control count at the same time.
 */
import {
  WHOLE_NAMESPACE,
  holdOf,
  mergeFlow,
  windowTime,
  type FlowControl,
  type FlowPatch,
  type FlowClaim,
  type FlowUsage,
  type Hold,
} from '../core/flow.js';
import type { IntentRow } from '../core/intent-record.js';
import { get, lock, one, run, type Program } from './program.js';
import type { ClaimParams, FlowRecord } from './statements.js';

export const controlOf = (r: FlowRecord): FlowControl => ({
  namespace: r.namespace,
  goal: r.goal,
  paused: r.paused === 1,
  maxInFlight: r.maxInFlight,
  rate: r.rateLimit != null && r.ratePer != null ? { limit: r.rateLimit, per: r.ratePer } : null,
  updatedAt: r.updatedAt,
});

export const recordOf = (c: FlowControl): FlowRecord => ({
  namespace: c.namespace,
  goal: c.goal,
  paused: c.paused ? 1 : 0,
  maxInFlight: c.maxInFlight,
  rateLimit: c.rate?.limit ?? null,
  ratePer: c.rate?.per ?? null,
  updatedAt: c.updatedAt,
});

/** Changes a control (null: nothing left, removed) under its lock. */
export function* flowPut(
  namespace: string,
  goal: string,
  patch: FlowPatch,
  now: number,
): Program<FlowControl | null> {
  yield* lock('flow', `${namespace}/${goal}`);
  const found = yield* get('flowGet', { namespace, goal });
  const next = mergeFlow(found && controlOf(found), namespace, goal, patch, now);
  if (next === null) yield* run('flowDelete', { namespace, goal });
  else yield* run('flowUpsert', recordOf(next));
  // A rate cleared or changed starts a new window.
  if (next?.rate == null || found?.ratePer !== next.rate.per)
    yield* run('flowClaimsPrune', { namespace, goal, before: Number.MAX_SAFE_INTEGER });
  return next;
}

export function* flowDelete(namespace: string, goal: string): Program<boolean> {
  yield* lock('flow', `${namespace}/${goal}`);
  const found = yield* get('flowGet', { namespace, goal });
  if (found === null) return false;
  yield* run('flowDelete', { namespace, goal });
  yield* run('flowClaimsPrune', { namespace, goal, before: Number.MAX_SAFE_INTEGER });
  return true;
}

/** What the store counts for a control; `at`: the time its rate's window is reckoned at. */
function* usageOf(c: FlowControl, now: number): Program<FlowUsage & { at: number }> {
  const key = { namespace: c.namespace, goal: c.goal };
  const inFlight = c.maxInFlight != null ? (yield* one('flowInFlight', key)).n : 0;
  if (c.rate == null) return { inFlight, recent: 0, oldestRecentAt: null, at: now };
  const r = yield* one('flowRecent', { ...key, now, perMs: c.rate.per * 1000 });
  return { inFlight, recent: r.n, oldestRecentAt: r.oldest, at: windowTime(now, r.newest) };
}

const NONE = { inFlight: 0, recent: 0, oldestRecentAt: null };

/** Each control's hold now, by its goal, and the time each rate's window is reckoned at. */
export function* holdsOf(
  controls: readonly FlowControl[],
  now: number,
): Program<{ holds: Map<string, Hold>; at: Map<string, number> }> {
  const holds = new Map<string, Hold>();
  const at = new Map<string, number>();
  for (const c of controls) {
    const usage = c.paused ? { ...NONE, at: now } : yield* usageOf(c, now);
    const h = holdOf(c, usage, now);
    if (h) holds.set(c.goal, h);
    at.set(c.goal, usage.at);
  }
  return { holds, at };
}

/**
 * The claim under the controls of its namespace (all given are of it): a goal held back is
 * passed over and the next claimable intent in the §4 order is taken; a claim that takes
 * one inside a rate records it in the rate's window.
 */
export function* claimFlow(
  params: ClaimParams,
  plain: 'intentClaim' | 'intentClaimGoal' | 'intentClaimPublisher' | 'intentClaimGoalPublisher',
  controls: readonly FlowControl[],
): Program<FlowClaim> {
  const { namespace, now } = params;
  // One lock per control, always in the same order (no two claims wait for each other
  // crosswise): claims of goals that share no control do not wait for each other.
  for (const goal of controls.map((c) => c.goal).sort())
    yield* lock('flow', `${namespace}/${goal}`);
  const { holds, at } = yield* holdsOf(controls, now);
  const whole = holds.has(WHOLE_NAMESPACE);
  const held = [...holds.keys()];
  let row: IntentRow | null = null;
  if (!whole && !(params.goal != null && holds.has(params.goal))) {
    row =
      params.goal != null || held.length === 0
        ? yield* get(plain, params)
        : yield* get(
            params.publisher != null ? 'intentClaimExceptPublisher' : 'intentClaimExcept',
            {
              ...params,
              held,
            },
          );
  }
  if (row) {
    for (const c of controls) {
      if (c.rate == null || (c.goal !== WHOLE_NAMESPACE && c.goal !== row.goal)) continue;
      const key = { namespace, goal: c.goal };
      const t = at.get(c.goal) ?? now;
      yield* run('flowClaimsPrune', { ...key, before: t - c.rate.per * 1000 });
      yield* run('flowClaimRecord', { ...key, at: t, intentId: row.id });
    }
    return { row, held: null };
  }
  if (held.length === 0) return { row: null, held: null };
  // Nothing taken: was there an intent it would have taken but for a control?
  const found = yield* get('intentHeldGoal', { ...params, held, anyGoal: whole ? 1 : 0 });
  if (found === null) return { row: null, held: null };
  const control = whole ? WHOLE_NAMESPACE : found.goal;
  return { row: null, held: { goal: found.goal, control, hold: holds.get(control)! } };
}
