/**
 * [ext] Batches (issue 21): POST /intents (publish many), POST /fulfill and POST /fail
 * (many claims ended). The claim of many is POST /claim?max=N (routes/intents.ts). Each
 * item is checked here as the single route checks its body, and answered as the single
 * route would answer it, status and body, in the items' order; the batch's own answer is
 * 200 once every valid item is committed (ops/batches.ts: one atomic step).
 */
import Ajv from 'ajv';
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  LIMITS,
  rawItems,
  rawMember,
  schemas,
  withoutMember,
  type FailBatchItem,
  type FulfillBatchItem,
  type PublishBatchItem,
} from '@intent-bus/protocol';
import { BusError, invalid } from '../../core/errors.js';
import { failMany, fulfilMany, publishMany, type ItemOutcome } from '../../ops/batches.js';
import { tokenRef, type Published, type PublishInput } from '../../ops/intents.js';
import { header, intentIdParam, principalOf, type BusApp, type BusContext } from '../context.js';
import { toWireError, validationMessage } from '../errors.js';
import { JSON_TYPE } from '../wire.js';

/** The paths whose bodies may reach BUS_MAX_BATCH_BODY_BYTES (POST only). */
export const BATCH_PATHS: ReadonlySet<string> = new Set(['/intents', '/fulfill', '/fail']);

/** A User-Agent is kept to this many characters (as routes/intents.ts). */
const USER_AGENT_MAX = 256;

// Items are validated as the single routes validate their bodies: no coercion, no defaults.
const ajv = new Ajv.default({ coerceTypes: false, useDefaults: false, strict: false });
const checkPublish = ajv.compile<PublishBatchItem>(schemas.publishBatchItem);
const checkFulfil = ajv.compile<FulfillBatchItem>(schemas.fulfillBatchItem);
const checkFail = ajv.compile<FailBatchItem>(schemas.failBatchItem);

type Check<T> = ((data: unknown) => data is T) & { errors?: unknown };

/** An item of the batch body with its exact text, checked against its schema. */
function itemsOf<T>(
  req: FastifyRequest,
  member: string,
  check: Check<T>,
  maxBytes: number,
): Array<ItemOutcome<{ item: T; text: string }>> {
  const list = (req.body as Record<string, unknown>)[member] as unknown[];
  const texts = rawItems(rawMember(req.bodyText ?? '', member) ?? '[]') ?? [];
  return list.map((item, i) => {
    const text = texts[i] ?? JSON.stringify(item);
    if (Buffer.byteLength(text) > maxBytes) {
      const error = new BusError('payload_too_large', `Item is over ${maxBytes} bytes`);
      return { ok: false, error };
    }
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      return { ok: false, error: new BusError('invalid_request', 'Item must be a JSON object') };
    }
    if (!check(item)) {
      const w = validationMessage('body', (check.errors ?? []) as never);
      const e = w.body.error;
      return { ok: false, error: new BusError(e.code, e.message, { field: e.field }) };
    }
    return { ok: true, value: { item, text } };
  });
}

/** Each item's outcome, with its own preparation (a BusError fails only that item). */
function mapOk<A, B>(items: ItemOutcome<A>[], f: (a: A) => B): ItemOutcome<B>[] {
  return items.map((o) => {
    if (!o.ok) return o;
    try {
      return { ok: true, value: f(o.value) };
    } catch (error) {
      return { ok: false, error };
    }
  });
}

/** `{"results":[{"status","body"}, ...]}`, each body as the single route answers it. */
function answer<T>(
  req: FastifyRequest,
  reply: FastifyReply,
  outcomes: ItemOutcome<T>[],
  ok: (value: T) => { status: number; body: string },
): FastifyReply {
  const parts = outcomes.map((o) => {
    let a: { status: number; body: string };
    if (o.ok) a = ok(o.value);
    else {
      const w = toWireError(o.error);
      if (w.internal) req.log.error({ err: o.error }, 'batch item failed');
      a = { status: w.status, body: JSON.stringify(w.body) };
    }
    return `{"status":${a.status},"body":${a.body}}`;
  });
  return reply.type(JSON_TYPE).send(`{"results":[${parts.join(',')}]}`);
}

const done = (row: { id: string; status: string }) => ({
  status: 200,
  body: JSON.stringify({ ok: true, id: row.id, status: row.status }),
});

export async function batchRoutes(app: BusApp, ctx: BusContext): Promise<void> {
  const { config } = ctx;
  const bodyLimit = config.maxBatchBodyBytes;
  const seenOf = (req: FastifyRequest) => ({
    userAgent: header(req, 'user-agent')?.slice(0, USER_AGENT_MAX) ?? null,
    address: req.ip,
  });

  app.post(
    '/intents',
    { bodyLimit, schema: { body: schemas.publishBatchBody } },
    async (req, reply) => {
      const p = principalOf(req);
      const items = itemsOf(req, 'intents', checkPublish, config.maxBodyBytes);
      const inputs = mapOk(items, ({ item, text }): PublishInput => {
        const key = item.idempotency_key;
        if (key !== undefined && (key.length < 1 || key.length > LIMITS.idempotencyKeyMaxLength)) {
          throw invalid(
            'idempotency_key',
            `idempotency_key must be 1-${LIMITS.idempotencyKeyMaxLength} characters`,
          );
        }
        return {
          body: item,
          // As a single publish's body, which carries its key in a header.
          bodyText: key === undefined ? text : withoutMember(text, 'idempotency_key'),
          payloadText: rawMember(text, 'payload'),
          idempotencyKey: key,
        };
      });
      const out = await publishMany(ctx, p, inputs);
      return answer(req, reply, out, (v: Published) => v);
    },
  );

  app.post(
    '/fulfill',
    { bodyLimit, schema: { body: schemas.fulfillBatchBody } },
    async (req, reply) => {
      const p = principalOf(req);
      const items = itemsOf(req, 'items', checkFulfil, config.maxBodyBytes);
      const inputs = mapOk(items, ({ item, text }) => ({
        ref: tokenRef(ctx, p, intentIdParam(item.id), item.claim_token),
        input: {
          result: item.result,
          resultText: rawMember(text, 'result'),
          resultType: item.result_type,
        },
      }));
      const out = await fulfilMany(ctx, inputs, seenOf(req));
      return answer(req, reply, out, done);
    },
  );

  app.post('/fail', { bodyLimit, schema: { body: schemas.failBatchBody } }, async (req, reply) => {
    const p = principalOf(req);
    const items = itemsOf(req, 'items', checkFail, config.maxBodyBytes);
    const inputs = mapOk(items, ({ item }) => ({
      ref: tokenRef(ctx, p, intentIdParam(item.id), item.claim_token),
      error: item.error,
    }));
    const out = await failMany(ctx, inputs, seenOf(req));
    return answer(req, reply, out, done);
  });
}
