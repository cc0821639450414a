/**
 * The SQLite backend: one file, one connection, one process. Its runner drives the
 * store's programs (bus-store.ts) synchronously, each inside the event-loop turn's group
 * commit, and owns what only SQLite has: the file, the group commit, error translation and
 * the migrations. It is written once over a `Connection` (connection.ts), which either
 * driver provides: node:sqlite (node-sqlite.ts) or better-sqlite3 (better-sqlite3.ts).
 */
import { closeSync, fchmodSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { BusStore } from '../bus-store.js';
import { drive, type Program, type Runner, type Step } from '../program.js';
import type { StatementName, Statements } from '../statements.js';
import { StoreUnavailableError } from '../store.js';
import {
  openConnection,
  resolveDriver,
  type Connection,
  type SqliteDriver,
  type SqliteDriverSetting,
  type Statement,
} from './connection.js';
import { makeDataFolder, unusableDbFile } from './db-file.js';
import { migrations } from './migrations/index.js';
import * as q from './queries.js';

const statements: Statements = q;

/** A prepared statement and the parameters it reads as JSON (neither driver binds arrays). */
interface Prepared {
  stmt: Statement;
  json: readonly string[];
}

/** SQLite result codes that mean "the store is in trouble", not "the request is wrong". */
const UNAVAILABLE =
  /^SQLITE_(BUSY|LOCKED|FULL|READONLY|IOERR|CANTOPEN|NOMEM|CORRUPT|NOTADB|PROTOCOL)/;

export interface SqliteStoreOptions {
  path: string;
  /** How long a statement waits for another process's write lock before failing (ms). */
  busyTimeoutMs?: number;
  /** The library that opens the file (BUS_SQLITE_DRIVER); `auto` by default (connection.ts). */
  driver?: SqliteDriverSetting;
}

export class SqliteStore extends BusStore {
  /** The library this store's connection uses. */
  readonly driver: SqliteDriver;

  constructor(options: SqliteStoreOptions) {
    const runner = new SqliteRunner(options);
    super(runner);
    this.driver = runner.driver;
  }
}

class SqliteRunner implements Runner {
  readonly kind = 'sqlite' as const;
  /** One process owns the file (serve refuses a second one). */
  readonly sharedByNodes = false;
  readonly driver: SqliteDriver;
  private readonly db: Connection;
  private readonly prepared = new Map<StatementName, Prepared>();

  constructor(options: SqliteStoreOptions) {
    const { path } = options;
    // Which library, first: a Node without either says so before any file is touched.
    this.driver = resolveDriver(options.driver ?? 'auto');
    if (path !== ':memory:') {
      // Checked before anything is touched: a file or folder that is not a database is
      // left exactly as it is (its mode too), and so is the mode of an existing database.
      const unusable = unusableDbFile(path);
      if (unusable !== null) throw new Error(unusable);
      // Only missing folders are made (mode 700); existing ones keep their mode.
      makeDataFolder(dirname(path));
      createPrivate(path);
    }
    // synchronous=NORMAL, foreign keys, the busy timeout and the page cache: openConnection,
    // the same on both drivers.
    this.db = openConnection(path, this.driver, { busyTimeoutMs: options.busyTimeoutMs ?? 250 });
    try {
      // WAL: readers never block the writer. With synchronous=NORMAL a commit survives a
      // killed process (the WAL is in the OS page cache); only a power loss can drop the
      // last commits.
      this.db.exec('PRAGMA journal_mode = WAL');
      const p = (sql: string): Statement => this.db.prepare(sql);
      this.tx = { begin: p('BEGIN IMMEDIATE'), commit: p('COMMIT'), rollback: p('ROLLBACK') };
      this.sp = {
        save: p('SAVEPOINT atomic'),
        release: p('RELEASE atomic'),
        undo: p('ROLLBACK TO atomic'),
      };
    } catch (err) {
      this.db.close();
      throw err;
    }
  }

  private statement(name: StatementName): Prepared {
    let p = this.prepared.get(name);
    if (p === undefined) {
      const sql = statements[name];
      const json = [...sql.matchAll(/json_each\(@(\w+)\)/g)].map((m) => m[1]!);
      p = { stmt: this.db.prepare(sql), json };
      this.prepared.set(name, p);
    }
    return p;
  }

  /** Answers one step of a program (program.ts). */
  private readonly exec = (step: Step): unknown => {
    // One connection writes at a time: the turn's transaction already serialises writers.
    if (step.op === 'lock') return undefined;
    const { stmt, json } = this.statement(step.name);
    let params = step.params;
    if (json.length > 0) {
      const copy: Record<string, unknown> = { ...params };
      for (const k of json) copy[k] = JSON.stringify(copy[k]);
      params = copy;
    }
    if (step.op === 'get') return stmt.get(params);
    if (step.op === 'all') return stmt.all(params);
    return stmt.run(params);
  };

  read<T>(p: Program<T>): Promise<T> {
    return this.readNow(() => drive(p, this.exec));
  }

  write<T>(p: Program<T>): Promise<T> {
    return this.inGroup(() => drive(p, this.exec));
  }

  atomic<T>(p: Program<T>): Promise<T> {
    return this.inGroup(() => this.inSavepoint(() => drive(p, this.exec)));
  }

  /** The savepoint statements of `atomic` (the turn's transaction is already open). */
  private readonly sp: { save: Statement; release: Statement; undo: Statement };

  /**
   * Runs `fn` all or nothing inside the open transaction: a failure undoes what it did and
   * leaves the rest of the batch as it was. When the failure has already ended the whole
   * transaction (a full disk, an I/O error), there is nothing left to undo.
   */
  private inSavepoint<T>(fn: () => T): T {
    this.sp.save.run();
    let out: T;
    try {
      out = fn();
    } catch (err) {
      if (this.db.inTransaction) {
        this.sp.undo.run();
        this.sp.release.run();
      }
      throw err;
    }
    this.sp.release.run();
    return out;
  }

  /**
   * Group commit: the writes of one event-loop turn share one transaction, committed when
   * the turn's I/O callbacks are done (setImmediate). A write's promise resolves only after
   * that COMMIT, so nobody is answered for a change that is not durable, and a failed
   * COMMIT fails every call of the batch (none of them happened). Each changed page goes
   * to the WAL once per batch instead of once per request.
   */
  private batch: Array<(failure?: unknown) => void> | null = null;
  private readonly tx: { begin: Statement; commit: Statement; rollback: Statement };
  /** Why this turn's BEGIN failed (another process holds the write lock, or worse). */
  private refused: unknown = null;

  /** Runs a write in this turn's transaction; settles once the transaction is committed. */
  private inGroup<T>(fn: () => T): Promise<T> {
    if (this.batch === null) {
      // Each BEGIN may wait out the busy timeout, blocking the event loop: after one has
      // failed, the other writes of the same turn fail at once.
      if (this.refused !== null) return Promise.reject(this.refused);
      try {
        // A transaction left open by a ROLLBACK that failed (see settle) goes first.
        if (this.db.inTransaction) this.tx.rollback.run();
        this.tx.begin.run();
      } catch (err) {
        const failure = translate(err);
        if (failure instanceof StoreUnavailableError) {
          this.refused = failure;
          setImmediate(() => (this.refused = null));
        }
        return Promise.reject(failure);
      }
      const batch: Array<(failure?: unknown) => void> = [];
      this.batch = batch;
      setImmediate(() => this.commit(batch));
    }
    return this.join(fn);
  }

  /**
   * Runs a read. While a batch is open the read may see its uncommitted writes, so it
   * settles with the batch.
   */
  private readNow<T>(fn: () => T): Promise<T> {
    if (this.batch !== null) return this.join(fn);
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(translate(err));
    }
  }

  private join<T>(fn: () => T): Promise<T> {
    let value: T;
    try {
      value = fn();
    } catch (err) {
      // Most errors undo one statement; some (disk full, I/O) undo the whole transaction.
      if (!this.db.inTransaction) this.settle(unavailable('transaction rolled back', err));
      return Promise.reject(translate(err));
    }
    const batch = this.batch!;
    return new Promise((resolve, reject) =>
      batch.push((failure) => (failure === undefined ? resolve(value) : reject(failure))),
    );
  }

  private commit(batch: Array<(failure?: unknown) => void>): void {
    if (this.batch !== batch) return;
    try {
      this.tx.commit.run();
      this.settle(undefined);
    } catch (err) {
      // Whatever the reason, none of the batch happened: every caller may try again.
      this.settle(unavailable('commit failed', err));
    }
  }

  /** Ends the open batch: committed (`failure` undefined) or rolled back. */
  private settle(failure: unknown): void {
    const batch = this.batch;
    this.batch = null;
    if (failure !== undefined && this.db.inTransaction) {
      try {
        this.tx.rollback.run();
      } catch {
        // The connection is in trouble; the next BEGIN will say so.
      }
    }
    for (const done of batch ?? []) done(failure);
  }

  async migrate(): Promise<void> {
    try {
      this.db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
      const applied = new Set(
        (
          this.db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]
        ).map((r) => r.version),
      );
      const record = this.db.prepare(
        'INSERT INTO schema_migrations (version, name, applied_at) VALUES (@version, @name, @at)',
      );
      for (const m of migrations) {
        if (applied.has(m.version)) continue;
        // Each migration in a transaction of its own.
        this.tx.begin.run();
        try {
          this.db.exec(m.sql);
          record.run({ version: m.version, name: m.name, at: Date.now() });
          this.tx.commit.run();
        } catch (err) {
          if (this.db.inTransaction) this.tx.rollback.run();
          throw err;
        }
      }
      this.prepareAll();
    } catch (err) {
      throw translate(err);
    }
  }

  /** Prepares every statement once, so a query the planner cannot serve fails at start. */
  private prepareAll(): void {
    for (const name of Object.keys(statements) as StatementName[]) this.statement(name);
  }

  async close(): Promise<void> {
    if (this.batch !== null) this.commit(this.batch);
    if (this.db.isOpen) this.db.close();
  }

  /** One process owns the file: nobody to exclude. */
  exclusive<T>(_name: string, _wait: boolean, task: () => Promise<T>): Promise<T | null> {
    return task();
  }
}

/** The failure of a whole batch, named by SQLite's code (for the logs: no data in it). */
function unavailable(what: string, err: unknown): StoreUnavailableError {
  const code = (err as { code?: unknown }).code;
  return new StoreUnavailableError(
    `store unavailable: ${what}${typeof code === 'string' ? ` (${code})` : ''}`,
    err,
  );
}

function translate(err: unknown): unknown {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && UNAVAILABLE.test(code)) {
    return new StoreUnavailableError(`store unavailable: ${code}`, err);
  }
  return err;
}

/**
 * Creates the database file when it does not exist yet, mode 600 from its first byte
 * (fchmod makes it exact whatever the umask). Only a file made here is given a mode: an
 * existing one, the operator's, keeps its own.
 */
function createPrivate(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw err;
  }
  try {
    fchmodSync(fd, 0o600);
  } finally {
    closeSync(fd);
  }
}
