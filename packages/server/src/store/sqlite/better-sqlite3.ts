/**
 * The better-sqlite3 driver: a native addon, an optional dependency of the server, the
 * driver of Node 20 (which has no node:sqlite) and the choice of BUS_SQLITE_DRIVER=
 * better-sqlite3 elsewhere. It is required on first use only: its addon matches only the
 * Node it was built for, and a Node that uses node:sqlite never loads it.
 *
 * better-sqlite3 already throws errors named by SQLite's code (its SqliteError), binds
 * named parameters strictly and returns plain rows: this adapter only narrows its API to
 * the Connection of driver.ts.
 */
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import { rowOf, type Connection, type OpenOptions, type RowOf, type Statement } from './driver.js';

type Constructor = typeof BetterSqlite3;

let loaded: Constructor | string | undefined;

/** The library with its addon loaded, or why it cannot be (missing, or built for another Node). */
function load(): Constructor | string {
  if (loaded !== undefined) return loaded;
  const v = process.versions.node;
  let Database: Constructor;
  try {
    Database = createRequire(import.meta.url)('better-sqlite3') as Constructor;
  } catch (err) {
    loaded =
      (err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND'
        ? 'better-sqlite3 is not installed (npm install better-sqlite3; or run Node 22.16 or later, which has node:sqlite)'
        : `better-sqlite3 cannot be loaded: ${firstLine(err)}`;
    return loaded;
  }
  try {
    // The addon loads with the first database.
    new Database(':memory:').close();
  } catch (err) {
    const text = String((err as Error)?.message ?? err).replace(/\s+/g, ' ');
    const abi =
      /NODE_MODULE_VERSION (\d+)\. This version of Node\.js requires NODE_MODULE_VERSION (\d+)/.exec(
        text,
      );
    loaded = abi
      ? `better-sqlite3's addon was built for another Node (NODE_MODULE_VERSION ${abi[1]}; Node ${v} is ${abi[2]}): npm rebuild better-sqlite3`
      : `better-sqlite3 cannot load its addon on Node ${v} (npm rebuild better-sqlite3): ${firstLine(err)}`;
    return loaded;
  }
  loaded = Database;
  return loaded;
}

const firstLine = (err: unknown): string => String((err as Error)?.message ?? err).split('\n')[0]!;

/** Null when better-sqlite3 can be used on this Node, else why not. */
export function betterSqlite3Unavailable(): string | null {
  const lib = load();
  return typeof lib === 'string' ? lib : null;
}

class BetterStatement implements Statement {
  /** Makes a row of the statement's columns from its values (only a statement that returns rows). */
  private readonly row: RowOf | null;

  constructor(private readonly stmt: BetterSqlite3.Statement<unknown[], unknown>) {
    // Rows read as arrays and made by rowOf (driver.ts): better-sqlite3's own row objects
    // are slow to build and to read.
    this.row = stmt.reader
      ? rowOf(
          stmt
            .raw(true)
            .columns()
            .map((c) => c.name),
        )
      : null;
  }

  get(params?: object): unknown {
    const values = (params === undefined ? this.stmt.get() : this.stmt.get(params)) as
      unknown[] | undefined;
    return values === undefined || this.row === null ? values : this.row(values);
  }

  all(params?: object): unknown[] {
    const rows = (params === undefined ? this.stmt.all() : this.stmt.all(params)) as unknown[][];
    return this.row === null ? rows : rows.map(this.row);
  }

  run(params?: object): number {
    return (params === undefined ? this.stmt.run() : this.stmt.run(params)).changes;
  }
}

class BetterConnection implements Connection {
  readonly driver = 'better-sqlite3' as const;

  constructor(private readonly db: BetterSqlite3.Database) {}

  prepare(sql: string): Statement {
    return new BetterStatement(this.db.prepare(sql));
  }

  exec(sql: string): void {
    this.db.exec(sql);
  }

  get inTransaction(): boolean {
    return this.db.open && this.db.inTransaction;
  }

  get isOpen(): boolean {
    return this.db.open;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

export function openBetterSqlite3(path: string, options: OpenOptions): Connection {
  const Database = load();
  if (typeof Database === 'string') throw new Error(Database);
  return new BetterConnection(
    new Database(path, {
      timeout: options.busyTimeoutMs,
      ...(options.fileMustExist && { fileMustExist: true }),
    }),
  );
}
