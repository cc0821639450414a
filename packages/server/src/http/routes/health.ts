import type { FastifyInstance } from 'fastify';
import { DEGRADED_REASON } from '../../store/health.js';
import { VERSION } from '../../version.js';
import type { BusContext } from '../context.js';

/**
 * 200 while the store is usable; 503 with a fixed reason while it is not: unreachable, or
 * degraded (a write failed since the last one that succeeded: read-only, full, locked by
 * another process). See store/health.ts.
 */
export async function healthRoutes(app: FastifyInstance, ctx: BusContext): Promise<void> {
  app.get('/health', async (_req, reply) => {
    const ts = ctx.clock.now() / 1000;
    if (await ctx.storeHealth.usable()) {
      // Several nodes: whether this one hears the others' wake-ups (else its long polls
      // learn of their work only when they re-check the store).
      if (ctx.relay) return { ok: true, ts, version: VERSION, wake_relay: ctx.relay.state };
      return { ok: true, ts, version: VERSION };
    }
    // The store's own message is in the logs (store/health.ts), not for anyone who asks.
    return reply
      .code(503)
      .header('Retry-After', '1')
      .send({ ok: false, ts, version: VERSION, reason: DEGRADED_REASON });
  });
}
