/**
 * What both SQLite drivers provide (connection.ts says how one is chosen and opened):
 * the `Connection` and `Statement` the store is written over, the error both throw, and
 * the helpers their adapters share.
 */
/** The libraries that can open the file. */
export const SQLITE_DRIVERS = ['node', 'better-sqlite3'] as const;
export type SqliteDriver = (typeof SQLITE_DRIVERS)[number];
/** BUS_SQLITE_DRIVER: `auto` is node:sqlite where the running Node has it, else better-sqlite3. */
export type SqliteDriverSetting = SqliteDriver | 'auto';

export interface Statement {
  /** The first row, or undefined. */
  get(params?: object): unknown;
  all(params?: object): unknown[];
  /** The number of rows inserted, changed or deleted. */
  run(params?: object): number;
}

export interface Connection {
  readonly driver: SqliteDriver;
  prepare(sql: string): Statement;
  /** Runs one or more statements that take no parameters. */
  exec(sql: string): void;
  /** Whether a transaction is open (sqlite3_get_autocommit). */
  readonly inTransaction: boolean;
  readonly isOpen: boolean;
  close(): void;
}

export interface OpenOptions {
  /** How long a statement waits for another connection's write lock (ms). */
  busyTimeoutMs: number;
  /** Refuse to create the file (an export, an import: the store has made it). */
  fileMustExist?: boolean;
}

/** What an adapter exports: opens a connection with the library's own defaults. */
export type Opener = (path: string, options: OpenOptions) => Connection;

/**
 * A SQLite error as both drivers report it: `code` is SQLite's name for the (extended)
 * result code; the library's own error is the cause.
 */
export class SqliteError extends Error {
  constructor(
    message: string,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SqliteError';
  }
}

export type RowOf = (values: unknown[]) => Record<string, unknown>;
const rowMakers = new Map<string, RowOf>();

/**
 * A function from a row's values to a plain object of `columns`, one object literal of a
 * fixed shape (V8 makes it fast); one per list of names. The names are the statement's own
 * columns, quoted as JSON strings. Both adapters read rows as arrays and make them with it:
 * better-sqlite3's own row objects are in V8's dictionary mode (slow to build and to read;
 * an intents row of 32 columns cost twice as much that way).
 */
export function rowOf(columns: string[]): RowOf {
  const key = JSON.stringify(columns);
  let make = rowMakers.get(key);
  if (make === undefined) {
    const fields = columns.map((c, i) => `${JSON.stringify(c)}: v[${i}]`).join(', ');
    make = new Function('v', `return { ${fields} };`) as RowOf;
    rowMakers.set(key, make);
  }
  return make;
}

/** A string, a quoted name or a comment of SQL (where an `@` is no parameter), or a parameter. */
const SQL_TOKENS = /'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|\/\*[\s\S]*?\*\/|@(\w+)/g;

/** The named parameters of a statement, in order of first use (`@name`, outside quotes). */
export function parameterNames(sql: string): string[] {
  return [...new Set(positionalSql(sql).names)];
}

/**
 * The statement with each `@name` written `?`, and the name of each `?` in order (a name
 * used twice is there twice): positional binding, the cheapest in node:sqlite.
 */
export function positionalSql(sql: string): { sql: string; names: string[] } {
  const names: string[] = [];
  const text = sql.replace(SQL_TOKENS, (token, name: string | undefined) => {
    if (name === undefined) return token;
    names.push(name);
    return '?';
  });
  return { sql: text, names };
}

const PRIMARY = [
  'OK',
  'ERROR',
  'INTERNAL',
  'PERM',
  'ABORT',
  'BUSY',
  'LOCKED',
  'NOMEM',
  'READONLY',
  'INTERRUPT',
  'IOERR',
  'CORRUPT',
  'NOTFOUND',
  'FULL',
  'CANTOPEN',
  'PROTOCOL',
  'EMPTY',
  'SCHEMA',
  'TOOBIG',
  'CONSTRAINT',
  'MISMATCH',
  'MISUSE',
  'NOLFS',
  'AUTH',
  'FORMAT',
  'RANGE',
  'NOTADB',
  'NOTICE',
  'WARNING',
];

/** Extended result codes (sqlite3.h): the name of `primary | (n << 8)` is EXTENDED[primary][n - 1]. */
const EXTENDED: Record<number, string[]> = {
  1: ['MISSING_COLLSEQ', 'RETRY', 'SNAPSHOT'],
  4: ['ROLLBACK'],
  5: ['RECOVERY', 'SNAPSHOT', 'TIMEOUT'],
  6: ['SHAREDCACHE', 'VTAB'],
  8: ['RECOVERY', 'CANTLOCK', 'ROLLBACK', 'DBMOVED', 'CANTINIT', 'DIRECTORY'],
  10: [
    'READ',
    'SHORT_READ',
    'WRITE',
    'FSYNC',
    'DIR_FSYNC',
    'TRUNCATE',
    'FSTAT',
    'UNLOCK',
    'RDLOCK',
    'DELETE',
    'BLOCKED',
    'NOMEM',
    'ACCESS',
    'CHECKRESERVEDLOCK',
    'LOCK',
    'CLOSE',
    'DIR_CLOSE',
    'SHMOPEN',
    'SHMSIZE',
    'SHMLOCK',
    'SHMMAP',
    'SEEK',
    'DELETE_NOENT',
    'MMAP',
    'GETTEMPPATH',
    'CONVPATH',
    'VNODE',
    'AUTH',
    'BEGIN_ATOMIC',
    'COMMIT_ATOMIC',
    'ROLLBACK_ATOMIC',
    'DATA',
    'CORRUPTFS',
    'IN_PAGE',
  ],
  11: ['VTAB', 'SEQUENCE', 'INDEX'],
  14: ['NOTEMPDIR', 'ISDIR', 'FULLPATH', 'CONVPATH', 'DIRTYWAL', 'SYMLINK'],
  19: [
    'CHECK',
    'COMMITHOOK',
    'FOREIGNKEY',
    'FUNCTION',
    'NOTNULL',
    'PRIMARYKEY',
    'TRIGGER',
    'UNIQUE',
    'VTAB',
    'ROWID',
    'PINNED',
    'DATATYPE',
  ],
  23: ['USER'],
  27: ['RECOVER_WAL', 'RECOVER_ROLLBACK'],
  28: ['AUTOINDEX'],
};

/** SQLite's name of a (possibly extended) result code: 778 → SQLITE_IOERR_WRITE. */
export function sqliteCodeName(code: number): string {
  const primary = PRIMARY[code & 0xff];
  if (primary === undefined) return `SQLITE_UNKNOWN_${code}`;
  const ext = code >> 8;
  if (ext === 0) return `SQLITE_${primary}`;
  const name = EXTENDED[code & 0xff]?.[ext - 1];
  return name === undefined ? `SQLITE_${primary}` : `SQLITE_${primary}_${name}`;
}
