/** Flow control's admin API [ext] (PROTOCOL.md §6; ops/flow.ts). */
import { schemas } from '@intent-bus/protocol';
import { notFound } from '../../core/errors.js';
import { flowRemove, flowSet } from '../../ops/flow.js';
import type { BusApp, BusContext } from '../context.js';
import { flowObject } from '../wire.js';

export async function flowRoutes(app: BusApp, ctx: BusContext): Promise<void> {
  app.get('/admin/flow', async () =>
    (await ctx.store.flowList()).map((c) => flowObject(c, c.namespace, c.goal)),
  );

  app.put(
    '/admin/flow/:namespace/:goal',
    { schema: { params: schemas.flowParams, body: schemas.flowBody } },
    async (req) => {
      const { namespace, goal } = req.params;
      const body = req.body ?? {};
      const control = await flowSet(ctx, namespace, goal, {
        paused: body.paused,
        maxInFlight: body.max_in_flight,
        rate: body.rate,
      });
      return flowObject(control, namespace, goal);
    },
  );

  app.delete(
    '/admin/flow/:namespace/:goal',
    { schema: { params: schemas.flowParams } },
    async (req) => {
      const { namespace, goal } = req.params;
      if (!(await flowRemove(ctx, namespace, goal))) throw notFound('No such flow control');
      return { ok: true, removed: true };
    },
  );
}
