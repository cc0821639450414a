/** The worker-facing protocol: publish, claim, extend, fulfill, fail, result, status. */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  LIMITS,
  canonicalJsonText,
  schemas,
  type PublishRequest,
  type ResultType,
} from '@intent-bus/protocol';
import { randomHex128 } from '../ids.js';
import { BusError, invalid, notFound } from '../../core/errors.js';
import { isClaimerName, parseCapabilities, type ClaimFilter } from '../../core/routing.js';
import { checkJsonValue, normalizePublish, truncateError } from '../../core/validate.js';
import type { IntentRow, TokenRef } from '../../store/store.js';
import { MAIN_KEY_ID, unauthorized, type Principal } from '../auth.js';
import { claimWithWait } from '../claiming.js';
import {
  ClientPresence,
  header,
  intentIdParam,
  principalOf,
  rawBodyMember,
  type BusContext,
} from '../context.js';
import type { WaitOutcome } from '../../wake/hub.js';
import { JSON_TYPE, claimedIntent, resultObject, statusObject } from '../wire.js';

interface TokenBody {
  claim_token: string;
}

export async function intentRoutes(app: FastifyInstance, ctx: BusContext): Promise<void> {
  const { store, hub, events, clock } = ctx;

  const lostLease = (): BusError => notFound('Claim token is not live for this intent');
  const tokenRef = (req: FastifyRequest): TokenRef => {
    const token = (req.body as TokenBody).claim_token;
    if (token.length < 1 || token.length > LIMITS.claimTokenMaxLength) throw lostLease();
    return { id: intentIdParam(req), token, keyId: principalOf(req).keyId, now: clock.now() };
  };

  /** The row, if this key may read it: publisher, current or last claimer, or the main key. */
  async function readable(id: string, p: Principal): Promise<IntentRow> {
    const row = await store.intentGet(id);
    if (!row || !(p.isMain || row.publisher === p.keyId || row.claimer === p.keyId)) {
      throw notFound('Intent not found');
    }
    return row;
  }

  app.post('/intent', { schema: { body: schemas.publishBody } }, async (req, reply) => {
    const p = principalOf(req);
    const body = req.body as PublishRequest;
    const idemKey = header(req, 'idempotency-key');
    if (
      idemKey !== undefined &&
      (idemKey.length < 1 || idemKey.length > LIMITS.idempotencyKeyMaxLength)
    ) {
      throw invalid(
        'Idempotency-Key',
        `Idempotency-Key must be 1-${LIMITS.idempotencyKeyMaxLength} characters`,
      );
    }
    const now = clock.now();
    const intent = normalizePublish(body, {
      id: randomHex128(),
      publisher: p.keyId,
      now,
      payloadText: rawBodyMember(req, 'payload'),
    });
    const idem =
      idemKey === undefined
        ? null
        : {
            keyId: p.keyId,
            key: idemKey,
            // The body as sent, not as parsed: numbers compare exactly (raw-json.ts).
            bodyHash: createHash('sha256')
              .update(canonicalJsonText(req.bodyText ?? '{}'))
              .digest('hex'),
            notBefore: now - LIMITS.idempotencyWindowSeconds * 1000,
          };
    const out = await store.intentPublish(intent, idem, p.isMain ? null : ctx.config.maxOpenPerKey);
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
    if (out.kind === 'replay') {
      return reply.code(out.status).type('application/json; charset=utf-8').send(out.body);
    }
    events.published(out.row);
    return reply
      .code(201)
      .send({ id: out.row.id, status: 'published', namespace: out.row.namespace });
  });

  app.post('/claim', { schema: { querystring: schemas.claimQuery } }, async (req, reply) => {
    const p = principalOf(req);
    const q = req.query as {
      goal?: string;
      namespace?: string;
      publisher?: string;
      worker_id?: string;
      capabilities?: string;
      capability?: string;
      wait?: number;
    };
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
    const row = await claimWithWait(ctx, p, filter, waitMs, new ClientPresence(reply));
    if (!row) return reply.code(204).header('Retry-After', '1').send();
    events.claimed(row, clock.now());
    return reply.type(JSON_TYPE).send(claimedIntent(row, ctx.config.claimTimeoutSeconds));
  });

  app.post(
    '/extend_claim/:id',
    { schema: { params: schemas.intentIdParams, body: schemas.extendBody } },
    async (req) => {
      const ref = tokenRef(req);
      const seconds = (req.body as { seconds: number }).seconds;
      const row = await store.intentExtend(ref, ref.now + Math.round(seconds * 1000));
      if (!row) throw lostLease();
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
      const ref = tokenRef(req);
      const body = req.body as { result?: unknown; result_type?: ResultType };
      const resultType = body.result_type ?? 'json';
      if (resultType === 'text' && body.result != null && typeof body.result !== 'string') {
        throw invalid('result', 'A text result must be a string');
      }
      if (body.result !== undefined) checkJsonValue('result', body.result);
      const result =
        body.result === undefined
          ? null
          : (rawBodyMember(req, 'result') ?? JSON.stringify(body.result));
      const row = await store.intentFulfill(ref, result, resultType);
      if (!row) throw lostLease();
      events.fulfilled(row);
      return { ok: true, id: row.id, status: 'fulfilled' };
    },
  );

  app.post(
    '/fail/:id',
    { schema: { params: schemas.intentIdParams, body: schemas.failBody } },
    async (req) => {
      const ref = tokenRef(req);
      const error = truncateError((req.body as { error?: string | null }).error);
      const row = await store.intentFail(ref, error, ctx.random);
      if (!row) throw lostLease();
      events.failed(row);
      return { ok: true, id: row.id, status: row.status };
    },
  );

  app.get(
    '/result/:id',
    { schema: { params: schemas.intentIdParams, querystring: schemas.resultQuery } },
    async (req, reply) => {
      const p = principalOf(req);
      const id = intentIdParam(req);
      let row = await readable(id, p);
      const waitMs = Math.round(((req.query as { wait?: number }).wait ?? 0) * 1000);
      const deadline = performance.now() + waitMs;
      const presence = waitMs > 0 ? new ClientPresence(reply) : null;
      // A wake-up is a hint (a resync wakes every wait): re-read, and wait again if the
      // intent has not finished and time is left.
      for (let left = waitMs; presence && left > 0 && !isFinal(row);) {
        const ticket = hub.waitForResult(id, p.keyId, p.isMain, left, presence);
        if (!ticket) break;
        let outcome: WaitOutcome;
        try {
          // Re-read after registering: a finish between the two reads is not missed.
          row = await readable(id, p);
          if (isFinal(row)) break;
          outcome = await ticket.wait();
        } finally {
          ticket.cancel();
        }
        // A key revoked while it waited reads nothing more, whether this node heard the
        // revoke (the wait ends) or not (the key is checked again, auth.ts).
        if (outcome.kind === 'revoked' || !(await ctx.auth.stillValid(p))) throw unauthorized();
        row = await readable(id, p);
        if (outcome.kind !== 'woken') break;
        left = deadline - performance.now();
      }
      return reply.type(JSON_TYPE).send(resultObject(row));
    },
  );

  app.get('/status/:id', { schema: { params: schemas.intentIdParams } }, async (req) =>
    statusObject(await readable(intentIdParam(req), principalOf(req))),
  );
}

const isFinal = (row: IntentRow): boolean => row.status === 'fulfilled' || row.status === 'dead';

/**
 * The `publisher` claim filter names a key by its raw value or its key id. A tester key
 * may only name itself (else 403); the main key may name anyone.
 */
async function resolvePublisher(ctx: BusContext, given: string, p: Principal): Promise<string> {
  let keyId = given;
  if (given !== MAIN_KEY_ID && !given.startsWith('kid_')) {
    const found = await ctx.auth.lookup(given);
    // An unknown value matches no intent; for a tester key it is someone else's.
    keyId = found ? found.keyId : `unknown:${given.length}`;
  }
  if (!p.isMain && keyId !== p.keyId) {
    throw new BusError('forbidden', 'A key may only filter by its own publisher');
  }
  return keyId;
}
