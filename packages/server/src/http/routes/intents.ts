/**
 * The worker-facing protocol: publish, claim, extend, fulfill, fail, result, status. Each
 * route parses its request, calls one operation (ops/) and answers what it returns.
 */
import type { FastifyRequest } from 'fastify';
import { LIMITS, schemas, type StatusObject } from '@intent-bus/protocol';
import { invalid } from '../../core/errors.js';
import { isClaimerName, parseCapabilities, type ClaimFilter } from '../../core/routing.js';
import { claim, resolvePublisher } from '../../ops/claim.js';
import type { Sighting } from '../../ops/workers.js';
import { heldBy } from '../../ops/flow.js';
import {
  extend,
  fail,
  fulfil,
  progress,
  publish,
  readable,
  result,
  tokenRef,
} from '../../ops/intents.js';
import { progressValues } from '../../ops/progress.js';
import type { TokenRef } from '../../store/store.js';
import {
  ClientPresence,
  header,
  intentIdParam,
  principalOf,
  rawBodyMember,
  type BusApp,
  type BusContext,
} from '../context.js';
import { JSON_TYPE, claimedIntent, resultObject, statusObject } from '../wire.js';

/** A User-Agent is kept to this many characters. */
const USER_AGENT_MAX = 256;
/** A quiet worker need not ask again sooner. */
const COMMAND_RETRY_AFTER_SECONDS = 5;

export async function intentRoutes(app: BusApp, ctx: BusContext): Promise<void> {
  // Request parts are typed from the route's schemas (BusApp): no casts.
  const seenOf = (req: FastifyRequest): Sighting => ({
    userAgent: header(req, 'user-agent')?.slice(0, USER_AGENT_MAX) ?? null,
    address: req.ip,
  });
  const refOf = (
    req: FastifyRequest & { params: { id: string }; body: { claim_token: string } },
  ): TokenRef =>
    tokenRef(ctx, principalOf(req), intentIdParam(req.params.id), req.body.claim_token);

  app.post('/intent', { schema: { body: schemas.publishBody } }, async (req, reply) => {
    const out = await publish(ctx, principalOf(req), {
      body: req.body,
      bodyText: req.bodyText ?? '{}',
      payloadText: rawBodyMember(req, 'payload'),
      idempotencyKey: header(req, 'idempotency-key'),
    });
    return reply.code(out.status).type(JSON_TYPE).send(out.body);
  });

  app.post('/claim', { schema: { querystring: schemas.claimQuery } }, async (req, reply) => {
    const p = principalOf(req);
    const q = req.query;
    // An empty header or parameter is no worker id.
    const workerId = header(req, 'x-worker-id') || q.worker_id || null;
    if (workerId != null && !isClaimerName(workerId)) {
      throw invalid(
        'worker_id',
        `worker_id: at most ${LIMITS.claimerNameMaxLength} characters, no control characters`,
      );
    }
    const capabilities = parseCapabilities(
      header(req, 'x-worker-capabilities') ??
        header(req, 'x-worker-capability') ??
        q.capabilities ??
        q.capability,
    );
    if (capabilities.length > LIMITS.capabilitiesMax || !capabilities.every(isClaimerName)) {
      throw invalid(
        'capabilities',
        `capabilities: at most ${LIMITS.capabilitiesMax} items of at most ${LIMITS.claimerNameMaxLength} characters`,
      );
    }
    const filter: ClaimFilter = {
      keyId: p.keyId,
      namespace: q.namespace ?? LIMITS.defaultNamespace,
      goal: q.goal ?? null,
      publisher: q.publisher === undefined ? null : await resolvePublisher(ctx, q.publisher, p),
      workerId,
      capabilities,
    };
    const waitMs = Math.round((q.wait ?? 0) * 1000);
    // [ext] issue 21: `max` claims up to that many, answered as an array.
    const max = q.max ?? 1;
    const out = await claim(ctx, p, filter, waitMs, new ClientPresence(reply), seenOf(req), max);
    if (out.kind === 'command') {
      // [ext] issue 18: a quiet or stopping worker is told so, and claims nothing.
      return reply
        .code(204)
        .header('X-Intent-Worker-Command', out.command)
        .header('Retry-After', String(COMMAND_RETRY_AFTER_SECONDS))
        .send();
    }
    if (out.kind === 'none') {
      // A flow control's Retry-After is when capacity returns, in whole seconds (at least 1).
      const ms = out.retryAfterMs;
      const after = ms == null ? 1 : Math.max(1, Math.ceil(ms / 1000));
      return reply.code(204).header('Retry-After', String(after)).send();
    }
    const lease = ctx.config.claimTimeoutSeconds;
    if (q.max !== undefined) {
      const all = (out.rows ?? [out.row]).map((row) => claimedIntent(row, lease));
      return reply.type(JSON_TYPE).send(`[${all.join(',')}]`);
    }
    return reply.type(JSON_TYPE).send(claimedIntent(out.row, lease));
  });

  app.post(
    '/extend_claim/:id',
    { schema: { params: schemas.intentIdParams, body: schemas.extendBody } },
    async (req) => {
      const { seconds } = req.body;
      const row = await extend(ctx, refOf(req), seconds, seenOf(req));
      return {
        ok: true,
        id: row.id,
        extended_by: seconds,
        claim_expires_at: row.claimExpiresAt! / 1000,
      };
    },
  );

  app.post(
    '/fulfill/:id',
    { schema: { params: schemas.intentIdParams, body: schemas.fulfillBody } },
    async (req) => {
      const body = req.body;
      const row = await fulfil(
        ctx,
        refOf(req),
        {
          result: body.result,
          resultText: rawBodyMember(req, 'result'),
          resultType: body.result_type,
        },
        seenOf(req),
      );
      return { ok: true, id: row.id, status: 'fulfilled' };
    },
  );

  app.post(
    '/fail/:id',
    { schema: { params: schemas.intentIdParams, body: schemas.failBody } },
    async (req) => {
      const row = await fail(ctx, refOf(req), req.body.error, seenOf(req));
      return { ok: true, id: row.id, status: row.status };
    },
  );

  app.get(
    '/result/:id',
    { schema: { params: schemas.intentIdParams, querystring: schemas.resultQuery } },
    async (req, reply) => {
      const waitMs = Math.round((req.query.wait ?? 0) * 1000);
      const row = await result(
        ctx,
        intentIdParam(req.params.id),
        principalOf(req),
        waitMs,
        waitMs > 0 ? new ClientPresence(reply) : null,
      );
      return reply.type(JSON_TYPE).send(resultObject(row));
    },
  );

  app.get('/status/:id', { schema: { params: schemas.intentIdParams } }, async (req, reply) => {
    const row = await readable(ctx, intentIdParam(req.params.id), principalOf(req));
    // [ext] issue 18: whether the worker holding a claimed intent is online.
    const extra: Partial<StatusObject> = {};
    if (row.status === 'claimed' && row.claimer != null && row.workerId != null) {
      extra.worker_online = await ctx.workers.isOnline(row.claimer, row.workerId, ctx.clock.now());
    }
    // [ext] An open intent a flow control holds back says which control.
    const held = await heldBy(ctx, row);
    if (held) extra.held_by = held;
    return reply.type(JSON_TYPE).send(statusObject(row, extra));
  });

  app.post(
    '/progress/:id',
    { schema: { params: schemas.intentIdParams, body: schemas.progressBody } },
    async (req) => {
      const ref = refOf(req);
      const out = await progress(
        ctx,
        ref,
        progressValues(req.body, rawBodyMember(req, 'data'), ref.now),
      );
      return {
        ok: true,
        id: out.id,
        claim_expires_at: out.claimExpiresAt / 1000,
        held: out.held,
      };
    },
  );
}
