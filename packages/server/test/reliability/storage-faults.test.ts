/**
 * Storage faults (issue 8): the real `serve` process under load (publishers and long-poll
 * workers, test/reliability/load.ts) while its store fails, then recovers:
 *
 * - SQLite, read-only: the data folder's filesystem refuses writes (EROFS).
 * - SQLite, disk full: the data folder's tmpfs filled by a file written until ENOSPC.
 * - SQLite, write lock: another connection holds BEGIN IMMEDIATE on the bus's file.
 * - PostgreSQL, read-only database: default_transaction_read_only on a database of the
 *   test's own, the bus's sessions terminated so that new ones start read-only.
 *
 * Each SQLite case has a tmpfs of its own (always unmounted). During each fault every
 * answer must be a success or 503 with a numeric Retry-After and the protocol's error shape
 * (all statuses are recorded), the process stays up, its log names the store trouble (and
 * carries no secret or payload), and /health answers 503 `{"ok": false, …, "reason"}` from
 * the moment it knows until the fault ends. Once the fault ends the bus must serve again by
 * itself within a few seconds; then the queue is drained and the history checker must find
 * nothing lost, fulfilled twice, stale or acknowledged-but-not-kept.
 *
 * Read-only: Linux refuses to remount a filesystem read-only while a process has files on
 * it open for writing (EBUSY), and the bus always has its database open. The test tries
 * the remount; when it is refused (always, so far), a small LD_PRELOAD library compiled
 * here (cc) makes every write to a file of that tmpfs fail with EROFS, as a filesystem
 * forced read-only does, while a flag file exists. As root, chmod injects no fault.
 *
 * The bus processes use this Node's default SQLite driver (node:sqlite from Node 22.16,
 * better-sqlite3 on Node 20: CI runs this file on both); the store-level case runs on every
 * driver this Node can load.
 *
 * STORAGE_FAULT_SECONDS sets how long each fault lasts once the bus has noticed it
 * (default 1.5).
 */
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Connection } from '../../src/store/sqlite/connection.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { StoreUnavailableError } from '../../src/store/store.js';
import { ADMIN_TOKEN, MAIN_KEY } from '../helpers.js';
import { createDatabase, pgAdmin, type TestDatabase } from '../pg-database.js';
import { serverEnv, startProcess, type ServerProcess } from '../process-helpers.js';
import { intent } from '../store/contract.js';
import { forEachDriver, openPeer } from '../store/drivers.js';
import { violations } from './history.js';
import { Load } from './load.js';

const FAULT_MS = Number(process.env.STORAGE_FAULT_SECONDS ?? 1.5) * 1000;
/** How long the bus may take to notice a fault under load (/health 503). */
const NOTICE_MS = 8000;
/** How long it may take to serve again once the fault has ended. */
const RECOVER_MS = 5000;
const LEASE_SECONDS = 2;
const TMPFS_SIZE = '16m';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** The mount points, the shim and its flag; made when the tests run (not when listed). */
let root = '';

// ---------------------------------------------------------------------------------------
// Mounts: each one is recorded before it is made, and unmounted whatever happens.

const mounted = new Set<string>();

function mountTmpfs(name: string, size = TMPFS_SIZE): string {
  const dir = join(root, name);
  mkdirSync(dir);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], {
      stdio: 'pipe',
    });
  } catch (err) {
    throw new Error(
      `this test mounts a tmpfs (root is needed): ${(err as { stderr?: Buffer }).stderr}`,
      { cause: err },
    );
  }
  mounted.add(dir);
  return dir;
}

function unmount(dir: string): void {
  if (!mounted.has(dir)) return;
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    // Still busy (a process that has not let go yet): detach it now, freed when it has.
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  }
  mounted.delete(dir);
}

// ---------------------------------------------------------------------------------------
// Every answer the clients get, by phase: fetch is wrapped for the whole file.

type Phase = 'before' | 'fault' | 'after';

interface Answer {
  phase: Phase;
  route: string;
  status: number;
  /** performance.now() when the answer came. */
  at: number;
  retryAfter: string | null;
  body: string | null;
}

let answers: Answer[] = [];
let phase: Phase = 'before';
const realFetch = globalThis.fetch;

/** `POST /fulfill/<id>` → `POST /fulfill`; the admin routes keep two segments. */
function routeOf(input: unknown, init?: RequestInit): string {
  const url = new URL(input instanceof Request ? input.url : String(input));
  const parts = url.pathname.split('/');
  const path = parts.slice(0, parts[1] === 'admin' ? 3 : 2).join('/');
  return `${init?.method ?? 'GET'} ${path}`;
}

/**
 * Publishes ask for backoff_base 1 s (the harness leaves the default, 5 s): an intent whose
 * fulfil was refused during the fault comes back when its lease expires, after 2 to 4 s
 * instead of 10 to 12, and the drain waits that much less.
 */
function withShortBackoff(route: string, init?: RequestInit): RequestInit | undefined {
  if (route !== 'POST /intent' || typeof init?.body !== 'string') return init;
  return { ...init, body: JSON.stringify({ backoff_base: 1, ...JSON.parse(init.body) }) };
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'intent-bus-faults-'));
  globalThis.fetch = async (input, init) => {
    const route = routeOf(input, init);
    const r = await realFetch(input, withShortBackoff(route, init));
    const a: Answer = {
      phase,
      route,
      status: r.status,
      at: performance.now(),
      retryAfter: r.headers.get('retry-after'),
      body: null,
    };
    if (r.status >= 300) a.body = await r.clone().text();
    answers.push(a);
    return r;
  };
});

/** What is wrong with an answer: only successes, and 503 in the protocol's shapes. */
function wrongAnswer(a: Answer): string | null {
  const ok = [200, 201, 204];
  // A fulfil may come after its lease expired during the fault: the token is stale.
  if (a.route === 'POST /fulfill') ok.push(404);
  if (ok.includes(a.status)) return null;
  const what = `${a.phase}: ${a.route} ${a.status} ${a.body}`;
  if (a.status !== 503) return what;
  if (!/^\d+$/.test(a.retryAfter ?? '')) return `${what} (Retry-After ${a.retryAfter})`;
  let body: unknown;
  try {
    body = JSON.parse(a.body ?? '');
  } catch {
    return `${what} (not JSON)`;
  }
  const b = body as Record<string, unknown>;
  if (a.route === 'GET /health') {
    const shape =
      b.ok === false &&
      typeof b.ts === 'number' &&
      typeof b.version === 'string' &&
      typeof b.reason === 'string';
    return shape ? null : `${what} (not the health shape)`;
  }
  const e = b.error as Record<string, unknown> | undefined;
  return e?.code === 'database_busy' && typeof e.message === 'string' && Object.keys(b).length === 1
    ? null
    : `${what} (not the error shape)`;
}

/** `{"GET /health 503": 12, …}` for one phase. */
function tally(p: Phase): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of answers) {
    if (a.phase !== p) continue;
    const k = `${a.route} ${a.status}`;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// The faults.

interface Fault {
  /** What the bus's log must name (the store's code). */
  code: RegExp;
  start(): void | Promise<void>;
  end(): void | Promise<void>;
  /** How it was injected, for the summary. */
  how(): string;
}

/** A file written until the filesystem has no byte left; deleting it ends the fault. */
function diskFull(dir: string): Fault {
  const file = join(dir, 'filler');
  let written = 0;
  return {
    code: /SQLITE_FULL/,
    start() {
      const fd = openSync(file, 'w');
      try {
        for (const size of [1 << 16, 512]) {
          const chunk = Buffer.alloc(size, 1);
          try {
            for (;;) written += writeSync(fd, chunk);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
          }
        }
      } finally {
        closeSync(fd);
      }
    },
    end: () => rmSync(file, { force: true }),
    how: () => `a ${Math.round(written / 1024)} KiB file filled the ${TMPFS_SIZE} tmpfs`,
  };
}

/** Another connection holds the write lock of the bus's file. */
function writeLock(dbPath: string): Fault {
  let peer: Connection | null = null;
  return {
    code: /SQLITE_BUSY/,
    start() {
      peer = openPeer(dbPath);
      peer.exec('BEGIN IMMEDIATE');
    },
    end() {
      peer?.exec('ROLLBACK');
      peer?.close();
      peer = null;
    },
    how: () => 'a connection of the test process held BEGIN IMMEDIATE',
  };
}

/**
 * An LD_PRELOAD library: while the file FAULT_FLAG exists, every write, truncation or
 * allocation on a file of device FAULT_DEV fails with EROFS.
 */
const READ_ONLY_SHIM = String.raw`
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static int refused(int fd) {
  static const char *flag;
  static unsigned long long dev;
  struct stat s;
  if (!flag) {
    const char *d = getenv("FAULT_DEV");
    flag = getenv("FAULT_FLAG");
    if (!flag || !d) return 0;
    dev = strtoull(d, NULL, 10);
  }
  if (stat(flag, &s) != 0 || fstat(fd, &s) != 0) return 0;
  if ((unsigned long long)s.st_dev != dev) return 0;
  errno = EROFS;
  return 1;
}
#define NEXT(f) static __typeof__(f) *next; if (!next) next = (__typeof__(f) *)dlsym(RTLD_NEXT, #f)
ssize_t write(int fd, const void *b, size_t n) { NEXT(write); return refused(fd) ? -1 : next(fd, b, n); }
ssize_t pwrite(int fd, const void *b, size_t n, off_t o) { NEXT(pwrite); return refused(fd) ? -1 : next(fd, b, n, o); }
ssize_t pwrite64(int fd, const void *b, size_t n, off_t o) { NEXT(pwrite64); return refused(fd) ? -1 : next(fd, b, n, o); }
ssize_t writev(int fd, const struct iovec *v, int n) { NEXT(writev); return refused(fd) ? -1 : next(fd, v, n); }
ssize_t pwritev(int fd, const struct iovec *v, int n, off_t o) { NEXT(pwritev); return refused(fd) ? -1 : next(fd, v, n, o); }
int ftruncate(int fd, off_t l) { NEXT(ftruncate); return refused(fd) ? -1 : next(fd, l); }
int ftruncate64(int fd, off_t l) { NEXT(ftruncate64); return refused(fd) ? -1 : next(fd, l); }
int fallocate(int fd, int m, off_t o, off_t l) { NEXT(fallocate); return refused(fd) ? -1 : next(fd, m, o, l); }
int posix_fallocate(int fd, off_t o, off_t l) { NEXT(posix_fallocate); return refused(fd) ? EROFS : next(fd, o, l); }
`;

function buildShim(): string {
  const src = join(root, 'read-only.c');
  const lib = join(root, 'read-only.so');
  writeFileSync(src, READ_ONLY_SHIM);
  try {
    execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', lib, src, '-ldl'], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`cannot build the read-only shim: ${(err as { stderr?: Buffer }).stderr}`, {
      cause: err,
    });
  }
  return lib;
}

/** The environment the read-only fault needs the server started with. */
function readOnlyEnv(dir: string, lib: string, flag: string): Record<string, string> {
  return { LD_PRELOAD: lib, FAULT_FLAG: flag, FAULT_DEV: String(statSync(dir).dev) };
}

/** The filesystem remounted read-only if Linux lets it, else writes refused by the shim. */
function readOnly(dir: string, flag: string): Fault {
  let remounted = false;
  return {
    code: /SQLITE_(IOERR|READONLY)/,
    start() {
      try {
        execFileSync('mount', ['-o', 'remount,ro', dir], { stdio: 'pipe' });
        remounted = true;
      } catch {
        writeFileSync(flag, '');
      }
    },
    end() {
      if (remounted) execFileSync('mount', ['-o', 'remount,rw', dir], { stdio: 'pipe' });
      rmSync(flag, { force: true });
    },
    how: () =>
      remounted
        ? 'mount -o remount,ro'
        : 'writes refused with EROFS (LD_PRELOAD; the remount was refused: EBUSY)',
  };
}

// ---------------------------------------------------------------------------------------
// One run: load, fault, recovery, drain, checks.

interface Figures {
  fault: string;
  how: string;
  requestsDuringFault: number;
  unavailableDuringFault: number;
  noticedMs: number;
  faultMs: number;
  recoveredMs: number;
  servedMs: number;
  checked: number;
  lost: number;
}
const figures: Figures[] = [];

const running = new Set<ServerProcess>();

async function stop(server: ServerProcess): Promise<void> {
  if (server.child.exitCode === null && server.child.signalCode === null) {
    server.child.kill('SIGKILL');
    await server.exited;
  }
  running.delete(server);
}

async function health(url: string): Promise<{ status: number; at: number; json: unknown }> {
  const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(5000) });
  return { status: r.status, at: performance.now(), json: await r.json() };
}

async function runFault(
  label: string,
  env: NodeJS.ProcessEnv,
  fault: (server: ServerProcess) => Fault,
): Promise<void> {
  answers = [];
  phase = 'before';
  const server = await startProcess({
    ...env,
    BUS_LOG_LEVEL: 'info',
    BUS_CLAIM_TIMEOUT_SECONDS: String(LEASE_SECONDS),
  });
  running.add(server);
  const pid = server.child.pid;
  const alive = (): boolean => server.child.exitCode === null && server.child.signalCode === null;
  const f = fault(server);
  const load = new Load({
    node: () => (alive() ? server.url : null),
    nodes: 1,
    publishers: 2,
    workers: 4,
    goal: `faults.${label.replace(/\W+/g, '_')}`,
  });
  let ended = false;
  try {
    await sleep(700);
    expect((await health(server.url)).status, 'healthy before the fault').toBe(200);
    const ackBefore = load.history.acknowledged.size;
    expect(ackBefore, 'publishes before the fault').toBeGreaterThan(0);

    // The fault: /health must turn 503 and stay 503 until it ends.
    phase = 'fault';
    const injected = performance.now();
    await f.start();
    const seen: { status: number; at: number; json: unknown }[] = [];
    let noticed: number | null = null;
    for (;;) {
      const h = await health(server.url);
      seen.push(h);
      if (h.status === 503 && noticed === null) noticed = h.at;
      if (noticed === null && h.at - injected > NOTICE_MS) break;
      if (noticed !== null && h.at - noticed > FAULT_MS) break;
      await sleep(100);
    }
    expect(noticed, `/health during the fault: ${JSON.stringify(seen)}`).not.toBeNull();
    const afterNotice = seen.filter((h) => h.at >= noticed!);
    expect(
      afterNotice.map((h) => h.status),
      '/health stays 503 while the fault lasts',
    ).toEqual(afterNotice.map(() => 503));
    expect(afterNotice[0]!.json).toMatchObject({
      ok: false,
      reason: 'store unavailable',
      version: expect.any(String),
      ts: expect.any(Number),
    });
    expect(alive(), 'alive during the fault').toBe(true);

    // The end of the fault: serves again by itself, the same process.
    await f.end();
    ended = true;
    const endedAt = performance.now();
    const faultMs = endedAt - injected;
    phase = 'after';
    let recovered: number | null = null;
    let served: number | null = null;
    while (recovered === null || served === null) {
      if (performance.now() - endedAt > RECOVER_MS) break;
      if (recovered === null) {
        const h = await health(server.url);
        if (h.status === 200) recovered = h.at;
      }
      served ??=
        answers.find((a) => a.phase === 'after' && a.route === 'POST /intent' && a.status === 201)
          ?.at ?? null;
      await sleep(50);
    }
    expect(recovered, '/health 200 again after the fault').not.toBeNull();
    expect(served, 'publishes answered 201 again after the fault').not.toBeNull();
    expect(server.child.pid).toBe(pid);
    expect(alive(), 'alive after the fault').toBe(true);

    await sleep(500); // more load after the recovery
    const verdict = await load.drain(30_000);
    expect((await health(server.url)).status).toBe(200);

    const during = answers.filter((a) => a.phase === 'fault');
    const fig: Figures = {
      fault: label,
      how: f.how(),
      requestsDuringFault: during.length,
      unavailableDuringFault: during.filter((a) => a.status === 503).length,
      noticedMs: Math.round(noticed! - injected),
      faultMs: Math.round(faultMs),
      recoveredMs: Math.round(recovered! - endedAt),
      servedMs: Math.round(served! - endedAt),
      checked: verdict.checked,
      lost: verdict.lost.length,
    };
    figures.push(fig);
    console.log(
      `${label} (${fig.how}): ${fig.requestsDuringFault} answers during the fault ` +
        `(${fig.unavailableDuringFault} × 503), noticed after ${fig.noticedMs} ms, fault ` +
        `${fig.faultMs} ms, /health 200 ${fig.recoveredMs} ms and a 201 ${fig.servedMs} ms ` +
        `after its end\n  ${JSON.stringify({ fault: tally('fault'), after: tally('after') })}\n  ` +
        load.summary(label, verdict),
    );

    // Every answer: a success, or 503 in the protocol's shape; never a 500.
    expect(answers.map(wrongAnswer).filter((w) => w !== null)).toEqual([]);
    expect(fig.unavailableDuringFault, 'clients saw 503s during the fault').toBeGreaterThan(0);
    expect(load.refusals).toEqual([]);
    expect(verdict.checked).toBeGreaterThan(ackBefore);
    expect(violations(verdict), load.detail(verdict)).toBe(0);

    // The log: the fault named (its code), the recovery, no error line, no secret, no data.
    const lines = server
      .stdout()
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as { level: number; msg: string; cause?: string });
    const warned = lines.filter((l) => l.level === 40);
    expect(warned.filter((l) => l.msg.startsWith('store degraded')).length).toBeGreaterThan(0);
    expect(lines.some((l) => l.level === 30 && l.msg.startsWith('store recovered'))).toBe(true);
    // The requests refused with 503 (the first PostgreSQL error may be 57P01, the
    // terminated session, before a new one says 25006).
    const refused = warned.filter((l) => l.msg === 'store unavailable');
    expect(refused.length, 'a warn line per refused request').toBeGreaterThan(0);
    expect(
      refused.some((l) => f.code.test(JSON.stringify(l))),
      'the code named',
    ).toBe(true);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    for (const secret of [MAIN_KEY, ADMIN_TOKEN, '"seq"', 'payload']) {
      expect(server.stdout()).not.toContain(secret);
    }
  } finally {
    if (!ended) await Promise.resolve(f.end()).catch(() => undefined);
    await stop(server);
  }
}

// ---------------------------------------------------------------------------------------

describe('storage faults', () => {
  let database: TestDatabase | null = null;

  afterAll(async () => {
    globalThis.fetch = realFetch;
    for (const server of [...running]) await stop(server);
    for (const dir of [...mounted]) unmount(dir);
    if (root) rmSync(root, { recursive: true, force: true });
    await database?.drop();
    if (figures.length > 0) console.log(JSON.stringify(figures));
  });

  const sqliteCase = (
    name: string,
    fault: (dir: string, dbPath: string) => { env?: Record<string, string>; fault: Fault },
  ) =>
    it(`SQLite, ${name}: 503 with Retry-After, /health degraded, recovery by itself, nothing lost`, async () => {
      const dir = mountTmpfs(name.replace(/\W+/g, '-'));
      try {
        const dbPath = join(dir, 'bus.db');
        const made = fault(dir, dbPath);
        await runFault(`SQLite ${name}`, serverEnv(dbPath, made.env), () => made.fault);
      } finally {
        unmount(dir);
      }
    }, 40_000);

  sqliteCase('read-only filesystem', (dir) => {
    const flag = join(root, `read-only-${process.pid}.flag`);
    return { env: readOnlyEnv(dir, buildShim(), flag), fault: readOnly(dir, flag) };
  });
  sqliteCase('disk full', (dir) => ({ fault: diskFull(dir) }));
  sqliteCase('write lock held by another connection', (_dir, dbPath) => ({
    fault: writeLock(dbPath),
  }));

  it('PostgreSQL, read-only database: 503, /health degraded, recovery by itself, nothing lost', async () => {
    database = await createDatabase('ib_faults');
    const name = new URL(database.url).pathname.slice(1);
    await runFault(
      'PostgreSQL read-only database',
      serverEnv('/nonexistent/unused.db', { BUS_DATABASE_URL: database.url }),
      () => ({
        code: /25006/,
        async start() {
          await pgAdmin(`ALTER DATABASE ${name} SET default_transaction_read_only = on`);
          await pgAdmin(
            `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${name}'`,
          );
        },
        end: () => pgAdmin(`ALTER DATABASE ${name} RESET default_transaction_read_only`),
        how: () => 'default_transaction_read_only = on, its sessions terminated',
      }),
    );
  }, 40_000);

  // On each driver of this Node (the processes above run the Node's default one).
  forEachDriver('the SQLite store', (driver) => {
    it('a batch that hits a full disk fails every call, nothing half-applied, the same connection goes on', async () => {
      const dir = mountTmpfs(`store-level-${driver}`, '4m');
      try {
        const store = new SqliteStore({ path: join(dir, 'bus.db'), driver });
        try {
          await store.migrate();
          const kept = intent();
          await store.intentPublish(kept, null, null);
          const full = diskFull(dir);
          full.start();
          // One turn: the calls share one transaction, which cannot be committed.
          const batch = Array.from({ length: 20 }, () =>
            intent({ payload: JSON.stringify({ pad: 'x'.repeat(2000) }) }),
          );
          const settled = await Promise.race([
            Promise.allSettled(batch.map((i) => store.intentPublish(i, null, null))),
            sleep(5000).then(() => 'unsettled' as const),
          ]);
          expect(settled).not.toBe('unsettled');
          const results = settled as PromiseSettledResult<unknown>[];
          for (const r of results) {
            expect(r.status).toBe('rejected');
            expect((r as PromiseRejectedResult).reason).toBeInstanceOf(StoreUnavailableError);
          }
          expect(((results[0] as PromiseRejectedResult).reason as Error).message).toMatch(
            /SQLITE_FULL/,
          );
          // Reads go on during the fault.
          expect(await store.intentGet(kept.id)).toMatchObject({ id: kept.id });
          full.end();
          // The same connection writes again; none of the failed batch is there.
          const after = intent();
          await store.intentPublish(after, null, null);
          expect(await store.intentGet(after.id)).toMatchObject({ id: after.id });
          for (const i of batch) expect(await store.intentGet(i.id)).toBeNull();
        } finally {
          await store.close();
        }
      } finally {
        unmount(dir);
      }
    });
  });
});
