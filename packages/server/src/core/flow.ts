/**
 * Flow control (issue 19): per namespace and goal (goal `*`: the whole namespace), a
 * pause, a limit on the intents claimed at once and a rate. Pure: what a change makes of a
 * control, and whether a control holds a claim back given what the store counted.
 *
 * The rate is a sliding window over the claims themselves (store table flow_claims): at
 * most `limit` claims in any `per` seconds, so it is exact over any window, never the
 * burst of twice the limit a token bucket or a fixed window allows at its edge.
 */

import type { IntentRow } from './intent-record.js';

/** Goal `*` names the whole namespace. */
export const WHOLE_NAMESPACE = '*';

export interface FlowRate {
  limit: number;
  /** Seconds. */
  per: number;
}

export interface FlowControl {
  namespace: string;
  goal: string;
  paused: boolean;
  maxInFlight: number | null;
  rate: FlowRate | null;
  updatedAt: number;
}

/** A change: a member not given stays; null clears. */
export interface FlowPatch {
  paused?: boolean;
  maxInFlight?: number | null;
  rate?: FlowRate | null;
}

export type HeldBy = 'paused' | 'max_in_flight' | 'rate';

export interface Hold {
  by: HeldBy;
  /** When capacity may return (ms), or null (paused: when someone resumes). */
  retryAt: number | null;
}

/** How long a claim held by max_in_flight is told to wait: a slot's end is not foreseen. */
export const IN_FLIGHT_RETRY_MS = 1000;

/** The control after the change, or null when nothing is left set (it is removed). */
export function mergeFlow(
  current: FlowControl | null,
  namespace: string,
  goal: string,
  patch: FlowPatch,
  now: number,
): FlowControl | null {
  const next: FlowControl = {
    namespace,
    goal,
    paused: patch.paused ?? current?.paused ?? false,
    maxInFlight:
      patch.maxInFlight !== undefined ? patch.maxInFlight : (current?.maxInFlight ?? null),
    rate: patch.rate !== undefined ? patch.rate : (current?.rate ?? null),
    updatedAt: now,
  };
  return isEmpty(next) ? null : next;
}

export const isEmpty = (c: FlowControl): boolean =>
  !c.paused && c.maxInFlight == null && c.rate == null;

/** What the store counted for one control at one moment. */
export interface FlowUsage {
  /** Its intents claimed now. */
  inFlight: number;
  /** Claims inside the rate's window, and the oldest one's time. */
  recent: number;
  oldestRecentAt: number | null;
}

/**
 * The time a rate's window is reckoned at: now, or its newest claim's time if that is
 * later. Claims take their time before they wait for the flow lock, so one may come after
 * a later one; reckoned this way the recorded times only grow, and neither the count nor
 * the removal of the claims the window has left ever misses one still inside it.
 */
export const windowTime = (now: number, newestAt: number | null): number =>
  newestAt != null && newestAt > now ? newestAt : now;

/** Whether the control holds a claim back now (paused first, then in flight, then rate). */
export function holdOf(c: FlowControl, usage: FlowUsage, now: number): Hold | null {
  if (c.paused) return { by: 'paused', retryAt: null };
  if (c.maxInFlight != null && usage.inFlight >= c.maxInFlight)
    return { by: 'max_in_flight', retryAt: now + IN_FLIGHT_RETRY_MS };
  if (c.rate != null && usage.recent >= c.rate.limit)
    return { by: 'rate', retryAt: (usage.oldestRecentAt ?? now) + c.rate.per * 1000 };
  return null;
}

/** The controls that apply to an intent of `goal` in the namespace's set. */
export const controlsFor = (set: readonly FlowControl[], goal: string): FlowControl[] =>
  set.filter((c) => c.goal === WHOLE_NAMESPACE || c.goal === goal);

/** What a controlled claim found: the intent, or what holds the first one it may not take. */
export interface FlowClaim {
  row: IntentRow | null;
  held: FlowHeld | null;
}

export interface FlowHeld {
  /** The goal of the intent held back. */
  goal: string;
  /** The control's goal ('*': the whole namespace's). */
  control: string;
  hold: Hold;
}
