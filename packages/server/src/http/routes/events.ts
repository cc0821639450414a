/**
 * GET /events [ext] (issue 20): Server-Sent Events of the changes of the intents the key may
 * read. The route admits the stream (ops/streams.ts: the caps), then takes the socket over
 * from Fastify (a raw reply) and hands it to the operation as its sink.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { schemas } from '@intent-bus/protocol';
import { MAIN_KEY_ID, type Principal } from '../../core/principal.js';
import { openEventStream, type StreamSink } from '../../ops/streams.js';
import { PROTOCOL_VERSION } from '../../version.js';
import { header, principalOf, type BusApp, type BusContext } from '../context.js';

/** The socket of a request, taken over from Fastify, as an event stream's sink. */
function sseSink(req: FastifyRequest, reply: FastifyReply): StreamSink {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'x-accel-buffering': 'no',
    'x-intent-version': PROTOCOL_VERSION,
    'x-request-id': req.id,
  });
  raw.flushHeaders();
  return {
    write: (text) => {
      if (!raw.destroyed) raw.write(text);
      return raw.writableLength;
    },
    end: () => raw.end(),
    onClose: (listener) => raw.once('close', listener),
  };
}

/** The admin reads as the main key does: every intent. */
const ADMIN: Principal = { keyId: MAIN_KEY_ID, isMain: true, keyHash: null };

export async function eventRoutes(app: BusApp, ctx: BusContext): Promise<void> {
  app.get('/events', { schema: { querystring: schemas.eventsQuery } }, async (req, reply) => {
    const q = req.query;
    openEventStream(
      ctx,
      principalOf(req),
      { namespace: q.namespace ?? null, goal: q.goal ?? null, id: q.id ?? null },
      header(req, 'last-event-id') ?? q.last_event_id ?? null,
      () => sseSink(req, reply),
    );
    return reply;
  });
}

/** GET /admin/events: every intent's changes, for the dashboard (admin credentials). */
export async function adminEventRoutes(app: BusApp, ctx: BusContext): Promise<void> {
  app.get('/admin/events', { schema: { querystring: schemas.eventsQuery } }, async (req, reply) => {
    const q = req.query;
    openEventStream(
      ctx,
      ADMIN,
      { namespace: q.namespace ?? null, goal: q.goal ?? null, id: q.id ?? null },
      header(req, 'last-event-id') ?? q.last_event_id ?? null,
      () => sseSink(req, reply),
    );
    return reply;
  });
}
