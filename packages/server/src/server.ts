/**
 * Composes a running bus: store, wake hub, housekeeping and the HTTP app. Used by
 * `main.ts` (the `serve` command) and by the tests, which start real servers on
 * ephemeral ports.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { pino } from 'pino';
import type { Config } from './config.js';
import { ConfigError } from './config.js';
import { systemClock, type Clock, type Random } from './core/clock.js';
import { SlidingWindowLimiter } from './core/rate-limit.js';
import { Housekeeper } from './housekeeping/housekeeper.js';
import { runDied } from './ops/schedules.js';
import { declareSchedules } from './schedules-file.js';
import { buildApp } from './http/app.js';
import { Authenticator } from './http/auth.js';
import type { BusContext } from './http/context.js';
import { claimDbFile } from './store/sqlite/db-file.js';
import { openStore } from './store/open.js';
import { StoreHealth } from './store/health.js';
import type { Store } from './store/store.js';
import { claimableEvent } from './wake/announce.js';
import type { NodeWake } from './wake/announce.js';
import { WaiterHub } from './wake/hub.js';
import { WorkerRegistry } from './ops/workers.js';
import { FlowGate } from './ops/flow-gate.js';
import { PgWakeRelay } from './wake/pg-relay.js';
import { EventStreams } from './wake/streams.js';
import { ProgressWriter } from './ops/progress.js';
import { BusEvents } from './events.js';
import { BusMetrics } from './metrics.js';

export type ReadyConfig = Config & {
  secret: string;
  adminSecret: string;
  /** Null only on PostgreSQL when unset: the Basic login is then off. */
  dashboardPassword: string | null;
};

export interface BusOptions {
  config: ReadyConfig;
  clock?: Clock;
  random?: Random;
  logger?: FastifyBaseLogger;
}

export interface Bus {
  app: FastifyInstance;
  store: Store;
  hub: WaiterHub;
  housekeeper: Housekeeper;
  /** The workers seen (issue 18); its `writes` count the registry's store writes. */
  workers: WorkerRegistry;
  /** This node's event streams (GET /events [ext]). */
  streams: EventStreams;
  /** http://host:port once listening. */
  url: string;
  close(): Promise<void>;
}

function readTls(config: Config): { cert: Buffer; key: Buffer } | null {
  if (config.tlsCert == null || config.tlsKey == null) return null;
  const read = (path: string, variable: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError(variable, `cannot read ${path}: ${(err as Error).message}`);
    }
  };
  return { cert: read(config.tlsCert, 'BUS_TLS_CERT'), key: read(config.tlsKey, 'BUS_TLS_KEY') };
}

export async function startBus(options: BusOptions): Promise<Bus> {
  const { config } = options;
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const logger = options.logger ?? pino({ level: config.logLevel });
  const opened = openStore(config);
  // One bus per SQLite file (store/sqlite/db-file.ts); several nodes share PostgreSQL.
  let releaseFile = (): void => {};
  if (opened.kind === 'sqlite' && config.dbPath !== ':memory:') {
    try {
      releaseFile = claimDbFile(config.dbPath);
    } catch (err) {
      await opened.close();
      throw new ConfigError('BUS_DB_PATH', (err as Error).message);
    }
  }
  try {
    await opened.migrate();
  } catch (err) {
    await opened.close();
    releaseFile();
    throw config.databaseUrl != null
      ? // The URL may carry a password: name the variable, not its value.
        new ConfigError(
          'BUS_DATABASE_URL',
          `cannot prepare the database: ${(err as Error).message}`,
        )
      : new ConfigError(
          'BUS_DB_PATH',
          `cannot prepare ${config.dbPath}: ${(err as Error).message}`,
        );
  }
  if (config.schedulesFile != null) {
    try {
      const counts = await declareSchedules(opened, config.schedulesFile, clock.now());
      logger.info({ file: config.schedulesFile, ...counts }, 'declared schedules');
    } catch (err) {
      await opened.close();
      releaseFile();
      throw err;
    }
  }
  // Every store call of the bus reports its failures to the health tracker (/health).
  const storeHealth = new StoreHealth({ store: opened, clock, log: logger });
  const store = storeHealth.watch();
  const hub = new WaiterHub(
    clock,
    { maxWaiters: config.maxWaiters, maxWaitersPerKey: config.maxWaitersPerKey },
    async (after, limit) =>
      (await store.intentsDueAfter(after, limit)).map((row) => ({
        at: row.runAt,
        event: claimableEvent(row),
      })),
    // Whether an open intent names its worker (those due later are seen when they come due).
    async () => {
      const limit = 1000;
      const routes = await store.openRoutes(clock.now(), limit);
      return routes.length >= limit || routes.some((r) => r.targetWorker !== null);
    },
  );
  const auth = new Authenticator(
    store,
    config.secret,
    config.adminSecret,
    config.dashboardPassword,
  );
  const limiter = new SlidingWindowLimiter(config.rateLimitPerMinute);
  // The workers this node sees (issue 18), written through to the store in batches.
  const workers = new WorkerRegistry({
    store,
    onlineWindowMs: config.workerOnlineSeconds * 1000,
    wakeWorker: (keyId, workerId) => hub.wakeWorker(keyId, workerId),
    sharedByNodes: config.databaseUrl != null,
    now: () => clock.now(),
  });
  const flow = new FlowGate(store);
  const streams = new EventStreams({
    window: config.eventWindow,
    maxStreams: config.maxStreams,
    maxStreamsPerKey: config.maxStreamsPerKey,
  });
  // What this node does with an announcement, made here or heard from another node.
  const local: NodeWake = {
    intentEvent: (event) => {
      streams.push(event);
      progress.heard(event);
    },
    claimable: (event, at) => hub.claimable(event, at),
    finished: (id) => hub.finished(id),
    keyRevoked: (keyId) => {
      auth.forgetKey(keyId);
      workers.forgetKey(keyId);
      limiter.forget(keyId);
      hub.keyRevoked(keyId);
      streams.endKey(keyId);
    },
    flow: (namespace, goal) => {
      if (goal === null) flow.forget();
      hub.flow(namespace, goal);
    },
    resync: () => {
      auth.forget();
      flow.forget();
      hub.resync();
    },
    hearing: (on) => hub.hearing(on),
  };
  // Several nodes on one PostgreSQL database hear each other's announcements.
  const relay =
    config.databaseUrl == null
      ? null
      : new PgWakeRelay({
          connectionString: config.databaseUrl,
          schema: config.databaseSchema,
          local,
          log: logger,
        });
  const metrics = new BusMetrics(
    store,
    () => hub.waiting,
    { online: () => workers.list(null, clock.now()), writes: () => workers.writes },
    () => streams.connections,
  );
  const events = new BusEvents(relay ?? local, metrics, clock, (ns) => flow.inFlightLimit(ns));
  const progress = new ProgressWriter({ store, events, config });
  // A schedule's run that dies: its failure is recorded and its alert published, once.
  events.onRunDied((row) => void runDied({ store, events, clock, log: logger }, row));
  const housekeeper = new Housekeeper({
    store,
    events,
    clock,
    random,
    takeUsage: () => auth.takeUsage(),
    limiter,
    log: logger,
    cleanupIntervalSeconds: config.cleanupIntervalSeconds,
    retentionSeconds: config.retentionSeconds,
    maxOpenPerKey: config.maxOpenPerKey,
    workers,
    workerRetentionSeconds: config.workerRetentionSeconds,
  });
  const ctx: BusContext = {
    config,
    store,
    storeHealth,
    events,
    metrics,
    hub,
    relay,
    clock,
    random,
    auth,
    keys: auth,
    flow,
    housekeeper,
    limiter,
    workers,
    streams,
    progress,
  };
  const closeStore = async (): Promise<void> => {
    storeHealth.stop();
    await relay?.close();
    await store.close();
    releaseFile();
  };
  let app: FastifyInstance;
  try {
    app = await buildApp({ ctx, logger, tls: readTls(config) });
  } catch (err) {
    await closeStore();
    if (err instanceof ConfigError || config.tlsCert == null) throw err;
    throw new ConfigError('BUS_TLS_CERT', `cannot use the certificate: ${(err as Error).message}`);
  }
  // Long polls end (204) before the server waits for in-flight requests to finish.
  app.addHook('preClose', async () => hub.close());
  // Held progress reports are written; the event streams end (their sockets would hold the close).
  app.addHook('preClose', async () => {
    await progress.close();
    streams.closeAll();
  });

  try {
    await relay?.start();
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    await closeStore();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES') {
      throw new ConfigError('BUS_PORT', `cannot listen on ${config.host}:${config.port} (${code})`);
    }
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
      throw new ConfigError('BUS_HOST', `cannot listen on ${config.host} (${code})`);
    }
    throw err;
  }
  // The commands given before a restart still hold.
  await workers.refreshCommands().catch((err: unknown) => {
    logger.warn({ err }, 'could not read the worker commands; they apply from the next read');
  });
  housekeeper.start();
  hub.start();
  const addr = app.server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | null = null;
  return {
    app,
    store,
    hub,
    housekeeper,
    workers,
    streams,
    url: `${config.tlsCert ? 'https' : 'http'}://${host}:${addr.port}`,
    close: () =>
      (closing ??= (async () => {
        // A socket that connected but never sent a request is not "idle" to Node and
        // would hold the close; in-flight requests get a few seconds, then sockets go.
        const force = setTimeout(() => app.server.closeAllConnections(), 3000);
        try {
          await app.close();
        } finally {
          clearTimeout(force);
        }
        await housekeeper.stop();
        await closeStore();
      })()),
  };
}
