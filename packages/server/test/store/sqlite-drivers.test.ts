/**
 * The two SQLite drivers (store/sqlite/connection.ts): which one `auto` picks and what it
 * loads, the same SQLite error codes from both, and one file handed from one driver to
 * the other (while the first still has it open, after a clean close, and after a killed
 * process left its WAL). The store contract runs on each driver in sqlite.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ConfigError, resolveConfig } from '../../src/config.js';
import { openStore } from '../../src/store/open.js';
import { parameterNames, sqliteCodeName } from '../../src/store/sqlite/driver.js';
import { migrations } from '../../src/store/sqlite/migrations/index.js';
import * as queries from '../../src/store/sqlite/queries.js';
import {
  driverCaveat,
  resolveDriver,
  type SqliteError,
  type Connection,
  type SqliteDriver,
} from '../../src/store/sqlite/connection.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { StoreUnavailableError, type Store } from '../../src/store/store.js';
import { intent } from './contract.js';
import { DEFAULT, DRIVERS, forEachDriver, openPeer, withBothDrivers } from './drivers.js';

const DIST = fileURLToPath(new URL('../../dist/', import.meta.url));
const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
/** node:sqlite with isTransaction: 22.16+, 23.11+, 24+. */
const NODE_HAS_SQLITE =
  major >= 24 || (major === 23 && minor >= 11) || (major === 22 && minor >= 16);
/** Node 22's node:sqlite reads a text holding a NUL cut at it; Node 24's reads it whole. */
const NODE_READS_TEXT_WHOLE = NODE_HAS_SQLITE && major >= 24;
const B3 = DRIVERS.find((d) => d.driver === 'better-sqlite3')!;

const dirs: string[] = [];
const tempPath = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'intent-bus-drivers-'));
  dirs.push(dir);
  return join(dir, 'bus.db');
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const opened: Array<Store | Connection> = [];
afterEach(async () => {
  for (const o of opened.splice(0).reverse()) await o.close();
});
function track<T extends Store | Connection>(o: T): T {
  opened.push(o);
  return o;
}

/** Runs `source` (an ES module) in a child of this Node, with the built server in reach. */
function child(source: string): {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
} {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', source], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}
const distUrl = (rel: string): string => pathToFileURL(join(DIST, rel)).href;

describe('choosing the SQLite driver', () => {
  const here = 'driver' in DEFAULT ? DEFAULT.driver : 'none';
  it(`auto is node:sqlite from Node 24 on, else better-sqlite3 (here: ${here})`, () => {
    expect(DRIVERS.find((d) => d.driver === 'node')!.unavailable === null).toBe(NODE_HAS_SQLITE);
    expect(driverCaveat('node') !== null).toBe(NODE_HAS_SQLITE && !NODE_READS_TEXT_WHOLE);
    if (NODE_READS_TEXT_WHOLE) expect(resolveDriver('auto')).toBe('node');
    else if (B3.unavailable === null) expect(resolveDriver('auto')).toBe('better-sqlite3');
    else expect(() => resolveDriver('auto')).toThrow(/^no SQLite driver: .*; and better-sqlite3/);
    expect(resolveConfig({}).sqliteDriver).toBe('auto');
    expect(() => resolveConfig({ BUS_SQLITE_DRIVER: 'sqlite4' })).toThrow(/^BUS_SQLITE_DRIVER:/);
  });

  const missing = DRIVERS.find((d) => d.unavailable !== null);
  const refuses = 'refuses a driver this Node cannot use, naming BUS_SQLITE_DRIVER and why';
  if (missing !== undefined) {
    it(`${refuses} (${missing.driver})`, () => {
      expect(() => resolveDriver(missing.driver)).toThrow(missing.unavailable!);
      const config = resolveConfig({ BUS_DB_PATH: tempPath(), BUS_SQLITE_DRIVER: missing.driver });
      let err: unknown;
      try {
        openStore(config);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe('BUS_SQLITE_DRIVER');
      expect((err as Error).message).toContain(missing.unavailable!);
      // Refused before anything was made.
      expect(existsSync(config.dbPath)).toBe(false);
    });
  } else {
    it.skip(`${refuses}: not run on Node ${process.versions.node}, where both drivers load`, () => {});
  }

  const addonTitle =
    'on auto, loads no native addon where node:sqlite is the default, and better-sqlite3 only where it is not';
  (here === 'none' ? it.skip : it)(
    here === 'none' ? `${addonTitle}: not run: ${(DEFAULT as { none: string }).none}` : addonTitle,
    () => {
      const path = tempPath();
      const r = child(`
      import { resolveConfig } from ${JSON.stringify(distUrl('config.js'))};
      import { openStore } from ${JSON.stringify(distUrl('store/open.js'))};
      const store = openStore(resolveConfig({ BUS_DB_PATH: ${JSON.stringify(path)} }));
      await store.migrate();
      await store.kvSet('o', 'k', '1', Date.now() + 60000);
      await store.close();
      const addons = process.report.getReport().sharedObjects.filter((p) => p.endsWith('.node'));
      process.stdout.write(JSON.stringify({ driver: store.driver, addons }));
    `);
      expect(r.status, r.stderr).toBe(0);
      // No warning either (Node 22 calls node:sqlite experimental; the bus does not repeat it).
      expect(r.stderr).toBe('');
      const out = JSON.parse(r.stdout) as { driver: SqliteDriver; addons: string[] };
      if (NODE_READS_TEXT_WHOLE) {
        expect(out).toEqual({ driver: 'node', addons: [] });
      } else {
        expect(out.driver).toBe('better-sqlite3');
        expect(out.addons).toEqual([expect.stringMatching(/better_sqlite3\.node$/)]);
      }
    },
  );
});

forEachDriver('text holding a NUL character', (driver) => {
  const caveat = driverCaveat(driver);
  it(
    caveat === null
      ? 'comes back whole'
      : `is read cut at the NUL, which is why auto does not choose it: ${caveat}`,
    async () => {
      const store = track(new SqliteStore({ path: tempPath(), driver }));
      await store.migrate();
      await store.kvSet('o', 'a\u0000b', '"x\u0000y"', Date.now() + 60_000);
      const read = await store.kvGet('o', 'a\u0000b', Date.now());
      // Found by its whole name (binding is right on every driver); its value as read:
      expect(read).toBe(caveat === null ? '"x\u0000y"' : '"x');
    },
  );
});

describe('SQLite result codes', () => {
  it('names extended codes as better-sqlite3 does', () => {
    expect(sqliteCodeName(5)).toBe('SQLITE_BUSY');
    expect(sqliteCodeName(517)).toBe('SQLITE_BUSY_SNAPSHOT');
    expect(sqliteCodeName(13)).toBe('SQLITE_FULL');
    expect(sqliteCodeName(8)).toBe('SQLITE_READONLY');
    expect(sqliteCodeName(1032)).toBe('SQLITE_READONLY_DBMOVED');
    expect(sqliteCodeName(778)).toBe('SQLITE_IOERR_WRITE');
    expect(sqliteCodeName(3338)).toBe('SQLITE_IOERR_ACCESS');
    expect(sqliteCodeName(8714)).toBe('SQLITE_IOERR_IN_PAGE');
    expect(sqliteCodeName(1555)).toBe('SQLITE_CONSTRAINT_PRIMARYKEY');
    expect(sqliteCodeName(2067)).toBe('SQLITE_CONSTRAINT_UNIQUE');
    expect(sqliteCodeName(26)).toBe('SQLITE_NOTADB');
    expect(sqliteCodeName(14 | (99 << 8))).toBe('SQLITE_CANTOPEN');
  });

  it('reads the named parameters of a statement, not what is quoted', () => {
    expect(parameterNames(`SELECT @a, @b, @a, '@no', "@neither" FROM t WHERE x = @c_1`)).toEqual([
      'a',
      'b',
      'c_1',
    ]);
  });
});

forEachDriver('SQLite errors', (driver) => {
  it('come with the same codes from either driver', () => {
    const db = track(openPeer(tempPath(), driver));
    db.exec(`CREATE TABLE p (id TEXT PRIMARY KEY, u TEXT UNIQUE, n TEXT NOT NULL CHECK (n <> 'x'));
      CREATE TABLE c (p TEXT REFERENCES p (id))`);
    const insert = db.prepare('INSERT INTO p (id, u, n) VALUES (@id, @u, @n)');
    expect(insert.run({ id: 'a', u: 'a', n: 'a' })).toBe(1);
    const codeOf = (fn: () => unknown): string => {
      try {
        fn();
      } catch (err) {
        expect(err).toBeInstanceOf(Error);
        return (err as SqliteError).code;
      }
      return 'no error';
    };
    expect(codeOf(() => insert.run({ id: 'a', u: 'b', n: 'a' }))).toBe(
      'SQLITE_CONSTRAINT_PRIMARYKEY',
    );
    expect(codeOf(() => insert.run({ id: 'b', u: 'a', n: 'a' }))).toBe('SQLITE_CONSTRAINT_UNIQUE');
    expect(codeOf(() => insert.run({ id: 'b', u: 'b', n: null }))).toBe(
      'SQLITE_CONSTRAINT_NOTNULL',
    );
    expect(codeOf(() => insert.run({ id: 'b', u: 'b', n: 'x' }))).toBe('SQLITE_CONSTRAINT_CHECK');
    expect(codeOf(() => db.exec(`INSERT INTO c VALUES ('nobody')`))).toBe(
      'SQLITE_CONSTRAINT_FOREIGNKEY',
    );
    expect(codeOf(() => db.prepare('SELECT nothing FROM nowhere'))).toBe('SQLITE_ERROR');
    // Every parameter a statement names must be given; undefined binds NULL, extras are ignored.
    expect(() => insert.run({ id: 'c', u: 'c' })).toThrow(/Missing named parameter "n"/);
    expect(db.prepare('SELECT @v AS v').get({ v: undefined, extra: 1 })).toEqual({ v: null });
    const row = db.prepare('SELECT id, u FROM p').get() as object;
    expect(Object.getPrototypeOf(row)).toBe(Object.prototype);
    expect(db.prepare('SELECT id FROM p WHERE id = @id').get({ id: 'none' })).toBeUndefined();
  });

  it('a write lock held by another connection: StoreUnavailableError naming SQLITE_BUSY, then writes again', async () => {
    const path = tempPath();
    const store = track(new SqliteStore({ path, driver, busyTimeoutMs: 50 }));
    await store.migrate();
    const peer = track(openPeer(path, driver));
    peer.exec('BEGIN IMMEDIATE');
    const failed = store.intentPublish(intent(), null, null);
    await expect(failed).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(failed).rejects.toThrow(/SQLITE_BUSY/);
    // Reads go on (WAL).
    expect(await store.intentsCount()).toEqual([]);
    peer.exec('ROLLBACK');
    // The other writes of the turn whose BEGIN failed fail at once; the next turn writes.
    await new Promise((r) => setImmediate(r));
    const later = intent();
    await expect(store.intentPublish(later, null, null)).resolves.toMatchObject({
      kind: 'created',
    });
    expect(peer.prepare('SELECT id FROM intents').all()).toEqual([{ id: later.id }]);
  });

  it('a constraint broken by a statement is not a storage fault: the error passes as it is', async () => {
    const store = track(new SqliteStore({ path: tempPath(), driver }));
    await store.migrate();
    const i = intent();
    await store.intentPublish(i, null, null);
    const again = store.intentPublish(i, null, null);
    await expect(again).rejects.toMatchObject({ code: 'SQLITE_CONSTRAINT_PRIMARYKEY' });
    await expect(again).rejects.not.toBeInstanceOf(StoreUnavailableError);
  });
});

/**
 * The statements SQLite prepares again at every call, whatever the driver: `LIMIT @n`
 * (SQLite plans with the value). Housekeeping and admin lists, none a worker's request.
 */
const PREPARED_AGAIN = [
  'deadListAll',
  'deadListNamespace',
  'flowRecent',
  'idempotencyDeleteBefore',
  'intentHeldGoal',
  'intentsDeleteFinished',
  'intentsDueAfter',
  'intentsExpire',
  'intentsList',
  'intentsPurgeAll',
  'intentsPurgeNamespace',
  'kvDeleteExpired',
  'leasesExpired',
  'noncesDeleteExpired',
  'openRoutes',
  'runFailuresDeleteBefore',
  'runsDeadUnrecorded',
  'scheduleRuns',
  'scheduleRunsBetween',
  'schedulesAll',
  'schedulesDue',
  'workersDeleteSeenBefore',
  'workersOfKey',
];
/**
 * Prepared again for another reason: a bound value that SQLite's planner folds into the
 * plan (`@goal IS NULL OR …`, `max(@now, …)`; `workersOfKey`: not yet explained), which it
 * re-plans when the value is bound.
 */
const PLANNED_BY_VALUE = new Set(['flowRecent', 'intentHeldGoal', 'workersOfKey']);

describe('the statements on node:sqlite', () => {
  /** node:sqlite's own connection, with the authorizer of Node 24 (called at each prepare). */
  interface Raw {
    exec(sql: string): void;
    prepare(sql: string): { all(p: object): unknown[] };
    setAuthorizer?(cb: () => number): void;
    close(): void;
  }
  const mod = process.getBuiltinModule?.('node:sqlite') as
    { DatabaseSync: new (path: string) => Raw; constants: { SQLITE_OK: number } } | undefined;
  const probe = mod && new mod.DatabaseSync(':memory:');
  const hasAuthorizer = typeof probe?.setAuthorizer === 'function';
  probe?.close();
  const title = 'are not prepared again at each call, but those with LIMIT @n';
  const run = hasAuthorizer ? it : it.skip;
  run(
    hasAuthorizer
      ? title
      : `${title}: not run on Node ${process.versions.node}, which has no DatabaseSync.setAuthorizer (Node 24 has)`,
    () => {
      const db = new mod!.DatabaseSync(tempPath());
      try {
        for (const m of migrations) db.exec(m.sql);
        // The authorizer is asked about every table and column as a statement is prepared,
        // and again when SQLite prepares it anew.
        let asked = 0;
        db.setAuthorizer!(() => (asked++, mod!.constants.SQLITE_OK));
        db.exec('BEGIN');
        const again: string[] = [];
        for (const [name, sql] of Object.entries(queries) as [string, string][]) {
          const params: Record<string, unknown> = {};
          for (const p of parameterNames(sql))
            params[p] = sql.includes(`json_each(@${p})`) ? '[]' : 1;
          const stmt = db.prepare(sql);
          const call = (): void => {
            try {
              stmt.all(params);
            } catch {
              // A constraint of the dummy values: the statement ran.
            }
          };
          call();
          asked = 0;
          call();
          call();
          if (asked > 0) again.push(name);
        }
        db.exec('ROLLBACK');
        expect(again.sort()).toEqual(PREPARED_AGAIN);
        for (const name of again)
          if (!PLANNED_BY_VALUE.has(name))
            expect(queries[name as keyof typeof queries]).toMatch(/LIMIT @/);
      } finally {
        db.close();
      }
    },
  );
});

forEachDriver('the claim statements', (driver) => {
  it('search the partial index of their variant', () => {
    const path = tempPath();
    const db = track(openPeer(path, driver));
    for (const m of migrations) db.exec(m.sql);
    const params = {
      token: 't',
      claimExpiresAt: 1,
      keyId: 'k',
      workerId: null,
      namespace: 'default',
      goal: 'g',
      publisher: 'p',
      now: 1,
      caps: '[]',
    };
    const plan = (sql: string): string =>
      (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(params) as { detail: string }[])
        .map((r) => r.detail)
        .join(' | ');
    expect(plan(queries.intentClaim)).toMatch(
      /SEARCH intents USING INDEX intents_claim_any \(namespace=\?\)/,
    );
    expect(plan(queries.intentClaimGoal)).toMatch(
      /SEARCH intents USING INDEX intents_claim_by_goal \(namespace=\? AND goal=\?\)/,
    );
    expect(plan(queries.intentClaimPublisher)).toMatch(
      /USING INDEX intents_claim_any \(namespace=\?\)/,
    );
    expect(plan(queries.intentClaimGoalPublisher)).toMatch(
      /USING INDEX intents_claim_by_goal \(namespace=\? AND goal=\?\)/,
    );
    for (const sql of [queries.intentClaim, queries.intentClaimGoal]) {
      expect(plan(sql)).not.toMatch(/TEMP B-TREE/);
    }
  });
});

/** What one store wrote, read back by another (the fields a move could change). */
async function expectSame(store: Store, ids: string[]): Promise<void> {
  for (const id of ids) {
    const row = await store.intentGet(id);
    expect(row, id).toMatchObject({ id, payload: '{"n":12345678901234567890}', backoffBase: 1.5 });
  }
}

withBothDrivers('one SQLite file, both drivers', () => {
  const pairs: Array<[SqliteDriver, SqliteDriver]> = [
    ['better-sqlite3', 'node'],
    ['node', 'better-sqlite3'],
  ];

  for (const [from, to] of pairs) {
    it(`moves from ${from} to ${to} and back: the same rows, the same migrations, writable`, async () => {
      const path = tempPath();
      const a = new SqliteStore({ path, driver: from });
      await a.migrate();
      const first = intent({ payload: '{"n":12345678901234567890}', backoffBase: 1.5 });
      await a.intentPublish(first, null, null);
      await a.kvSet('o', 'k', '{"v":0.1000000000000000000001}', Date.now() + 60_000);
      await a.close();

      const b = track(new SqliteStore({ path, driver: to }));
      await b.migrate();
      await expectSame(b, [first.id]);
      expect(await b.kvGet('o', 'k', Date.now())).toBe('{"v":0.1000000000000000000001}');
      const second = intent({ payload: '{"n":12345678901234567890}', backoffBase: 1.5 });
      await b.intentPublish(second, null, null);
      await b.close();
      opened.pop();

      const c = track(new SqliteStore({ path, driver: from }));
      await c.migrate();
      await expectSame(c, [first.id, second.id]);
      const peer = track(openPeer(path, from));
      expect(peer.prepare('SELECT COUNT(*) AS n FROM schema_migrations').get()).toEqual({
        n: (peer.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number })
          .v,
      });
      expect(peer.prepare('PRAGMA journal_mode').get()).toEqual({ journal_mode: 'wal' });
    });

    it(`${to} reads what ${from} committed while ${from} still holds the file (its WAL), and back`, async () => {
      const path = tempPath();
      const a = track(new SqliteStore({ path, driver: from }));
      await a.migrate();
      const one = intent({ payload: '{"n":12345678901234567890}', backoffBase: 1.5 });
      await a.intentPublish(one, null, null);
      const b = track(new SqliteStore({ path, driver: to }));
      await b.migrate();
      await expectSame(b, [one.id]);
      const two = intent({ payload: '{"n":12345678901234567890}', backoffBase: 1.5 });
      await b.intentPublish(two, null, null);
      await expectSame(a, [one.id, two.id]);
    });

    it(`${to} finds every commit of a ${from} process that was killed (its WAL left behind)`, () => {
      const path = tempPath();
      const intents = Array.from({ length: 50 }, () =>
        intent({ payload: '{"n":12345678901234567890}', backoffBase: 1.5 }),
      );
      const ids = intents.map((i) => i.id);
      const r = child(`
        import { SqliteStore } from ${JSON.stringify(distUrl('store/sqlite/sqlite-store.js'))};
        const store = new SqliteStore({ path: ${JSON.stringify(path)}, driver: ${JSON.stringify(from)} });
        await store.migrate();
        for (const i of ${JSON.stringify(intents)}) await store.intentPublish(i, null, null);
        process.kill(process.pid, 'SIGKILL');
      `);
      expect(r.signal, r.stderr).toBe('SIGKILL');
      expect(existsSync(`${path}-wal`)).toBe(true);
      const peer = track(openPeer(path, to));
      const found = (peer.prepare('SELECT id FROM intents').all() as { id: string }[]).map(
        (x) => x.id,
      );
      expect(found.sort()).toEqual([...ids].sort());
    });
  }
});
