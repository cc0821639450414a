/**
 * Test support: a real bus on a real SQLite file in a fresh temporary folder, listening
 * on an ephemeral 127.0.0.1 port, spoken to over real HTTP with fetch.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { resolveConfig, type Config } from '../src/config.js';
import { ManualClock, type Clock, type Random } from '../src/core/clock.js';
import { startBus, type Bus, type ReadyConfig } from '../src/server.js';

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

export const MAIN_KEY = 'k_main_test_0123456789abcdef';
export const ADMIN_TOKEN = 'admin_test_0123456789abcdef';
export const DASHBOARD_PASSWORD = 'dash-test-password';

export interface TestBus {
  bus: Bus;
  url: string;
  dir: string;
  dbPath: string;
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
  /** Reuse a data folder (restart on the same file). */
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

export async function startTestBus(options: StartOptions = {}): Promise<TestBus> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'intent-bus-test-'));
  const config = testConfig(dir, options.env);
  const manual = options.manualClock ? new ManualClock(Date.now()) : null;
  const clock = manual ?? { now: () => Date.now() };
  const logFile = testLogFile('bus');
  const bus = await startBus({
    config,
    clock,
    random: options.random ?? Math.random,
    logger: testLogger(logFile),
  });
  const api = makeApi(bus.url);
  return {
    bus,
    url: bus.url,
    dir,
    dbPath: config.dbPath,
    clock,
    manual,
    logFile,
    api,
    async newKey(owner = 'tester') {
      const r = await api('POST', '/admin/generate_key', { admin: true, body: { owner } });
      if (r.status !== 201) throw new Error(`generate_key: ${r.status} ${r.text}`);
      return r.json as { api_key: string; key_id: string };
    },
    async close() {
      await bus.close();
      if (!options.dir) rmSync(dir, { recursive: true, force: true });
    },
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
