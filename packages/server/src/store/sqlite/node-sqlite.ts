/**
 * The `node:sqlite` driver: SQLite as built into Node (`DatabaseSync`), no native module
 * and nothing to build. It needs Node 22.16 or later (23.11 on the odd line): the module
 * is unflagged from 22.13, and `isTransaction`, which the group commit reads after a
 * failed statement, came in 22.16. The module is loaded on first use only.
 *
 * What this adapter evens out (driver.ts): errors carry SQLite's code name, not
 * `ERR_SQLITE_ERROR` and a number; a statement is bound exactly the parameters it names
 * (node:sqlite would refuse an extra key and bind NULL for a missing one, and refuses
 * undefined); rows are plain objects (node:sqlite's have no prototype).
 *
 * For speed, the adapter binds by position (each `@name` becomes `?`, its values in
 * order) and reads rows as arrays, turned into objects by a function made once per
 * statement for its columns: half the time of node:sqlite's own objects (3.0 → 1.5 µs for
 * a row of 28 columns), which a copy to give them a prototype would have doubled again.
 */
import { existsSync } from 'node:fs';
import {
  SqliteError,
  positionalSql,
  rowOf,
  sqliteCodeName,
  type Connection,
  type OpenOptions,
  type RowOf,
  type Statement,
} from './driver.js';

/** The part of node:sqlite used here (@types/node 20 does not describe the module). */
interface NodeStatementSync {
  /** Arrays of values with setReturnArrays(true). */
  get(...values: unknown[]): unknown[] | undefined;
  all(...values: unknown[]): unknown[][];
  run(...values: unknown[]): { changes: number | bigint };
  setReturnArrays(enabled: boolean): void;
  columns(): { name: string }[];
}
interface NodeDatabaseSync {
  prepare(sql: string): NodeStatementSync;
  exec(sql: string): void;
  close(): void;
  readonly isOpen: boolean;
  readonly isTransaction: boolean;
}
interface NodeSqliteModule {
  DatabaseSync: new (
    path: string,
    options?: { enableForeignKeyConstraints?: boolean; enableDoubleQuotedStringLiterals?: boolean },
  ) => NodeDatabaseSync;
}

let loaded: NodeSqliteModule | string | undefined;

/**
 * node:sqlite, or why this Node cannot give it. Node 22 warns that the module is
 * experimental when it loads (24 no longer does): that one warning is not passed on, as
 * it would otherwise be printed at every start of the bus, which is tested on it.
 */
function load(): NodeSqliteModule | string {
  if (loaded !== undefined) return loaded;
  const emit = process.emitWarning;
  process.emitWarning = function (this: unknown, warning: string | Error, ...rest: unknown[]) {
    const text = typeof warning === 'string' ? warning : warning.message;
    if (/^SQLite is an experimental feature/.test(text)) return;
    return (emit as (...a: unknown[]) => void).call(process, warning, ...rest);
  } as typeof process.emitWarning;
  let mod: NodeSqliteModule | undefined;
  try {
    mod = process.getBuiltinModule?.('node:sqlite') as NodeSqliteModule | undefined;
  } catch {
    mod = undefined;
  } finally {
    process.emitWarning = emit;
  }
  const v = process.versions.node;
  if (mod?.DatabaseSync === undefined) {
    loaded = `node:sqlite needs Node 22.16 or later (this is Node ${v})`;
  } else if (!hasIsTransaction(mod)) {
    loaded = `node:sqlite needs Node 22.16 or later, for isTransaction (this is Node ${v})`;
  } else {
    loaded = mod;
    cutsAtNul = readsTextCutAtNul(mod);
  }
  return loaded;
}

/** Whether this Node's node:sqlite reads text holding a NUL character cut at it. */
let cutsAtNul = false;

/**
 * Node 22's node:sqlite (up to 22.23 at least) reads a TEXT value as a C string: a NUL
 * character inside it ends it ('a\0b' is read 'a'). Binding is right, so the file holds
 * the whole text, but what the bus reads back is not what it wrote (and an export paging
 * by such a key would never end). Node 24 reads it whole.
 */
function readsTextCutAtNul(mod: NodeSqliteModule): boolean {
  const db = new mod.DatabaseSync(':memory:');
  try {
    const stmt = db.prepare("SELECT CAST(x'610062' AS TEXT)");
    stmt.setReturnArrays(true);
    return (stmt.get()?.[0] as string).length !== 3;
  } finally {
    db.close();
  }
}

/**
 * Null, or why node:sqlite, usable here, is not the default (BUS_SQLITE_DRIVER=node still
 * chooses it): on Node 22 it reads a text holding a NUL character cut at it.
 */
export function nodeSqliteCaveat(): string | null {
  if (typeof load() === 'string' || !cutsAtNul) return null;
  return `node:sqlite of Node ${process.versions.node} reads text holding a NUL character cut at it (Node 24 reads it whole)`;
}

/**
 * Whether node:sqlite has what the adapter uses, all of it from Node 22.16: `isTransaction`
 * (an accessor of each connection, not of the prototype), a statement's `columns()` and
 * `setReturnArrays()`.
 */
function hasIsTransaction(mod: NodeSqliteModule): boolean {
  const db = new mod.DatabaseSync(':memory:');
  try {
    const stmt = db.prepare('SELECT 1');
    return (
      typeof db.isTransaction === 'boolean' &&
      typeof stmt.columns === 'function' &&
      typeof stmt.setReturnArrays === 'function'
    );
  } finally {
    db.close();
  }
}

/** Null when node:sqlite can be used on this Node, else why not. */
export function nodeSqliteUnavailable(): string | null {
  const mod = load();
  return typeof mod === 'string' ? mod : null;
}

/** node:sqlite's error as the bus's SqliteError (SQLite's code name); others as they are. */
function normalise(err: unknown): unknown {
  const e = err as { code?: unknown; errcode?: unknown; message?: unknown };
  if (e?.code === 'ERR_SQLITE_ERROR' && typeof e.errcode === 'number') {
    return new SqliteError(String(e.message), sqliteCodeName(e.errcode), { cause: err });
  }
  return err;
}

class NodeStatement implements Statement {
  private readonly stmt: NodeStatementSync;
  /** The parameter of each `?`, in order. */
  private readonly names: string[];
  private readonly row: RowOf;

  constructor(db: NodeDatabaseSync, sql: string) {
    const positional = positionalSql(sql);
    this.stmt = db.prepare(positional.sql);
    this.names = positional.names;
    this.stmt.setReturnArrays(true);
    this.row = rowOf(this.stmt.columns().map((c) => c.name));
  }

  /** Exactly the statement's parameters: a missing one is an error, undefined is NULL. */
  private values(params: object | undefined): unknown[] {
    const given = (params ?? {}) as Record<string, unknown>;
    const names = this.names;
    const out = new Array<unknown>(names.length);
    for (let i = 0; i < names.length; i++) {
      const v = given[names[i]!];
      if (v === undefined && !(names[i]! in given)) {
        throw new RangeError(`Missing named parameter "${names[i]}"`);
      }
      out[i] = v ?? null;
    }
    return out;
  }

  get(params?: object): unknown {
    const values = this.values(params);
    let row: unknown[] | undefined;
    try {
      row = this.stmt.get(...values);
    } catch (err) {
      throw normalise(err);
    }
    return row === undefined ? undefined : this.row(row);
  }

  all(params?: object): unknown[] {
    const values = this.values(params);
    let rows: unknown[][];
    try {
      rows = this.stmt.all(...values);
    } catch (err) {
      throw normalise(err);
    }
    return rows.map(this.row);
  }

  run(params?: object): number {
    const values = this.values(params);
    try {
      return Number(this.stmt.run(...values).changes);
    } catch (err) {
      throw normalise(err);
    }
  }
}

class NodeConnection implements Connection {
  readonly driver = 'node' as const;

  constructor(private readonly db: NodeDatabaseSync) {}

  prepare(sql: string): Statement {
    try {
      return new NodeStatement(this.db, sql);
    } catch (err) {
      throw normalise(err);
    }
  }

  exec(sql: string): void {
    try {
      this.db.exec(sql);
    } catch (err) {
      throw normalise(err);
    }
  }

  get inTransaction(): boolean {
    return this.db.isOpen && this.db.isTransaction;
  }

  get isOpen(): boolean {
    return this.db.isOpen;
  }

  close(): void {
    if (this.db.isOpen) this.db.close();
  }
}

export function openNodeSqlite(path: string, options: OpenOptions): Connection {
  const mod = load();
  if (typeof mod === 'string') throw new Error(mod);
  if (options.fileMustExist && path !== ':memory:' && !existsSync(path)) {
    throw new SqliteError(
      `unable to open database file: ${path} does not exist`,
      'SQLITE_CANTOPEN',
    );
  }
  try {
    // Foreign keys are set by openConnection (PRAGMA), as on better-sqlite3; double-quoted
    // strings are identifiers only, as better-sqlite3 is built (SQLITE_DQS=0).
    return new NodeConnection(
      new mod.DatabaseSync(path, {
        enableForeignKeyConstraints: true,
        enableDoubleQuotedStringLiterals: false,
      }),
    );
  } catch (err) {
    throw normalise(err);
  }
}
