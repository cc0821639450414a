/**
 * The worker-facing protocol: publish, claim, extend, fulfill, fail, result, status. Each
 * route parses its request, calls one operation (ops/) and answers what it returns.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  LIMITS,
  schemas,
  type ClaimQuery,
  type OutcomeQuery,
  type StatusObject,
} from '@intent-bus/protocol';
import { invalid } from '../../core/errors.js';
import { isClaimerName, parseCapabilities, type ClaimFilter } from '../../core/routing.js';
import { claim, resolvePublisher } from '../../ops/claim.js';
import type { Sighting } from '../../ops/workers.js';
import {
  extend,
  fail,
  fulfil,
  progress,
  publish,
  result,
  status,
  tokenRef,
} from '../../ops/intents.js';
import { progressValues } from '../../ops/progress.js';
import type { IntentRow, TokenRef } from '../../store/store.js';
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

/** A claim as a request asks for it: its filter and how long it may wait (ms). */
interface ClaimAsked {
  filter: ClaimFilter;
  waitMs: number;
  /** [ext] issue 21: `max` claims up to that many, answered as an array; else one object. */
  max: number | undefined;
}

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

  /**
   * The claim a request asks for, read from its query and headers exactly as POST /claim
   * reads them (also the `next=1` of a fulfil or fail, issue 21). Checked in full (a
   * `publisher` this key may not name: 403) before anything happens.
   */
  const claimOf = async (req: FastifyRequest, q: ClaimQuery): Promise<ClaimAsked> => {
    const p = principalOf(req);
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
    return { filter, waitMs: Math.round((q.wait ?? 0) * 1000), max: q.max };
  };

  /** Claims what `asked` says and answers it as POST /claim does: 200, or 204. */
  const claimAndReply = async (
    req: FastifyRequest,
    reply: FastifyReply,
    asked: ClaimAsked,
    client: ClientPresence,
  ): Promise<FastifyReply> => {
    const { filter, waitMs, max } = asked;
    const out = await claim(ctx, principalOf(req), filter, waitMs, client, seenOf(req), max ?? 1);
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
    if (max !== undefined) {
      const all = (out.rows ?? [out.row]).map((row) => claimedIntent(row, lease));
      return reply.type(JSON_TYPE).send(`[${all.join(',')}]`);
    }
    return reply.type(JSON_TYPE).send(claimedIntent(out.row, lease));
  };

  app.post('/claim', { schema: { querystring: schemas.claimQuery } }, async (req, reply) => {
    const client = new ClientPresence(reply);
    return claimAndReply(req, reply, await claimOf(req, req.query), client);
  });

  /**
   * [ext] issue 21: a fulfil or fail with `next=1` claims the worker's next intent in the
   * same request. The outcome is recorded (committed) first, exactly as without `next`,
   * and told in X-Intent-Done (`<id> <status>`), on every answer after it, errors
   * included; the claim's answer follows. Without `next`, the plain answer of 2.1.
   */
  const withNext = async (
    req: FastifyRequest & { query: OutcomeQuery },
    reply: FastifyReply,
    record: () => Promise<IntentRow>,
  ): Promise<FastifyReply | { ok: true; id: string; status: string }> => {
    if (req.query.next !== 1) {
      const row = await record();
      return { ok: true, id: row.id, status: row.status };
    }
    // Watched from the start, as on /claim: a client gone before the claim gets no intent.
    const client = new ClientPresence(reply);
    const asked = await claimOf(req, req.query);
    const row = await record();
    reply.header('X-Intent-Done', `${row.id} ${row.status}`);
    return claimAndReply(req, reply, asked, client);
  };

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
    {
      schema: {
        params: schemas.intentIdParams,
        querystring: schemas.outcomeQuery,
        body: schemas.fulfillBody,
      },
    },
    async (req, reply) =>
      withNext(req, reply, () =>
        fulfil(
          ctx,
          refOf(req),
          {
            result: req.body.result,
            resultText: rawBodyMember(req, 'result'),
            resultType: req.body.result_type,
          },
          seenOf(req),
        ),
      ),
  );

  app.post(
    '/fail/:id',
    {
      schema: {
        params: schemas.intentIdParams,
        querystring: schemas.outcomeQuery,
        body: schemas.failBody,
      },
    },
    async (req, reply) =>
      withNext(req, reply, () => fail(ctx, refOf(req), req.body.error, seenOf(req))),
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
    const read = await status(ctx, intentIdParam(req.params.id), principalOf(req));
    const extra: Partial<StatusObject> = {};
    if (read.workerOnline !== null) extra.worker_online = read.workerOnline;
    if (read.heldBy !== null) extra.held_by = read.heldBy;
    return reply.type(JSON_TYPE).send(statusObject(read.row, extra));
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
