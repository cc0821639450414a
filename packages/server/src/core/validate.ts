/**
 * Checks that JSON schemas cannot express, and the defaults of PROTOCOL.md §5.1.
 * Types and ranges were already enforced by the route's schema.
 */
import { LIMITS, type PublishRequest, type Visibility } from '@intent-bus/protocol';
import { invalid } from './errors.js';

/** True when `value` nests arrays/objects deeper than `max` levels. Iterative: no stack risk. */
export function nestingExceeds(value: unknown, max: number): boolean {
  const stack: Array<{ v: unknown; d: number }> = [{ v: value, d: 0 }];
  while (stack.length > 0) {
    const { v, d } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (d + 1 > max) return true;
    const children = Array.isArray(v) ? v : Object.values(v as object);
    for (const c of children)
      if (c !== null && typeof c === 'object') stack.push({ v: c, d: d + 1 });
  }
  return false;
}

export function checkJsonValue(field: string, value: unknown): void {
  if (nestingExceeds(value, LIMITS.payloadMaxDepth)) {
    throw invalid(field, `${field} nests deeper than ${LIMITS.payloadMaxDepth} levels`);
  }
}

/** A publish request resolved to the values the store keeps (times in ms). */
export interface NewIntent {
  id: string;
  namespace: string;
  goal: string;
  payload: string;
  publisher: string;
  visibility: Visibility;
  priority: number;
  runAt: number;
  createdAt: number;
  expiresAt: number;
  maxAttempts: number;
  backoffBase: number;
  ttl: number;
  targetWorker: string | null;
  requiredCapability: string | null;
  /** A schedule's run: its schedule's name and the tick it is for (ms); else null. */
  schedule: string | null;
  scheduledFor: number | null;
}

export function normalizePublish(
  body: PublishRequest,
  ctx: { id: string; publisher: string; now: number; payloadText?: string },
): NewIntent {
  const goal = body.goal.trim();
  if (goal.length < 1 || goal.length > LIMITS.goalMaxLength) {
    throw invalid('goal', `goal must be 1-${LIMITS.goalMaxLength} characters after trimming`);
  }
  checkJsonValue('payload', body.payload);
  const delayMs = Math.round((body.delay ?? LIMITS.delaySeconds.default) * 1000);
  const ttl = body.ttl ?? LIMITS.ttlSeconds.default;
  const runAt = ctx.now + delayMs;
  return {
    id: ctx.id,
    namespace: body.namespace ?? LIMITS.defaultNamespace,
    goal,
    // The payload as the client sent it when known (numbers kept exactly).
    payload: ctx.payloadText ?? JSON.stringify(body.payload),
    publisher: ctx.publisher,
    visibility: body.visibility ?? 'private',
    priority: body.priority ?? LIMITS.priority.default,
    runAt,
    createdAt: ctx.now,
    expiresAt: runAt + Math.round(ttl * 1000),
    maxAttempts: body.max_attempts ?? LIMITS.maxAttempts.default,
    backoffBase: body.backoff_base ?? LIMITS.backoffBaseSeconds.default,
    ttl,
    targetWorker: body.target_worker ?? null,
    requiredCapability: body.required_capability ?? null,
    schedule: null,
    scheduledFor: null,
  };
}

/** Worker error text is kept, cut to 500 characters. */
export const truncateError = (error: string | null | undefined): string | null =>
  error == null ? null : error.slice(0, LIMITS.errorMaxLength);

/** KV ttl out of range is clamped, not refused (PROTOCOL.md §5). */
export function clampKvTtl(ttl: number | undefined): number {
  const { min, max, default: def } = LIMITS.kvTtlSeconds;
  if (ttl == null) return def;
  return Math.min(max, Math.max(min, ttl));
}
