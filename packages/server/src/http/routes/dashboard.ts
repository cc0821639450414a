/** GET /admin/dashboard: the operator's page (behind admin auth, like every /admin route). */
import type { FastifyInstance } from 'fastify';
import type { BusContext } from '../context.js';

export async function dashboardRoutes(app: FastifyInstance, _ctx: BusContext): Promise<void> {
  app.get('/admin/dashboard', async (_req, reply) =>
    reply.type('text/html; charset=utf-8').send('<!doctype html><title>Intent Bus</title>'),
  );
}
