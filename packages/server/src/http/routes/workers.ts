/**
 * [ext] The fleet (issue 18): the workers a key sees (client scope), and the admin's view,
 * commands and "why it waits" (admin scope). Each route calls one operation (ops/fleet.ts).
 */
import { schemas } from '@intent-bus/protocol';
import {
  commandWorker,
  forgetWorker,
  goalsReport,
  listAllWorkers,
  listWorkers,
} from '../../ops/fleet.js';
import { principalOf, type BusApp, type BusContext } from '../context.js';
import { goalObject, workerObject } from '../wire.js';

const refsOut = (refs: Array<{ keyId: string; workerId: string }>) =>
  refs.map((r) => ({ key_id: r.keyId, worker_id: r.workerId }));

export async function workerRoutes(app: BusApp, ctx: BusContext): Promise<void> {
  app.get('/workers', async (req) => ({
    workers: (await listWorkers(ctx, principalOf(req))).map(workerObject),
  }));
}

export async function adminWorkerRoutes(app: BusApp, ctx: BusContext): Promise<void> {
  app.get('/admin/workers', async () => ({
    workers: (await listAllWorkers(ctx)).map(workerObject),
  }));

  app.post(
    '/admin/workers/:worker_id/:command',
    { schema: { params: schemas.workerCommandParams, querystring: schemas.workerKeyQuery } },
    async (req) => {
      const { worker_id: workerId, command } = req.params;
      const refs = await commandWorker(ctx, workerId, req.query.key_id ?? null, command);
      return {
        ok: true,
        worker_id: workerId,
        command: command === 'resume' ? null : command,
        workers: refsOut(refs),
      };
    },
  );

  app.delete(
    '/admin/workers/:worker_id',
    { schema: { params: schemas.workerParams, querystring: schemas.workerKeyQuery } },
    async (req) => {
      const workerId = req.params.worker_id;
      const refs = await forgetWorker(ctx, workerId, req.query.key_id ?? null);
      return { ok: true, worker_id: workerId, forgotten: true, workers: refsOut(refs) };
    },
  );

  app.get('/admin/goals', async () => {
    const now = ctx.clock.now();
    return { goals: (await goalsReport(ctx)).map((g) => goalObject(g, now)) };
  });
}
