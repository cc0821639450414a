/**
 * The worker-facing operations of PROTOCOL.md §5: publish, extend, fulfil, fail, and the
 * reads with their access rule (a result wait included). Each decides, has the store make
 * the change in one atomic step, and announces it; the routes only parse and answer.
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  LIMITS,
  canonicalJsonText,
  type PublishRequest,
  type ResultType,
} from '@intent-bus/protocol';
import { BusError, invalid, notFound, unauthorized } from '../core/errors.js';
import type { Principal } from '../core/principal.js';
import { checkJsonValue, normalizePublish, truncateError } from '../core/validate.js';
import { timeOrderedId } from '../ids.js';
import { publishedAnswer } from '../store/bus-store.js';
import type {
  IntentRow,
  ProgressValues,
  PublishItem,
  PublishOutcome,
  TokenRef,
} from '../store/store.js';
import type { HeldBy } from '../core/flow.js';
import { heldBy } from './flow.js';
import type { ProgressOutcome } from './progress.js';
import type { WaitOutcome } from '../wake/hub.js';
import type { OpsContext, Requester } from './context.js';
import type { Sighting } from './workers.js';

/** A publish's answer: its status and its exact JSON text (a replay answers as the first). */
export interface Published {
  status: number;
  body: string;
}

/** What a publish was sent: the body parsed, its exact text, and the Idempotency-Key. */
export interface PublishInput {
  body: PublishRequest;
  /** The body's text as received: idempotency compares it exactly. */
  bodyText: string;
  /** The payload's exact text in the body, as stored. */
  payloadText: string | undefined;
  idempotencyKey: string | undefined;
}

/** What a publish asks the store, once its input is checked (a BusError if it is not). */
export function publishItem(ctx: OpsContext, p: Principal, input: PublishInput): PublishItem {
  const idemKey = input.idempotencyKey;
  if (
    idemKey !== undefined &&
    (idemKey.length < 1 || idemKey.length > LIMITS.idempotencyKeyMaxLength)
  ) {
    throw invalid(
      'Idempotency-Key',
      `Idempotency-Key must be 1-${LIMITS.idempotencyKeyMaxLength} characters`,
    );
  }
  const now = ctx.clock.now();
  const intent = normalizePublish(input.body, {
    id: timeOrderedId(now),
    publisher: p.keyId,
    now,
    payloadText: input.payloadText,
  });
  const idem =
    idemKey === undefined
      ? null
      : {
          keyId: p.keyId,
          key: idemKey,
          // The body as sent, not as parsed: numbers compare exactly (protocol's raw-json).
          bodyHash: createHash('sha256').update(canonicalJsonText(input.bodyText)).digest('hex'),
          notBefore: now - LIMITS.idempotencyWindowSeconds * 1000,
        };
  return { intent, idem };
}

/** The quota of a publisher's open and claimed intents (null: none, the main key). */
export const maxOpenOf = (ctx: OpsContext, p: Principal): number | null =>
  p.isMain ? null : ctx.config.maxOpenPerKey;

/** The answer of what the store decided for a publish, announced when it was created. */
export function publishAnswer(ctx: OpsContext, out: PublishOutcome): Published {
  if (out.kind === 'conflict') {
    throw new BusError('idempotency_conflict', 'Key reused with different payload');
  }
  if (out.kind === 'limit_exceeded') {
    throw new BusError(
      'limit_exceeded',
      `This key has ${out.open} open or claimed intents (limit ${ctx.config.maxOpenPerKey})`,
      { retryAfterSeconds: 5 },
    );
  }
  if (out.kind === 'replay') return { status: out.status, body: out.body };
  ctx.events.published(out.row);
  return { status: 201, body: publishedAnswer(out.row) };
}

export async function publish(
  ctx: OpsContext,
  p: Principal,
  input: PublishInput,
): Promise<Published> {
  const { intent, idem } = publishItem(ctx, p, input);
  return publishAnswer(ctx, await ctx.store.intentPublish(intent, idem, maxOpenOf(ctx, p)));
}

const lostLease = (): BusError => notFound('Claim token is not live for this intent');

/** The claim a token names; a token that cannot be live answers like a stale one (404). */
export function tokenRef(ctx: OpsContext, p: Principal, id: string, token: string): TokenRef {
  if (token.length < 1 || token.length > LIMITS.claimTokenMaxLength) throw lostLease();
  return { id, token, keyId: p.keyId, now: ctx.clock.now() };
}

/** The worker that held the intent is seen (issue 18): by the claim's worker id. */
function seenHolding(
  ctx: OpsContext,
  ref: TokenRef,
  row: IntentRow,
  seen: Sighting,
  outcome?: { fulfilled?: boolean; failed?: boolean; error?: string | null },
): void {
  if (row.workerId != null) ctx.workers.touched(ref.keyId, row.workerId, seen, ref.now, outcome);
}

export async function extend(
  ctx: OpsContext,
  ref: TokenRef,
  seconds: number,
  seen: Sighting,
): Promise<IntentRow> {
  const row = await ctx.store.intentExtend(ref, ref.now + Math.round(seconds * 1000));
  if (!row) throw lostLease();
  seenHolding(ctx, ref, row, seen);
  return row;
}

/** A progress report (issue 20): recorded, and the lease extended (ops/progress.ts). */
export async function progress(
  ctx: OpsContext,
  ref: TokenRef,
  values: ProgressValues,
): Promise<ProgressOutcome> {
  return ctx.progress.report(ref, values);
}

export interface FulfilInput {
  /** The result as parsed (undefined: none), and its exact text in the body. */
  result: unknown;
  resultText: string | undefined;
  resultType: ResultType | undefined;
}

/** A fulfil's result as stored: checked (a BusError if it may not be), and its text. */
export function resultOf(input: FulfilInput): { text: string | null; resultType: ResultType } {
  const resultType = input.resultType ?? 'json';
  if (resultType === 'text' && input.result != null && typeof input.result !== 'string') {
    throw invalid('result', 'A text result must be a string');
  }
  if (input.result !== undefined) checkJsonValue('result', input.result);
  const text =
    input.result === undefined ? null : (input.resultText ?? JSON.stringify(input.result));
  return { text, resultType };
}

/** What follows a fulfil the store made (null: the token was not live). */
export function fulfilled(
  ctx: OpsContext,
  ref: TokenRef,
  row: IntentRow | null,
  seen: Sighting,
): IntentRow {
  if (!row) throw lostLease();
  ctx.events.fulfilled(row);
  seenHolding(ctx, ref, row, seen, { fulfilled: true });
  return row;
}

export async function fulfil(
  ctx: OpsContext,
  ref: TokenRef,
  input: FulfilInput,
  seen: Sighting,
): Promise<IntentRow> {
  const { text, resultType } = resultOf(input);
  // A progress report held for the end of its second is written first (ops/progress.ts).
  await ctx.progress.settle(ref.id);
  return fulfilled(ctx, ref, await ctx.store.intentFulfill(ref, text, resultType), seen);
}

/** What follows a failure the store recorded (null: the token was not live). */
export function failed(
  ctx: OpsContext,
  ref: TokenRef,
  text: string | null,
  row: IntentRow | null,
  seen: Sighting,
): IntentRow {
  if (!row) throw lostLease();
  ctx.events.failed(row);
  seenHolding(ctx, ref, row, seen, { failed: true, error: text ?? 'failed' });
  return row;
}

export async function fail(
  ctx: OpsContext,
  ref: TokenRef,
  error: string | null | undefined,
  seen: Sighting,
): Promise<IntentRow> {
  const text = truncateError(error);
  await ctx.progress.settle(ref.id);
  return failed(ctx, ref, text, await ctx.store.intentFail(ref, text, ctx.random), seen);
}

/** The row, if this key may read it: publisher, current or last claimer, or the main key. */
export async function readable(ctx: OpsContext, id: string, p: Principal): Promise<IntentRow> {
  const row = await ctx.store.intentGet(id);
  if (!row || !(p.isMain || row.publisher === p.keyId || row.claimer === p.keyId)) {
    throw notFound('Intent not found');
  }
  return row;
}

/** What a status read tells: the row, and [ext] whether its holder is online, what holds it. */
export interface StatusRead {
  row: IntentRow;
  /** A claimed intent's worker, when it named one: online (issue 18); else null. */
  workerOnline: boolean | null;
  /** An open intent a flow control holds back: which control (issue 19); else null. */
  heldBy: HeldBy | null;
}

export async function status(ctx: OpsContext, id: string, p: Principal): Promise<StatusRead> {
  const row = await readable(ctx, id, p);
  const workerOnline =
    row.status === 'claimed' && row.claimer != null && row.workerId != null
      ? await ctx.workers.isOnline(row.claimer, row.workerId, ctx.clock.now())
      : null;
  return { row, workerOnline, heldBy: await heldBy(ctx, row) };
}

const isFinal = (row: IntentRow): boolean => row.status === 'fulfilled' || row.status === 'dead';

/** The intent once it is fulfilled or dead, or as it is after `waitMs` (PROTOCOL.md §5.3). */
export async function result(
  ctx: OpsContext,
  id: string,
  p: Principal,
  waitMs: number,
  client: Requester | null,
): Promise<IntentRow> {
  let row = await readable(ctx, id, p);
  const deadline = performance.now() + waitMs;
  // A wake-up is a hint (a resync wakes every wait): re-read, and wait again if the
  // intent has not finished and time is left.
  for (let left = waitMs; client && left > 0 && !isFinal(row);) {
    const ticket = ctx.hub.waitForResult(id, p.keyId, p.isMain, left, client);
    if (!ticket) break;
    let outcome: WaitOutcome;
    try {
      // Re-read after registering: a finish between the two reads is not missed.
      row = await readable(ctx, id, p);
      if (isFinal(row)) break;
      outcome = await ticket.wait();
    } finally {
      ticket.cancel();
    }
    // A key revoked while it waited reads nothing more, whether this node heard the
    // revoke (the wait ends) or not (the key is checked again, http/auth.ts).
    if (outcome.kind === 'revoked' || !(await ctx.keys.stillValid(p))) throw unauthorized();
    row = await readable(ctx, id, p);
    if (outcome.kind !== 'woken') break;
    left = deadline - performance.now();
  }
  return row;
}
