import type { FastifyInstance } from 'fastify';
import { VERSION } from '../../version.js';
import type { BusContext } from '../context.js';

export async function healthRoutes(app: FastifyInstance, ctx: BusContext): Promise<void> {
  app.get('/health', async (_req, reply) => {
    const ts = ctx.clock.now() / 1000;
    try {
      await ctx.store.ping();
      return { ok: true, ts, version: VERSION };
    } catch (err) {
      const reason = err instanceof Error ? err.message : 'store unavailable';
      return reply
        .code(503)
        .header('Retry-After', '1')
        .send({ ok: false, ts, version: VERSION, reason });
    }
  });
}
