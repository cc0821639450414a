/**
 * Runs the real `serve` entry point (the built dist/main.js) as a child process, for
 * what only a process can show: SIGKILL durability, signals, start-up errors.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect } from 'vitest';
import {
  ADMIN_TOKEN,
  DASHBOARD_PASSWORD,
  MAIN_KEY,
  makeApi,
  testLogFile,
  type Api,
} from './helpers.js';
import { createDatabase, type TestDatabase } from './pg-database.js';

export const MAIN_JS = fileURLToPath(new URL('../dist/main.js', import.meta.url));

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function ensureBuilt(): void {
  if (!existsSync(MAIN_JS)) throw new Error(`${MAIN_JS} is missing: run "npm run build" first`);
}

/** The environment of a test server; secrets included unless `withSecrets` is false. */
export function serverEnv(
  dbPath: string,
  extra: Record<string, string> = {},
  withSecrets = true,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    BUS_PORT: '0',
    BUS_DB_PATH: dbPath,
    BUS_LOG_LEVEL: 'debug',
    ...extra,
  };
  if (withSecrets) {
    env.BUS_SECRET ??= MAIN_KEY;
    env.BUS_ADMIN_SECRET ??= ADMIN_TOKEN;
    env.DASHBOARD_PASSWORD ??= DASHBOARD_PASSWORD;
  }
  return env;
}

/** Runs main.js to completion (for start-up failures). */
export function runToExit(
  env: NodeJS.ProcessEnv,
  args: string[] = [],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  ensureBuilt();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN_JS, ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.pipe(createWriteStream(testLogFile('process')));
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`main.js did not exit: ${stderr}`));
    }, 10_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts main.js and resolves once it logs the address it listens on. */
export function startProcess(env: NodeJS.ProcessEnv, cwd?: string): Promise<ServerProcess> {
  ensureBuilt();
  const child = spawn(process.execPath, [MAIN_JS], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start: ${err}`));
    }, 10_000);
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.pipe(createWriteStream(testLogFile('process')));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /"url":"(http:\/\/[^"]+)"/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1]!, stdout: () => out, stderr: () => err, exited });
      }
    });
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}: ${err}`));
    });
  });
}

/** Publishes `n` intents of `goal` at once, each answered 201; their ids. */
export async function publishMany(api: Api, goal: string, n: number): Promise<Set<string>> {
  const ids = new Set<string>();
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const r = await api('POST', '/intent', { body: { goal, payload: { i } } });
      expect(r.status).toBe(201);
      ids.add((r.json as { id: string }).id);
    }),
  );
  return ids;
}

/** Claims intents of `goal` one by one until none is left; their ids. */
export async function claimAll(api: Api, goal: string): Promise<Set<string>> {
  const ids = new Set<string>();
  for (;;) {
    const r = await api('POST', `/claim?goal=${goal}`);
    if (r.status === 204) return ids;
    expect(r.status).toBe(200);
    ids.add((r.json as { id: string }).id);
  }
}

/**
 * `serve` processes on either store: a SQLite file in a temporary folder, or a PostgreSQL
 * database of its own (made on first use). Every start runs on the same data;
 * `cleanup()` SIGKILLs the processes still running and removes the data.
 */
export function storeFixture(store: 'sqlite' | 'postgres'): {
  start(extra?: Record<string, string>): Promise<ServerProcess>;
  cleanup(): Promise<void>;
} {
  const dir = mkdtempSync(join(tmpdir(), `intent-bus-${store}-`));
  let database: Promise<TestDatabase> | null = null;
  const started: ServerProcess[] = [];
  return {
    async start(extra = {}) {
      let env: NodeJS.ProcessEnv;
      if (store === 'sqlite') env = serverEnv(join(dir, 'bus.db'), extra);
      else {
        const db = await (database ??= createDatabase('ib_proc'));
        env = serverEnv(join(dir, 'unused.db'), { BUS_DATABASE_URL: db.url, ...extra });
      }
      const p = await startProcess(env);
      started.push(p);
      return p;
    },
    async cleanup() {
      for (const p of started) if (p.child.exitCode === null) p.child.kill('SIGKILL');
      await Promise.all(started.map((p) => p.exited));
      rmSync(dir, { recursive: true, force: true });
      if (database) await (await database).drop();
    },
  };
}

/** While the store is down: publish, claim and /health answer 503 with Retry-After. */
export async function expectUnavailable(api: Api, goal: string): Promise<void> {
  for (const [method, path, body] of [
    ['POST', '/intent', { goal, payload: {} }],
    ['POST', `/claim?goal=${goal}`, undefined],
    ['GET', '/health', undefined],
  ] as const) {
    const r = await api(method, path, body === undefined ? {} : { body });
    expect(r.status, `${method} ${path}`).toBe(503);
    expect(r.headers.get('retry-after'), `${method} ${path}`).toMatch(/^\d+$/);
  }
}

/**
 * Two `serve` nodes on one PostgreSQL database of their own (their settings: `env` over
 * serverEnv's), started before the file's tests and SIGKILLed after them, the database
 * dropped: `a` and `b` call one node each, at `urls`.
 */
export function twoNodes(
  prefix: string,
  env: Record<string, string> = {},
): { a: Api; b: Api; urls: [string, string]; db: TestDatabase } {
  const held = {} as { a: Api; b: Api; urls: [string, string]; db: TestDatabase };
  let nodes: ServerProcess[] = [];
  beforeAll(async () => {
    held.db = await createDatabase(prefix);
    const all = serverEnv('/nonexistent/unused.db', { ...env, BUS_DATABASE_URL: held.db.url });
    nodes = await Promise.all([startProcess(all), startProcess(all)]);
    held.urls = [nodes[0]!.url, nodes[1]!.url];
    held.a = makeApi(held.urls[0]);
    held.b = makeApi(held.urls[1]);
  }, 60_000);
  afterAll(async () => {
    for (const n of nodes) if (n.child.exitCode === null) n.child.kill('SIGKILL');
    await held.db?.drop();
  });
  return held;
}
