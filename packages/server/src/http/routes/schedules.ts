/**
 * Schedules (issue 17), scoped per API key like the KV store: each route parses its
 * request, calls one operation (ops/schedules.ts) and answers what it returns. Another
 * key's schedule answers 404, as an absent one does.
 */
import { schemas, type ScheduleTriggered } from '@intent-bus/protocol';
import { toSeconds } from '../../core/clock.js';
import {
  deleteSchedule,
  listSchedules,
  pauseSchedule,
  putSchedule,
  showSchedule,
  triggerSchedule,
} from '../../ops/schedules.js';
import { principalOf, rawBodyMember, type BusApp, type BusContext } from '../context.js';
import { JSON_TYPE, scheduleObject, scheduleRun } from '../wire.js';

export async function scheduleRoutes(app: BusApp, ctx: BusContext): Promise<void> {
  const params = { params: schemas.scheduleParams };

  app.put(
    '/schedules/:name',
    { schema: { ...params, body: schemas.scheduleBody } },
    async (req, reply) => {
      const out = await putSchedule(ctx, principalOf(req), {
        name: req.params.name,
        body: req.body,
        intentText: rawBodyMember(req, 'intent'),
        onFailureText: rawBodyMember(req, 'on_failure'),
      });
      return reply.code(out.status).type(JSON_TYPE).send(scheduleObject(out.row));
    },
  );

  app.get('/schedules', async (req, reply) => {
    const rows = await listSchedules(ctx, principalOf(req));
    return reply.type(JSON_TYPE).send(`[${rows.map((r) => scheduleObject(r)).join(',')}]`);
  });

  app.get('/schedules/:name', { schema: params }, async (req, reply) => {
    const { row, next, runs, failures } = await showSchedule(
      ctx,
      principalOf(req),
      req.params.name,
    );
    return reply.type(JSON_TYPE).send(
      scheduleObject(row, {
        next_runs: next.map(toSeconds),
        runs: runs.map((r) => scheduleRun(r, failures.get(r.scheduledFor!))),
      }),
    );
  });

  app.delete('/schedules/:name', { schema: params }, async (req) => {
    await deleteSchedule(ctx, principalOf(req), req.params.name);
    return { ok: true, name: req.params.name, deleted: true };
  });

  for (const [action, paused] of [
    ['pause', true],
    ['resume', false],
  ] as const) {
    app.post(`/schedules/:name/${action}`, { schema: params }, async (req, reply) => {
      const row = await pauseSchedule(ctx, principalOf(req), req.params.name, paused);
      return reply.type(JSON_TYPE).send(scheduleObject(row));
    });
  }

  app.post('/schedules/:name/trigger', { schema: params }, async (req, reply) => {
    const row = await triggerSchedule(ctx, principalOf(req), req.params.name);
    const answer: ScheduleTriggered = {
      id: row.id,
      status: 'published',
      namespace: row.namespace,
      schedule: row.schedule!,
      scheduled_for: toSeconds(row.scheduledFor!),
    };
    return reply.code(201).send(answer);
  });
}
