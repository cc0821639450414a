/** Store rows → the JSON objects of PROTOCOL.md §5 (times in unix seconds). */
import type {
  AdminIntent,
  ClaimedIntent,
  DeadLetter,
  GoalInfo,
  GoalWaitReason,
  FlowControlObject,
  KeyInfo,
  Progress,
  ResultObject,
  Schedule,
  ScheduleRun,
  StatusObject,
  WorkerInfo,
} from '@intent-bus/protocol';
import { withRawMembers } from '@intent-bus/protocol';
import { toSeconds, toSecondsOrNull } from '../core/clock.js';
import { describeTiming, runOutcome } from '../core/schedule.js';
import type { FlowControl } from '../core/flow.js';
import type { ApiKeyRow, IntentRow, RunFailureRow, ScheduleRow } from '../store/store.js';
import type { GoalReport, WaitReason } from '../ops/fleet.js';
import type { WorkerView } from '../ops/workers.js';

export const JSON_TYPE = 'application/json; charset=utf-8';

/** A claimed intent (§5.2) as JSON text, its payload exactly as published. */
export function claimedIntent(row: IntentRow, claimTimeoutSeconds: number): string {
  const out: Omit<ClaimedIntent, 'payload'> = {
    id: row.id,
    namespace: row.namespace,
    goal: row.goal,
    claim_attempts: row.claimAttempts,
    priority: row.priority,
    target_worker: row.targetWorker,
    required_capability: row.requiredCapability,
    claim_token: row.claimToken!,
    claim_timeout: claimTimeoutSeconds,
    claim_expires_at: toSeconds(row.claimExpiresAt!),
  };
  return withRawMembers(out, { payload: row.payload });
}

export function statusFields(row: IntentRow): Omit<StatusObject, 'progress'> {
  const out: Omit<StatusObject, 'progress'> = {
    id: row.id,
    namespace: row.namespace,
    goal: row.goal,
    status: row.status,
    priority: row.priority,
    visibility: row.visibility,
    claim_attempts: row.claimAttempts,
    max_attempts: row.maxAttempts,
    run_at: toSeconds(row.runAt),
    created_at: toSeconds(row.createdAt),
    expires_at: toSeconds(row.expiresAt),
    claim_expires_at: toSecondsOrNull(row.claimExpiresAt),
    target_worker: row.targetWorker,
    required_capability: row.requiredCapability,
    worker_id: row.workerId,
    schedule: row.schedule,
    scheduled_for: toSecondsOrNull(row.scheduledFor),
  };
  if (row.error != null) out.error = row.error;
  if (row.deadReason != null) out.dead_reason = row.deadReason;
  return out;
}

/** The last progress [ext] as JSON text, its data exactly as the worker sent it; or null. */
export function progressText(row: IntentRow): string | null {
  if (row.progressAt == null) return null;
  const out: Omit<Progress, 'data'> = {
    percent: row.progressPercent,
    message: row.progressMessage,
    at: toSeconds(row.progressAt),
  };
  return withRawMembers(out, { data: row.progressData });
}

/** The status object (§5.3) as JSON text, with `extra` members. */
export function statusObject(row: IntentRow, extra: Partial<StatusObject> = {}): string {
  return withRawMembers({ ...statusFields(row), ...extra }, { progress: progressText(row) });
}

function resultFields(row: IntentRow): Omit<ResultObject, keyof StatusObject | 'result'> {
  return { result_type: row.resultType, completed_at: toSecondsOrNull(row.completedAt) };
}

/** The status object with the result (§5.3) as JSON text, the result exactly as sent. */
export function resultObject(row: IntentRow): string {
  return withRawMembers(
    { ...statusFields(row), ...resultFields(row) },
    { progress: progressText(row), result: row.result },
  );
}

/** A flow control (ops/flow.ts) [ext]; `removed` when nothing is left set. */
export function flowObject(
  c: FlowControl | null,
  namespace: string,
  goal: string,
): FlowControlObject {
  return {
    namespace,
    goal,
    paused: c?.paused ?? false,
    max_in_flight: c?.maxInFlight ?? null,
    rate: c?.rate ? { limit: c.rate.limit, per: c.rate.per } : null,
    updated_at: c ? toSeconds(c.updatedAt) : null,
  };
}

/** Everything about an intent, for the admin. */
export function adminIntent(row: IntentRow): string {
  const out: Omit<AdminIntent, 'payload' | 'result' | 'progress'> = {
    ...statusFields(row),
    ...resultFields(row),
    publisher: row.publisher,
    backoff_base: row.backoffBase,
    ttl: row.ttl,
    dead_reason: row.deadReason,
  };
  return withRawMembers(out, {
    progress: progressText(row),
    payload: row.payload,
    result: row.result,
  });
}

export function deadLetter(row: IntentRow): DeadLetter {
  return {
    intent_id: row.id,
    namespace: row.namespace,
    goal: row.goal,
    attempts: row.claimAttempts,
    reason: row.deadReason ?? row.error ?? 'dead',
    created_at: toSeconds(row.completedAt ?? row.createdAt),
  };
}

export function keyInfo(row: ApiKeyRow): KeyInfo {
  return {
    key_id: row.keyId,
    owner: row.owner,
    prefix: row.prefix,
    created_at: toSeconds(row.createdAt),
    last_used_at: toSecondsOrNull(row.lastUsedAt),
    requests: row.requests,
  };
}

/** A schedule (its intent spliced in as stored: the payload exactly as sent). */
export function scheduleObject(row: ScheduleRow, extra: object = {}): string {
  const out: Omit<Schedule, 'intent' | 'on_failure'> = {
    name: row.name,
    cron: row.cron,
    every: row.every,
    timezone: row.timezone,
    description: describeTiming(row),
    overlap: row.overlap,
    catch_up: row.catchUp,
    paused: row.paused,
    created_at: toSeconds(row.createdAt),
    updated_at: toSeconds(row.updatedAt),
    last_tick: toSeconds(row.lastTick),
    next_run_at: row.paused ? null : toSecondsOrNull(row.nextAt),
    deadline: row.deadline,
    ...extra,
  };
  return withRawMembers(out, { intent: row.intent, on_failure: row.onFailure });
}

/** A run with what became of it (its failure, if one was recorded). */
export function scheduleRun(row: IntentRow, failure: RunFailureRow | undefined): ScheduleRun {
  return {
    id: row.id,
    scheduled_for: toSeconds(row.scheduledFor!),
    status: row.status,
    claim_attempts: row.claimAttempts,
    created_at: toSeconds(row.createdAt),
    completed_at: toSecondsOrNull(row.completedAt),
    dead_reason: row.deadReason,
    outcome: runOutcome(row.status, row.deadReason, failure?.reason ?? null),
    alert_id: failure?.alertId ?? null,
  };
}

/** [ext] A worker (issue 18). */
export function workerObject(w: WorkerView): WorkerInfo {
  const uniq = (xs: Array<string | null>): string[] => [
    ...new Set(xs.filter((x): x is string => x != null)),
  ];
  return {
    worker_id: w.workerId,
    key_id: w.keyId,
    status: w.status,
    command: w.command,
    capabilities: w.capabilities,
    namespaces: uniq(w.asks.map((a) => a[0])),
    goals: uniq(w.asks.map((a) => a[1])),
    user_agent: w.userAgent,
    address: w.address,
    first_seen: toSeconds(w.firstSeen),
    last_seen: toSeconds(w.lastSeen),
    fulfilled: w.fulfilled,
    failed: w.failed,
    last_error: w.lastError,
    holds: w.holds.map((h) => ({
      id: h.id,
      namespace: h.namespace,
      goal: h.goal,
      claim_expires_at: toSeconds(h.claimExpiresAt),
    })),
  };
}

/** [ext] One goal of /admin/goals, the reasons in words too. */
export function goalObject(g: GoalReport, now: number): GoalInfo {
  return {
    namespace: g.namespace,
    goal: g.goal,
    open: g.open,
    claimed: g.claimed,
    dead: g.dead,
    oldest_open_age_seconds: g.oldestOpen == null ? null : Math.max(0, (now - g.oldestOpen) / 1000),
    waiting: g.waiting.map(waitReason),
  };
}

function waitReason(r: WaitReason): GoalWaitReason {
  const n = `${r.intents} open intent${r.intents === 1 ? '' : 's'}`;
  switch (r.reason) {
    case 'no_worker':
      return { ...r, message: `${n}: no worker online for this goal` };
    case 'no_capability':
      return { ...r, message: `${n}: no online worker has capability ${r.capability}` };
    case 'target_offline': {
      const since =
        r.lastSeen == null ? 'never seen' : `offline since ${new Date(r.lastSeen).toISOString()}`;
      return {
        reason: r.reason,
        target_worker: r.targetWorker,
        last_seen: toSecondsOrNull(r.lastSeen),
        intents: r.intents,
        message: `${n}: target worker ${r.targetWorker} ${since}`,
      };
    }
    case 'private_unused':
      return {
        ...r,
        message: `${n}: private intents of key ${r.publisher}, which no online worker uses`,
      };
    case 'no_match':
      return { ...r, message: `${n}: no online worker's claim matches them` };
  }
}
