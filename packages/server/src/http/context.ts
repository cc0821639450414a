import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts';
import { LIMITS, rawMember } from '@intent-bus/protocol';
import { notFound } from '../core/errors.js';
import type { SlidingWindowLimiter } from '../core/rate-limit.js';
import type { StoreHealth } from '../store/health.js';
import type { OpsContext, Requester } from '../ops/context.js';
import type { PgWakeRelay } from '../wake/pg-relay.js';
import type { BusMetrics } from '../metrics.js';
import type { Principal } from '../core/principal.js';
import type { Authenticator } from './auth.js';
import type { Housekeeper } from '../housekeeping/housekeeper.js';

/** What the routes are given: the parts of the bus, never a connection. */
export interface BusContext extends OpsContext {
  /** Whether the store can write (for /health); `store` reports its failures to it. */
  storeHealth: StoreHealth;
  metrics: BusMetrics;
  /** On PostgreSQL: the wake-ups to and from the other nodes. */
  relay: PgWakeRelay | null;
  auth: Authenticator;
  housekeeper: Housekeeper;
  /** Requests per minute per tester key. */
  limiter: SlidingWindowLimiter;
}

/**
 * The app the route groups are given. Its type provider types each route's body, query
 * string and params from the very JSON schemas that validate them (protocol/src/schemas.ts),
 * so a handler reads `req.body.claim_token` with no cast, and a route without a schema for
 * a part gets `unknown` there.
 */
export type BusApp = FastifyInstance<
  Server,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  BusTypeProvider
>;

/**
 * json-schema-to-ts as the routes use it: a member with a `default` stays optional, since
 * the validator does not fill defaults in (normalizePublish applies them).
 */
export type BusTypeProvider = JsonSchemaToTsProvider<{
  ValidatorSchemaOptions: { keepDefaultedPropertiesOptional: true };
}>;

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
    /** The exact body bytes received (for request signatures), or null without a body. */
    rawBody: Buffer | null;
    /** The body decoded as UTF-8 once, or null without a body. */
    bodyText: string | null;
  }
}

export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new Error('route registered without authentication');
  return req.principal;
}

/**
 * Whether the client went away before its answer was sent (long polls stop waiting). The
 * AbortSignal is made on first use: most claims are answered without ever waiting.
 */
export class ClientPresence implements Requester {
  private controller: AbortController | null = null;
  private left = false;

  constructor(reply: FastifyReply) {
    reply.raw.once('close', () => {
      if (reply.raw.writableFinished) return;
      this.left = true;
      this.controller?.abort();
    });
  }

  get gone(): boolean {
    return this.left;
  }

  get signal(): AbortSignal {
    if (this.controller === null) {
      this.controller = new AbortController();
      if (this.left) this.controller.abort();
    }
    return this.controller.signal;
  }
}

const INTENT_ID = new RegExp(LIMITS.idPattern);

/** An intent id of the path; malformed ids cannot exist, so they answer like unknown ones. */
export function intentIdParam(id: string): string {
  if (!INTENT_ID.test(id)) throw notFound('Intent not found');
  return id;
}

/** The exact text of a top-level member of the JSON body (numbers kept as sent). */
export function rawBodyMember(req: FastifyRequest, key: string): string | undefined {
  return req.bodyText === null ? undefined : rawMember(req.bodyText, key);
}

export function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' ? v : Array.isArray(v) ? v[0] : undefined;
}
