/**
 * Every key's schedules for the admin (the dashboard's schedules view) [ext]: the list with
 * each schedule's owner, next runs and last runs, and pause, resume and trigger of one, by
 * its owner's key id and its name. The operations are those of the key's own routes
 * (ops/schedules.ts), done as the owner.
 */
import { schemas, type ScheduleTriggered } from '@intent-bus/protocol';
import { toSeconds } from '../../core/clock.js';
import {
  allSchedules,
  ownerOf,
  pauseSchedule,
  triggerSchedule,
  type ScheduleView,
} from '../../ops/schedules.js';
import type { BusApp, BusContext } from '../context.js';
import { JSON_TYPE, scheduleObject, scheduleRun } from '../wire.js';

const detail = ({ row, next, runs, failures }: ScheduleView): string =>
  scheduleObject(row, {
    owner: row.owner,
    next_runs: next.map(toSeconds),
    runs: runs.map((r) => scheduleRun(r, failures.get(r.scheduledFor!))),
  });

export async function adminScheduleRoutes(app: BusApp, ctx: BusContext): Promise<void> {
  const params = { params: schemas.adminScheduleParams };

  app.get('/admin/schedules', async (_req, reply) => {
    const views = await allSchedules(ctx);
    return reply.type(JSON_TYPE).send(`[${views.map(detail).join(',')}]`);
  });

  for (const [action, paused] of [
    ['pause', true],
    ['resume', false],
  ] as const) {
    app.post(`/admin/schedules/:owner/:name/${action}`, { schema: params }, async (req, reply) => {
      const row = await pauseSchedule(ctx, ownerOf(req.params.owner), req.params.name, paused);
      return reply.type(JSON_TYPE).send(scheduleObject(row, { owner: row.owner }));
    });
  }

  app.post('/admin/schedules/:owner/:name/trigger', { schema: params }, async (req, reply) => {
    const row = await triggerSchedule(ctx, ownerOf(req.params.owner), req.params.name);
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
