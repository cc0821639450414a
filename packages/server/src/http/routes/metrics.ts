/** GET /metrics: Prometheus text, for the metrics token or admin credentials (§3, §7). */
import type { FastifyInstance } from 'fastify';
import { BusError } from '../../core/errors.js';
import { AdminUnauthorized, secretEquals } from '../auth.js';
import type { BusContext } from '../context.js';

export async function metricsRoutes(app: FastifyInstance, ctx: BusContext): Promise<void> {
  app.get('/metrics', async (req, reply) => {
    const auth = req.headers.authorization;
    const token = ctx.config.metricsToken;
    const bearer = typeof auth === 'string' && /^bearer /i.test(auth) ? auth.slice(7).trim() : null;
    if (!(token != null && bearer != null && secretEquals(bearer, token))) {
      try {
        ctx.auth.checkAdmin(req);
      } catch (err) {
        if (err instanceof AdminUnauthorized)
          throw new BusError('unauthorized', 'Metrics credentials required');
        throw err;
      }
    }
    return reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.text());
  });
}
