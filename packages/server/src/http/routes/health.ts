import type { FastifyInstance } from 'fastify';
import { VERSION } from '../../version.js';
import type { BusContext } from '../context.js';

export async function healthRoutes(app: FastifyInstance, ctx: BusContext): Promise<void> {
  app.get('/health', async (req, reply) => {
    const ts = ctx.clock.now() / 1000;
    try {
      await ctx.store.ping();
      return { ok: true, ts, version: VERSION };
    } catch (err) {
      // A fixed reason: the store's own message is for the logs, not for anyone who asks.
      req.log.warn({ err: { message: (err as Error).message } }, 'health check failed');
      const reason = 'store unavailable';
      return reply
        .code(503)
        .header('Retry-After', '1')
        .send({ ok: false, ts, version: VERSION, reason });
    }
  });
}
