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
 */
import { existsSync } from 'node:fs';
import {
  SqliteError,
  parameterNames,
  sqliteCodeName,
  type Connection,
  type OpenOptions,
  type Statement,
} from './driver.js';

/** The part of node:sqlite used here (@types/node 20 does not describe the module). */
interface NodeStatementSync {
  get(params: Record<string, unknown>): Record<string, unknown> | undefined;
  all(params: Record<string, unknown>): Record<string, unknown>[];
  run(params: Record<string, unknown>): { changes: number | bigint };
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
  }
  return loaded;
}

/** Whether a connection has `isTransaction` (an accessor of each instance, not the prototype). */
function hasIsTransaction(mod: NodeSqliteModule): boolean {
  const db = new mod.DatabaseSync(':memory:');
  try {
    return typeof db.isTransaction === 'boolean';
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

/** A copy without the null prototype, so that rows compare and print like any object. */
const plain = (row: Record<string, unknown>): Record<string, unknown> => ({ ...row });

class NodeStatement implements Statement {
  private readonly names: string[];

  constructor(
    private readonly stmt: NodeStatementSync,
    sql: string,
  ) {
    this.names = parameterNames(sql);
  }

  /** Exactly the statement's parameters: a missing one is an error, undefined is NULL. */
  private bind(params: object | undefined): Record<string, unknown> {
    const given = (params ?? {}) as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const name of this.names) {
      if (!(name in given)) throw new RangeError(`Missing named parameter "${name}"`);
      out[name] = given[name] ?? null;
    }
    return out;
  }

  get(params?: object): unknown {
    const bound = this.bind(params);
    try {
      const row = this.stmt.get(bound);
      return row === undefined ? undefined : plain(row);
    } catch (err) {
      throw normalise(err);
    }
  }

  all(params?: object): unknown[] {
    const bound = this.bind(params);
    try {
      return this.stmt.all(bound).map(plain);
    } catch (err) {
      throw normalise(err);
    }
  }

  run(params?: object): number {
    const bound = this.bind(params);
    try {
      return Number(this.stmt.run(bound).changes);
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
      return new NodeStatement(this.db.prepare(sql), sql);
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
