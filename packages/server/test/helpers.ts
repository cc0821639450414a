/**
 * Test support: a real bus on a real SQLite file in a fresh temporary folder, listening
 * on an ephemeral 127.0.0.1 port, spoken to over real HTTP with fetch. With
 * TEST_STORE=postgres (the server-pg project of vitest.config.ts) the same bus runs on
 * PostgreSQL instead, in an empty schema of its own.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll } from 'vitest';
import { ConfigError, resolveConfig, type Config } from '../src/config.js';
import { ManualClock, type Clock, type Random } from '../src/core/clock.js';
import { startBus, type Bus, type ReadyConfig } from '../src/server.js';
import { PG_ADMIN_URL } from './pg-database.js';

/**
 * Every test bus logs at debug level into test-artifacts/logs; after the run the global
 * teardown searches those files for secrets, tokens and payloads (none may appear).
 */
export const LOG_DIR = fileURLToPath(new URL('../../../test-artifacts/logs/', import.meta.url));
let logCount = 0;
export function testLogFile(kind: string): string {
  mkdirSync(LOG_DIR, { recursive: true });
  return join(LOG_DIR, `${kind}-${process.pid}-${++logCount}.log`);
}
function testLogger(file: string): pino.Logger {
  return pino({ level: 'debug' }, pino.destination({ dest: file, sync: true }));
}

/**
 * True in the server-pg project: every test bus runs on PostgreSQL (BUS_TEST_DATABASE_URL),
 * each in a schema of its own (BUS_DATABASE_SCHEMA).
 */
export const onPostgres = process.env.TEST_STORE === 'postgres';

/** Test data folder → its PostgreSQL schema, so that a restart on the same folder finds its data. */
const schemaOfDir = new Map<string, string>();
/** Schemas made by this test file and not dropped yet (in use or spare). */
const liveSchemas = new Set<string>();
/**
 * Schemas of closed buses, emptied, for the next bus of this file: the migrations run per
 * schema and cost ten times what emptying the tables does (files with a bus per test).
 */
const spareSchemas: string[] = [];
let schemaCount = 0;
let admin: pg.Pool | undefined;

function adminQuery(sql: string, values?: unknown[]): Promise<pg.QueryResult> {
  admin ??= new pg.Pool({ connectionString: PG_ADMIN_URL, max: 1, allowExitOnIdle: true });
  return admin.query(sql, values);
}

function forget(schema: string): void {
  for (const [dir, s] of schemaOfDir) if (s === schema) schemaOfDir.delete(dir);
}

async function dropSchema(schema: string): Promise<void> {
  forget(schema);
  liveSchemas.delete(schema);
  await adminQuery(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`);
}

/**
 * Empties every table but the migrations' and keeps the schema for the next bus; one that
 * cannot be emptied is left to the file's sweep below.
 */
async function recycleSchema(schema: string): Promise<void> {
  forget(schema);
  const { rows } = await adminQuery(
    "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename <> 'schema_migrations'",
    [schema],
  );
  const tables = rows.map((r: { tablename: string }) => pg.escapeIdentifier(r.tablename));
  const s = pg.escapeIdentifier(schema);
  await adminQuery(tables.map((t) => `DELETE FROM ${s}.${t};`).join('\n'));
  spareSchemas.push(schema);
}

// A test that failed before closing its bus, or a bus on a folder the test made itself
// (whose data outlives close(), as the folder does), leaves a schema: gone with the file.
if (onPostgres && process.env.VITEST_WORKER_ID !== undefined) {
  afterAll(async () => {
    spareSchemas.length = 0;
    for (const schema of [...liveSchemas]) await dropSchema(schema);
    await admin?.end();
    admin = undefined;
  });
}

export const MAIN_KEY = 'k_main_test_0123456789abcdef';
export const ADMIN_TOKEN = 'admin_test_0123456789abcdef';
export const DASHBOARD_PASSWORD = 'dash-test-password';

export interface TestBus {
  bus: Bus;
  url: string;
  dir: string;
  /** The SQLite file; on PostgreSQL the bus has none (see `schema`). */
  dbPath: string;
  /** On PostgreSQL, the schema holding the bus's tables; null on SQLite. */
  schema: string | null;
  clock: Clock;
  /** Present when the test asked for a manual clock. */
  manual: ManualClock | null;
  /** The bus's log (JSON lines, debug level, written synchronously). */
  logFile: string;
  api: Api;
  /** Mints a tester key through the admin API. */
  newKey(owner?: string): Promise<{ api_key: string; key_id: string }>;
  close(): Promise<void>;
}

export interface RequestOptions {
  /** X-API-KEY; defaults to the main key; null sends none. */
  key?: string | null;
  /** Sends X-Admin-Token instead of a key. */
  admin?: boolean;
  /** A JSON body (serialised) or a raw string body sent as is. */
  body?: unknown;
  raw?: string;
  headers?: Record<string, string>;
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed JSON body, or undefined when empty or not JSON. */
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- tests read arbitrary shapes
}

export type Api = (method: string, path: string, options?: RequestOptions) => Promise<ApiResponse>;

export function makeApi(url: string): Api {
  return async (method, path, o = {}) => {
    const headers: Record<string, string> = { ...o.headers };
    if (o.admin) headers['x-admin-token'] = ADMIN_TOKEN;
    else if (o.key !== null) headers['x-api-key'] = o.key ?? MAIN_KEY;
    let body: string | undefined;
    if (o.raw !== undefined) body = o.raw;
    else if (o.body !== undefined) {
      body = JSON.stringify(o.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await fetch(url + path, { method, headers, body });
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json };
  };
}

export interface StartOptions {
  env?: Record<string, string>;
  manualClock?: boolean;
  random?: Random;
  /** Reuse a data folder (restart on the same file; on PostgreSQL, the same schema). */
  dir?: string;
}

export function testConfig(dir: string, env: Record<string, string> = {}): ReadyConfig {
  const config: Config = resolveConfig({
    BUS_PORT: '0',
    BUS_HOST: '127.0.0.1',
    BUS_DB_PATH: join(dir, 'bus.db'),
    BUS_SECRET: MAIN_KEY,
    BUS_ADMIN_SECRET: ADMIN_TOKEN,
    DASHBOARD_PASSWORD,
    BUS_LOG_LEVEL: 'silent',
    ...env,
  });
  return config as ReadyConfig;
}

/**
 * On PostgreSQL, the schema of a data folder: the one it already has (a restart), or an
 * empty one (`fresh`: a spare or a new one, named after this process so that parallel runs
 * never meet).
 */
function schemaFor(dir: string): { schema: string; fresh: boolean } {
  const known = schemaOfDir.get(dir);
  if (known !== undefined) return { schema: known, fresh: false };
  const schema =
    spareSchemas.pop() ?? `it_${process.pid}_${++schemaCount}_${randomBytes(4).toString('hex')}`;
  schemaOfDir.set(dir, schema);
  liveSchemas.add(schema);
  return { schema, fresh: true };
}

export async function startTestBus(options: StartOptions = {}): Promise<TestBus> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'intent-bus-test-'));
  const pgData = onPostgres ? schemaFor(dir) : null;
  const config = testConfig(dir, {
    ...(pgData && { BUS_DATABASE_URL: PG_ADMIN_URL, BUS_DATABASE_SCHEMA: pgData.schema }),
    ...options.env,
  });
  const manual = options.manualClock ? new ManualClock(Date.now()) : null;
  const clock = manual ?? { now: () => Date.now() };
  const logFile = testLogFile('bus');
  let bus: Bus;
  try {
    bus = await startBus({
      config,
      clock,
      random: options.random ?? Math.random,
      logger: testLogger(logFile),
    });
  } catch (err) {
    // Nothing was made that a restart could come back to.
    if (pgData?.fresh) await dropSchema(pgData.schema).catch(() => {});
    if (pgData && err instanceof ConfigError && err.variable === 'BUS_DATABASE_URL') {
      throw new Error(
        'The server-pg tests run every test bus on PostgreSQL (BUS_TEST_DATABASE_URL, by default ' +
          `the local cluster's database test): start it or set the URL (${err.message})`,
        { cause: err },
      );
    }
    throw err;
  }
  const api = makeApi(bus.url);
  let closing: Promise<void> | undefined;
  return {
    bus,
    url: bus.url,
    dir,
    dbPath: config.dbPath,
    schema: pgData?.schema ?? null,
    clock,
    manual,
    logFile,
    api,
    async newKey(owner = 'tester') {
      const r = await api('POST', '/admin/generate_key', { admin: true, body: { owner } });
      if (r.status !== 201) throw new Error(`generate_key: ${r.status} ${r.text}`);
      return r.json as { api_key: string; key_id: string };
    },
    close: () =>
      (closing ??= (async () => {
        await bus.close();
        // Only the bus that made the data removes it; a restart on it (options.dir) leaves it.
        if (options.dir) return;
        rmSync(dir, { recursive: true, force: true });
        if (pgData) await recycleSchema(pgData.schema).catch(() => {});
      })()),
  };
}

/** Publishes and returns the new id, failing the test on anything but 201. */
export async function publish(
  api: Api,
  body: Record<string, unknown>,
  key?: string,
): Promise<string> {
  const r = await api('POST', '/intent', { body: { payload: {}, ...body }, key });
  if (r.status !== 201) throw new Error(`publish: ${r.status} ${r.text}`);
  return r.json.id as string;
}

/** Checks the protocol's error shape and returns the code. */
export function errorCode(r: ApiResponse): string {
  const e = r.json?.error;
  if (!e || typeof e.code !== 'string' || typeof e.message !== 'string') {
    throw new Error(`not the error shape: ${r.status} ${r.text}`);
  }
  return e.code as string;
}

/** A self-signed certificate for 127.0.0.1 and localhost, valid one day, made with openssl. */
export function selfSignedCert(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { stdio: 'ignore', timeout: 15_000 },
  );
  return { cert, key };
}
