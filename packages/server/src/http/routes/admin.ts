/** The admin API of PROTOCOL.md §6 (the dashboard's files are routes/dashboard.ts). */
import { schemas, withRawMembers } from '@intent-bus/protocol';
import type { IntentRow, ListCursor } from '../../store/store.js';
import { invalid, notFound } from '../../core/errors.js';
import { hashKey, newApiKey } from '../auth.js';
import { cancel, purge, retry, revokeKey } from '../../ops/admin.js';
import { intentIdParam, type BusApp, type BusContext } from '../context.js';
import { JSON_TYPE, adminIntent, deadLetter, keyInfo, statusObject } from '../wire.js';

/** A listing cursor names the last row shown: opaque to clients. */
const encodeCursor = (row: IntentRow): string =>
  Buffer.from(`${row.createdAt}:${row.id}`).toString('base64url');

function decodeCursor(cursor: string): ListCursor {
  const m = /^(\d{1,16}):([0-9a-f]{32})$/.exec(Buffer.from(cursor, 'base64url').toString('latin1'));
  if (!m) throw invalid('cursor', 'cursor is not one this bus handed out');
  return { createdAt: Number(m[1]), id: m[2]! };
}

export async function adminRoutes(app: BusApp, ctx: BusContext): Promise<void> {
  const { store, clock, events } = ctx;

  app.post(
    '/admin/generate_key',
    { schema: { body: schemas.generateKeyBody } },
    async (req, reply) => {
      const { owner } = req.body;
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
    const body = req.body;
    if (body.api_key !== undefined) await revokeKey(ctx, { keyHash: hashKey(body.api_key) });
    else if (body.key_id !== undefined) await revokeKey(ctx, { keyId: body.key_id });
    else throw invalid('api_key', 'Missing api_key or key_id');
    return { ok: true, revoked: true };
  });

  app.get('/admin/keys', async () => {
    await ctx.housekeeper.flushUsage();
    return (await store.keyList()).map(keyInfo);
  });

  app.post('/admin/purge', { schema: { body: schemas.purgeBody } }, async (req) => {
    const body = req.body;
    if (body.confirm !== true) throw invalid('confirm', 'Purge needs {"confirm": true}');
    const out = await purge(ctx, body.namespace ?? null);
    return {
      ok: true,
      namespace: body.namespace ?? null,
      intents_deleted: out.intents,
      dead_letters_deleted: out.dead,
    };
  });

  app.post('/admin/cleanup', async () => ({ ok: true, ...(await ctx.housekeeper.runCleanup()) }));

  const byId = { schema: { params: schemas.intentIdParams } };
  app.get('/admin/intents/:id', byId, async (req, reply) => {
    const row = await store.intentGet(intentIdParam(req.params.id));
    if (!row) throw notFound('Intent not found');
    return reply.type(JSON_TYPE).send(adminIntent(row));
  });

  app.post('/admin/intents/:id/cancel', byId, async (req) => {
    const row = await cancel(ctx, intentIdParam(req.params.id));
    return { ok: true, id: row.id, status: row.status };
  });

  app.post('/admin/intents/:id/retry', byId, async (req, reply) => {
    const row = await retry(ctx, intentIdParam(req.params.id));
    const out = withRawMembers(
      { ok: true, id: row.id, status: row.status },
      {
        intent: statusObject(row),
      },
    );
    return reply.type(JSON_TYPE).send(out);
  });

  app.get(
    '/admin/intents',
    { schema: { querystring: schemas.adminIntentsQuery } },
    async (req, reply) => {
      const q = req.query;
      const limit = q.limit ?? 50;
      const rows = await store.intentsList(
        {
          namespace: q.namespace,
          goal: q.goal,
          status: q.status,
          publisher: q.publisher,
          workerId: q.worker_id,
        },
        limit + 1,
        q.cursor === undefined ? null : decodeCursor(q.cursor),
      );
      const items = rows.slice(0, limit);
      const last = items[items.length - 1];
      const next = rows.length > limit && last ? encodeCursor(last) : null;
      // Each item as JSON text: a progress's data exactly as the worker sent it.
      const list = `[${items.map((row) => statusObject(row)).join(',')}]`;
      return reply.type(JSON_TYPE).send(withRawMembers({ next_cursor: next }, { items: list }));
    },
  );

  app.get('/admin/stats', async () => {
    const now = clock.now();
    const byStatus = { open: 0, claimed: 0, fulfilled: 0, dead: 0 };
    const byNamespace: Record<string, typeof byStatus> = {};
    for (const c of await store.intentsCount()) {
      byStatus[c.status] += c.n;
      (byNamespace[c.namespace] ??= { open: 0, claimed: 0, fulfilled: 0, dead: 0 })[c.status] = c.n;
    }
    const thisMinute = Math.floor(now / 60_000) * 60_000;
    const first = thisMinute - 59 * 60_000;
    const counted = new Map((await store.intentsPerMinute(first)).map((m) => [m.minute, m]));
    const failures = events.failuresPerMinute();
    const perMinute = Array.from({ length: 60 }, (_, i) => {
      const minute = first + i * 60_000;
      const m = counted.get(minute);
      return {
        minute: minute / 1000,
        published: m?.published ?? 0,
        fulfilled: m?.fulfilled ?? 0,
        failed: failures.get(minute) ?? 0,
        dead: m?.dead ?? 0,
      };
    });
    return { by_status: byStatus, by_namespace: byNamespace, per_minute: perMinute };
  });

  app.get('/admin/dead', { schema: { querystring: schemas.deadListQuery } }, async (req) => {
    const q = req.query;
    return (await store.deadList(q.limit ?? 100, q.namespace ?? null)).map(deadLetter);
  });

  const byDeadId = { schema: { params: schemas.deadLetterParams } };
  app.get('/admin/dead/:intent_id', byDeadId, async (req, reply) => {
    const row = await store.intentGet(intentIdParam(req.params.intent_id));
    if (!row || row.status !== 'dead') throw notFound('Dead letter not found');
    const text = withRawMembers({ ...deadLetter(row), error: row.error }, { payload: row.payload });
    return reply.type(JSON_TYPE).send(text);
  });

  // Discards a dead letter the operator has dealt with: the dead intent's row goes, so it
  // leaves /admin/dead, /admin/intents and /status. Nothing waits on a dead intent (it is
  // finished), so there is no one to tell. Only dead ones: a live intent is cancelled first.
  app.delete('/admin/dead/:intent_id', byDeadId, async (req) => {
    const id = intentIdParam(req.params.intent_id);
    if (await store.deadDiscard(id)) return { ok: true, id, discarded: true };
    const row = await store.intentGet(id);
    if (!row) throw notFound('Dead letter not found');
    throw notFound(`The intent is ${row.status}, not a dead letter: only those are discarded`);
  });
}
