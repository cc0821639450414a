/**
 * Assembles the HTTP layer: body parsing, request ids, headers, authentication, the
 * error shape, 404/405, and the route groups. Nothing here touches the database directly.
 */
import { randomUUID } from 'node:crypto';
import Ajv from 'ajv';
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyHttpOptions,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifySchemaValidationError,
} from 'fastify';
import { ERROR_CODES, LIMITS, type ErrorCode } from '@intent-bus/protocol';
import { BusError } from '../core/errors.js';
import { nestingExceeds } from '../core/validate.js';
import { PROTOCOL_VERSION } from '../version.js';
import { adminEventRoutes, eventRoutes } from './routes/events.js';
import type { Principal } from '../core/principal.js';
import { AdminUnauthorized, checkSameSite, hasBody } from './auth.js';
import { principalOf, type BusApp, type BusContext, type BusTypeProvider } from './context.js';
import { RequestLogger } from './request-logger.js';
import { checkSignature } from './signature.js';
import { decodeUtf8, hasLoneSurrogate } from './body-text.js';
import { toWireError } from './errors.js';
import { OpenApiDocument } from './openapi.js';
import { adminRoutes } from './routes/admin.js';
import { adminScheduleRoutes } from './routes/admin-schedules.js';
import { flowRoutes } from './routes/flow.js';
import { dashboardRoutes, rootRoutes } from './routes/dashboard.js';
import { healthRoutes } from './routes/health.js';
import { intentRoutes } from './routes/intents.js';
import { BATCH_PATHS, batchRoutes } from './routes/batches.js';
import { kvRoutes } from './routes/kv.js';
import { metricsRoutes } from './routes/metrics.js';
import { scheduleRoutes } from './routes/schedules.js';
import { adminWorkerRoutes, workerRoutes } from './routes/workers.js';

/** The payload may nest 10 levels (§5.1); the body around it a little more. */
const MAX_BODY_DEPTH = LIMITS.payloadMaxDepth + 2;
const REQUEST_ID = new RegExp(LIMITS.requestIdPattern);
const JSON_NON_WHITESPACE = /[^ \t\r\n]/;
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;

/** Node's HTTP parser errors a client caused, and how they are answered. */
const CLIENT_ERRORS: Record<string, [ErrorCode, string]> = {
  ERR_HTTP_REQUEST_TIMEOUT: ['request_timeout', 'The request was not received in time'],
  HPE_HEADER_OVERFLOW: ['headers_too_large', 'Request headers are too large'],
};

const STATIC_HEADERS: Record<string, string> = {
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'x-intent-version': PROTOCOL_VERSION,
};

/** JSON types: application/json, application/*+json, with any parameters. */
const isJsonType = (type: string | undefined): boolean => {
  if (type === undefined) return true;
  const t = type.split(';')[0]!.trim().toLowerCase();
  return (
    t === '' || t === 'application/json' || (t.startsWith('application/') && t.endsWith('+json'))
  );
};

/**
 * A query number is written as a plain decimal. Ajv's coercion takes whatever Number()
 * takes ("0x3", "1e1", " 3", "3\n"), so these are checked before it coerces.
 */
const DECIMAL = /^-?\d+(\.\d+)?$/;

type Validate = ((data: unknown) => boolean) & {
  errors?: FastifySchemaValidationError[] | null;
};

/** The number and integer properties of a query-string schema, with their type. */
function numberProperties(schema: object): Array<[string, string]> {
  const props = (schema as { properties?: Record<string, { type?: unknown }> }).properties ?? {};
  return Object.entries(props).flatMap(([name, p]) => {
    const type = [p.type].flat().find((t) => t === 'number' || t === 'integer');
    return typeof type === 'string' ? [[name, type] as [string, string]] : [];
  });
}

/**
 * Bodies are checked exactly (no coercion); query strings are text and coerced, their
 * numbers only from plain decimals (the same answer as any other value of a wrong type).
 */
function validatorCompiler(): (arg: { schema: object; httpPart?: string }) => Validate {
  const strict = new Ajv.default({
    coerceTypes: false,
    useDefaults: false,
    allErrors: false,
    strict: false,
  });
  const coercing = new Ajv.default({
    coerceTypes: true,
    useDefaults: false,
    allErrors: false,
    strict: false,
  });
  return ({ schema, httpPart }) => {
    if (httpPart === 'body') return strict.compile(schema);
    const validate = coercing.compile(schema);
    const numbers = httpPart === 'querystring' ? numberProperties(schema) : [];
    if (numbers.length === 0) return validate;
    // Fastify reads the failure from the function's `errors`, as from Ajv's own.
    const checked: Validate = (data) => {
      const query = data as Record<string, unknown> | null;
      for (const [name, type] of numbers) {
        const v = query?.[name];
        if (typeof v === 'string' && !DECIMAL.test(v)) {
          checked.errors = [
            {
              instancePath: `/${name}`,
              schemaPath: `#/properties/${name}/type`,
              keyword: 'type',
              params: { type },
              message: `must be ${type}`,
            },
          ];
          return false;
        }
      }
      const ok = validate(data);
      checked.errors = validate.errors;
      return ok;
    };
    return checked;
  };
}

/**
 * Socket limits: a client must send its headers within 10 s and its whole request within
 * 30 s (a slow client cannot hold a socket by trickling); an idle socket goes after
 * 120 s. Answers may take longer: a long poll holds at most 60 s after the request is in.
 */
export const SERVER_TIMEOUTS = {
  headersTimeout: 10_000,
  requestTimeout: 30_000,
  connectionsCheckingInterval: 1_000,
} as const;

export interface AppOptions {
  ctx: BusContext;
  logger: FastifyBaseLogger;
  /** PEM certificate and key to serve HTTPS directly. */
  tls?: { cert: Buffer; key: Buffer } | null;
}

export async function buildApp({ ctx, logger, tls }: AppOptions): Promise<FastifyInstance> {
  const { config } = ctx;
  const options: FastifyHttpOptions<Server, FastifyBaseLogger> = {
    loggerInstance: logger,
    // One line per request is written by the onResponse hook below.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: (parent, bindings, opts) => new RequestLogger(parent, bindings, opts),
    bodyLimit: config.maxBodyBytes,
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    connectionTimeout: 120_000,
    requestTimeout: SERVER_TIMEOUTS.requestTimeout,
    keepAliveTimeout: 65_000,
    // The root onRequest hook checks Host, in the protocol's shape (Node's own answer to
    // a missing one is a bare 400).
    http: { ...SERVER_TIMEOUTS, requireHostHeader: false },
    // One hop: the client is the address the proxy in front appended to X-Forwarded-For
    // (the last one). Trusting every hop would take the first, which any client can write.
    trustProxy: config.trustProxy ? (_address: string, hop: number) => hop < 1 : false,
    // Long enough that the routes' own checks answer over-long names and ids (400/404);
    // Node's header size limit bounds the URL anyway.
    routerOptions: {
      maxParamLength: 8192,
      ignoreTrailingSlash: false,
      ignoreDuplicateSlashes: false,
    },
    // Bad URLs and the like never reach the error handler or the hooks: same answer here.
    frameworkErrors: (err, req, reply) => replyError(err, req, reply),
    // Errors below HTTP (malformed, too slow, headers too large): answered on the socket.
    clientErrorHandler: (err, socket) => {
      if (!socket.writable) return socket.destroy(err);
      const [code, message] = CLIENT_ERRORS[(err as NodeJS.ErrnoException).code ?? ''] ?? [
        'invalid_request',
        'Malformed HTTP request',
      ];
      const status = ERROR_CODES[code].status;
      // An answer to HEAD has no body, or the client would read it as the next response.
      const head = /^HEAD /.test(
        (err as unknown as { rawPacket?: Buffer }).rawPacket?.toString('latin1') ?? '',
      );
      const body = head ? '' : JSON.stringify({ error: { code, message } });
      const headers = Object.entries(STATIC_HEADERS)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('');
      socket.end(
        `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nconnection: close\r\n` +
          `content-type: application/json\r\n${headers}` +
          `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    },
  };
  // The HTTPS server takes the same options; Fastify's types split the two kinds apart.
  // Every route's request parts are typed from their schemas (context.ts, BusApp).
  const app: BusApp = (
    tls
      ? (Fastify({
          ...options,
          https: { ...SERVER_TIMEOUTS, requireHostHeader: false, ...tls },
        } as typeof options) as FastifyInstance)
      : Fastify(options)
  ).withTypeProvider<BusTypeProvider>();
  app.setValidatorCompiler(validatorCompiler());

  // Expect: 100-continue. Node answers 100 Continue by itself unless 'checkContinue' has
  // a listener: a Content-Length over the limit must get its 413 instead, so that the
  // client does not send the body (Node closes the connection after an answer given
  // without 100 Continue, since the body may still come). Any other goes on as in Node.
  app.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    // A batch (issue 21) has its own limit.
    const limit = BATCH_PATHS.has((req.url ?? '').split('?')[0]!)
      ? config.maxBatchBodyBytes
      : config.maxBodyBytes;
    if (!(Number(req.headers['content-length']) > limit)) res.writeContinue();
    app.server.emit('request', req, res);
  });
  // Any other expectation: ignored (RFC 9110 §10.1.1 allows it), so the request gets its
  // answer in the protocol's shape instead of Node's bare 417.
  app.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    app.server.emit('request', req, res);
  });

  app.decorateRequest('principal', null);
  app.decorateRequest('rawBody', null);
  app.decorateRequest('bodyText', null);

  // An empty body (or JSON whitespace only) is no body, whatever its Content-Type
  // (PROTOCOL.md §1). A non-empty body must be JSON; its exact bytes are kept for request
  // signatures, and its text, decoded once, for the members stored as sent.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (req, body: Buffer, done) => {
    req.rawBody = body;
    // Null for bytes that are not UTF-8: never whitespace only (that is ASCII), so a body.
    const text = decodeUtf8(body);
    req.bodyText = text;
    if (text !== null && !JSON_NON_WHITESPACE.test(text)) return done(null, undefined);
    if (!isJsonType(req.headers['content-type'])) {
      return done(
        new BusError('unsupported_media_type', 'Request body must be JSON (application/json)'),
      );
    }
    // Decoded leniently, such bytes would be stored as U+FFFD, not as sent (and signed).
    if (text === null) {
      return done(new BusError('invalid_json', 'Request body is not valid UTF-8'));
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return done(new BusError('invalid_json', 'Request body is not valid JSON'));
    }
    // Bounds every later walk of the body (hashing, validation), unknown fields included.
    // A batch's items (issue 21) sit two levels deeper: {"intents": [{"payload": …}]}.
    const depth = BATCH_PATHS.has(req.url.split('?')[0]!) ? MAX_BODY_DEPTH + 2 : MAX_BODY_DEPTH;
    if (nestingExceeds(parsed, depth)) {
      return done(
        new BusError('invalid_request', `Request body nests deeper than ${depth} levels`),
      );
    }
    // JSON.parse takes "\ud800" alone; no store keeps such a string as it came.
    if (hasLoneSurrogate(text, parsed)) {
      return done(
        new BusError(
          'invalid_json',
          'Request body has a lone surrogate (a \\uD800-\\uDFFF escape without its pair)',
        ),
      );
    }
    done(null, parsed);
  });

  // From the start of the close (preClose, before the long polls are ended): new requests
  // get 503, and every answer still to be sent closes its connection, so that the
  // server's close does not wait for keep-alive sockets that became idle after it began.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });

  // Hooks are written with `done` (see `hook` below): Fastify runs those without a
  // promise and a microtask each, on every request.
  app.addHook(
    'onRequest',
    hook((req) => {
      if (closing) throw new BusError('shutting_down', 'The bus is shutting down');
      checkHost(req);
      if (
        config.enforceHttps &&
        req.protocol !== 'https' &&
        !isLoopback(req.ip) &&
        req.url.split('?')[0] !== '/health'
      ) {
        throw new BusError('https_required', 'Use HTTPS to reach this bus');
      }
      if ((req.method === 'GET' || req.method === 'HEAD') && hasBody(req)) {
        throw new BusError('invalid_request', `${req.method} requests must not carry a body`);
      }
    }),
  );

  // A route that takes a body and got none validates as an empty object, so the answer
  // names the missing field ("Missing claim_token") instead of "not an object".
  app.addHook(
    'preValidation',
    hook((req) => {
      if (req.body === undefined && req.routeOptions.schema?.body) req.body = {};
    }),
  );

  app.addHook('onSend', (req, reply, payload, done) => {
    standardHeaders(req, reply);
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });

  app.addHook('onResponse', (req, reply, done) => {
    ctx.metrics.request(
      req.method,
      req.routeOptions.url ?? 'unmatched',
      reply.statusCode,
      reply.elapsedTime / 1000,
    );
    logger.info(
      {
        reqId: req.id,
        method: req.method,
        route: req.routeOptions.url ?? 'unmatched',
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
      },
      'request',
    );
    done();
  });

  app.setErrorHandler(async (err, req, reply) => replyError(err, req, reply));

  app.setNotFoundHandler(async () => {
    throw new BusError('not_found', 'No such route');
  });

  // Which methods each path has, to answer the others with 405 instead of 404.
  const routeMethods = new Map<string, Set<string>>();
  const openapi = new OpenApiDocument();
  app.addHook('onRoute', (route) => {
    openapi.add(route);
    const set = routeMethods.get(route.url) ?? new Set<string>();
    for (const m of [route.method].flat()) set.add(m);
    routeMethods.set(route.url, set);
  });

  // Client routes: X-API-KEY before the body is read. Signatures, rate limits and quotas
  // (the security issue) attach here as further hooks of this scope.
  await app.register(async (client) => {
    const admit = (req: FastifyRequest, principal: Principal, now: number): void => {
      req.principal = principal;
      if (principal.isMain) return;
      const admission = ctx.limiter.take(principal.keyId, now);
      if (!admission.ok) {
        throw new BusError(
          'rate_limited',
          `Rate limit of ${config.rateLimitPerMinute} requests per minute`,
          { retryAfterSeconds: Math.max(1, Math.ceil(admission.retryAfterMs / 1000)) },
        );
      }
    };
    client.addHook(
      'onRequest',
      hook((req) => {
        if (config.maintenanceMode)
          throw new BusError('maintenance', 'The bus is in maintenance mode');
        const now = ctx.clock.now();
        const principal = ctx.auth.authenticate(req, now);
        if (principal instanceof Promise) return principal.then((p) => admit(req, p, now));
        admit(req, principal, now);
      }),
    );
    // Signatures cover the exact body bytes, so they are checked once the body is read.
    client.addHook(
      'preValidation',
      hook((req) =>
        checkSignature(req, principalOf(req), {
          store: ctx.store,
          now: ctx.clock.now(),
          required: config.requireSignatures,
        }),
      ),
    );
    await intentRoutes(client, ctx);
    await batchRoutes(client, ctx);
    await kvRoutes(client, ctx);
    await scheduleRoutes(client, ctx);
    await workerRoutes(client, ctx);
    await eventRoutes(client, ctx);
  });

  await app.register(async (admin) => {
    admin.addHook(
      'onRequest',
      hook((req) => {
        // The cross-site rule first: a foreign page's request is refused without ever
        // prompting the browser for the admin login.
        if (req.method !== 'GET' && req.method !== 'HEAD') checkSameSite(req);
        ctx.auth.checkAdmin(req);
      }),
    );
    await adminRoutes(admin, ctx);
    await adminWorkerRoutes(admin, ctx);
    await adminScheduleRoutes(admin, ctx);
    await flowRoutes(admin, ctx);
    await dashboardRoutes(admin, ctx);
    await adminEventRoutes(admin, ctx);
  });

  await healthRoutes(app, ctx);
  await rootRoutes(app);
  app.get('/openapi.json', async () => openapi.document());
  await metricsRoutes(app, ctx);

  const allowedBy = new Map([...routeMethods].map(([url, set]) => [url, [...set]]));
  for (const [url, allowed] of allowedBy) {
    const others = METHODS.filter((m) => !allowed.includes(m));
    if (others.length === 0) continue;
    app.route({
      method: others,
      url,
      config: { openapi: false },
      handler: async (_req, reply) => {
        reply.header('allow', allowed.join(', '));
        throw new BusError('method_not_allowed', `Use ${allowed.join(' or ')}`);
      },
    });
  }
  return app;
}

function standardHeaders(req: FastifyRequest, reply: FastifyReply): void {
  for (const k in STATIC_HEADERS) reply.header(k, STATIC_HEADERS[k]);
  reply.header('x-request-id', req.id);
}

/** Answers anything thrown in the protocol's error shape. */
function replyError(err: unknown, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  const w = toWireError(err);
  if (w.internal) req.log.error({ err }, 'internal error');
  else if (w.status === 503)
    req.log.warn({ err: { message: (err as Error).message } }, 'store unavailable');
  standardHeaders(req, reply);
  if (w.retryAfterSeconds !== undefined) reply.header('retry-after', String(w.retryAfterSeconds));
  if (err instanceof AdminUnauthorized) {
    reply.header('www-authenticate', 'Basic realm="IntentBus Admin"');
  }
  return reply.code(w.status).send(w.body);
}

/**
 * Exactly one Host header (RFC 9112 §3.2). Node keeps only the first of two, so they are
 * counted in the raw headers. HTTP/1.0 had no Host: such a request without one is still
 * taken, as Node took it (old health probes send it so), but not with two.
 */
function checkHost(req: FastifyRequest): void {
  const raw = req.raw.rawHeaders;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') hosts++;
  }
  if (hosts > 1) throw new BusError('invalid_request', 'More than one Host header');
  if (hosts === 0 && req.raw.httpVersion !== '1.0') {
    throw new BusError('invalid_request', 'Missing Host header');
  }
}

/** 127.0.0.0/8 and ::1, also as IPv4-mapped IPv6. */
function isLoopback(ip: string): boolean {
  return ip === '::1' || /^(::ffff:)?127\./.test(ip);
}

/**
 * A request hook as a `done` hook, so that it costs no promise when it does not wait. It
 * may return a promise when it has to wait (a tester key not seen yet, a signed request's
 * nonce); whatever it throws, or its promise rejects with, is the request's error.
 */
function hook(
  fn: (req: FastifyRequest) => void | Promise<void>,
): (req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => void {
  return (req, _reply, done) => {
    let pending: void | Promise<void>;
    try {
      pending = fn(req);
    } catch (err) {
      return done(err as Error);
    }
    if (pending) pending.then(() => done(), done);
    else done();
  };
}
