import type { FastifyInstance } from 'fastify';
import { VERSION } from '../../version.js';
import type { BusContext } from '../context.js';

export async function healthRoutes(app: FastifyInstance, ctx: BusContext): Promise<void> {
  app.get('/health', async (req, reply) => {
    const ts = ctx.clock.now() / 1000;
    try {
      await ctx.store.ping();
      // Several nodes: whether this one hears the others' wake-ups (else its long polls
      // learn of their work only when they re-check the store).
      if (ctx.relay) return { ok: true, ts, version: VERSION, wake_relay: ctx.relay.state };
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
