/**
 * Checks that JSON schemas cannot express, and the defaults of PROTOCOL.md §5.1.
 * Types and ranges were already enforced by the route's schema.
 */
import { LIMITS, schemas, type PublishRequest } from '@intent-bus/protocol';
import { invalid } from './errors.js';
import { WIRE_MEMBERS, type NewIntent, type WireMember } from './intent-record.js';

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

export type { NewIntent } from './intent-record.js';

const PUBLISH_PROPERTIES = schemas.publishBody.properties;
type PublishProperties = typeof PUBLISH_PROPERTIES;
/** A publish member's default: the schema's `default`, or null. */
type DefaultOf<W extends keyof PublishProperties> = PublishProperties[W] extends {
  readonly default: infer D;
}
  ? D
  : null;
/** What the copy gives each member: the value sent or the default. */
type Copied = {
  [M in WireMember as M['name']]:
    Exclude<PublishRequest[M['wire']], undefined> | DefaultOf<M['wire']>;
};
type CopiedMembers = Pick<NewIntent, WireMember['name']>;
/** Fails to compile when a request member or its default does not fit its column's kind. */
type CopyFits<T extends true> = T;
export type PublishCopyFits = CopyFits<Copied extends CopiedMembers ? true : false>;

/** The members a publish copies from its request (intent-record.ts `wire`). */
function copyMembers(body: PublishRequest): CopiedMembers {
  const out: Record<string, unknown> = {};
  for (const m of WIRE_MEMBERS) {
    const p = PUBLISH_PROPERTIES[m.wire];
    out[m.name] = body[m.wire] ?? ('default' in p ? p.default : null);
  }
  // Each value's type is checked above (PublishCopyFits); the loop cannot say so itself.
  return out as CopiedMembers;
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
  const copied = copyMembers(body);
  const delayMs = Math.round((body.delay ?? PUBLISH_PROPERTIES.delay.default) * 1000);
  const runAt = ctx.now + delayMs;
  return {
    ...copied,
    id: ctx.id,
    goal,
    // The payload as the client sent it when known (numbers kept exactly).
    payload: ctx.payloadText ?? JSON.stringify(body.payload),
    publisher: ctx.publisher,
    runAt,
    createdAt: ctx.now,
    expiresAt: runAt + Math.round(copied.ttl * 1000),
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
