/** The admin API of PROTOCOL.md §6 (dashboard, intents list and stats come later). */
import type { FastifyInstance } from 'fastify';
import { schemas } from '@intent-bus/protocol';
import { invalid, notFound } from '../../core/errors.js';
import { announce } from '../../wake/announce.js';
import { hashKey, newApiKey } from '../auth.js';
import { intentIdParam, type BusContext } from '../context.js';
import { withRawMembers } from '../raw-json.js';
import { JSON_TYPE, adminIntent, deadLetter, keyInfo, statusObject } from '../wire.js';

export async function adminRoutes(app: FastifyInstance, ctx: BusContext): Promise<void> {
  const { store, clock, wake } = ctx;

  app.post(
    '/admin/generate_key',
    { schema: { body: schemas.generateKeyBody } },
    async (req, reply) => {
      const { owner } = req.body as { owner: string };
      const { apiKey, keyId } = newApiKey();
      await store.keyCreate({
        keyId,
        keyHash: hashKey(apiKey),
        prefix: apiKey.slice(0, 8),
        owner,
        createdAt: clock.now(),
        lastUsedAt: null,
        requests: 0,
      });
      return reply.code(201).send({ api_key: apiKey, owner, key_id: keyId });
    },
  );

  app.post('/admin/revoke_key', { schema: { body: schemas.revokeKeyBody } }, async (req) => {
    const body = req.body as { api_key?: string; key_id?: string };
    let keyId: string | null;
    if (body.api_key !== undefined)
      keyId = await store.keyRevoke({ keyHash: hashKey(body.api_key) });
    else if (body.key_id !== undefined) keyId = await store.keyRevoke({ keyId: body.key_id });
    else throw invalid('api_key', 'Missing api_key or key_id');
    if (keyId == null) throw notFound('Key not found');
    ctx.auth.forget();
    ctx.limiter.forget(keyId);
    return { ok: true, revoked: true };
  });

  app.get('/admin/keys', async () => {
    await ctx.housekeeper.flushUsage();
    return (await store.keyList()).map(keyInfo);
  });

  app.post('/admin/purge', { schema: { body: schemas.purgeBody } }, async (req) => {
    const body = (req.body ?? {}) as { confirm?: boolean; namespace?: string };
    if (body.confirm !== true) throw invalid('confirm', 'Purge needs {"confirm": true}');
    const out = await store.intentsPurge(body.namespace ?? null);
    return {
      ok: true,
      namespace: body.namespace ?? null,
      intents_deleted: out.intents,
      dead_letters_deleted: out.dead,
    };
  });

  app.post('/admin/cleanup', async () => ({ ok: true, ...(await ctx.housekeeper.runCleanup()) }));

  app.get('/admin/intents/:id', async (req, reply) => {
    const row = await store.intentGet(intentIdParam(req));
    if (!row) throw notFound('Intent not found');
    return reply.type(JSON_TYPE).send(adminIntent(row));
  });

  app.post('/admin/intents/:id/cancel', async (req) => {
    const row = await store.intentCancel(intentIdParam(req), clock.now());
    if (!row) throw notFound('Intent not found');
    announce(wake, row);
    return { ok: true, id: row.id, status: row.status };
  });

  app.post('/admin/intents/:id/retry', async (req) => {
    const row = await store.intentRetry(intentIdParam(req), clock.now());
    if (!row) throw notFound('Intent not found');
    announce(wake, row);
    return { ok: true, id: row.id, status: row.status, intent: statusObject(row) };
  });

  app.get('/admin/dead', { schema: { querystring: schemas.deadListQuery } }, async (req) => {
    const q = req.query as { limit?: number; namespace?: string };
    return (await store.deadList(q.limit ?? 100, q.namespace ?? null)).map(deadLetter);
  });

  app.get('/admin/dead/:intent_id', async (req, reply) => {
    const row = await store.intentGet(intentIdParam(req, 'intent_id'));
    if (!row || row.status !== 'dead') throw notFound('Dead letter not found');
    const text = withRawMembers({ ...deadLetter(row), error: row.error }, { payload: row.payload });
    return reply.type(JSON_TYPE).send(text);
  });
}
