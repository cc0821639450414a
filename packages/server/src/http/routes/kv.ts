/** The ephemeral key-value store, scoped per API key. */
import { schemas, withRawMembers } from '@intent-bus/protocol';
import { notFound } from '../../core/errors.js';
import { checkJsonValue, clampKvTtl } from '../../core/validate.js';
import { JSON_TYPE } from '../wire.js';
import { principalOf, rawBodyMember, type BusApp, type BusContext } from '../context.js';

export async function kvRoutes(app: BusApp, ctx: BusContext): Promise<void> {
  app.post(
    '/set/:name',
    { schema: { params: schemas.kvParams, body: schemas.kvSetBody } },
    async (req) => {
      const { name } = req.params;
      const body = req.body;
      checkJsonValue('value', body.value);
      const expiresAt = ctx.clock.now() + Math.round(clampKvTtl(body.ttl) * 1000);
      const value = rawBodyMember(req, 'value') ?? JSON.stringify(body.value);
      await ctx.store.kvSet(principalOf(req).keyId, name, value, expiresAt);
      return { ok: true };
    },
  );

  app.get('/get/:name', { schema: { params: schemas.kvParams } }, async (req, reply) => {
    const { name } = req.params;
    const value = await ctx.store.kvGet(principalOf(req).keyId, name, ctx.clock.now());
    if (value == null) throw notFound('Key not found or expired');
    // The value is stored as JSON text: splice it in rather than parse and re-serialise.
    return reply.type(JSON_TYPE).send(withRawMembers({}, { value }));
  });
}
