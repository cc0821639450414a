/**
 * One SQLite connection, whichever library opens it: `node:sqlite` (built into Node
 * ≥ 22.16, no native module to install) or better-sqlite3 (a native addon, an optional
 * dependency: the one driver of Node 20). Each driver is a small adapter to the same
 * `Connection` (node-sqlite.ts, better-sqlite3.ts); everything the bus does with the file
 * (the pragmas below, the group commit, savepoints, migrations, error translation) is
 * written once over it, in sqlite-store.ts and transfer/sqlite.ts.
 *
 * Which one (BUS_SQLITE_DRIVER, `auto` by default): node:sqlite where it reads every text
 * whole, Node 24 and later; better-sqlite3 on Node 20, and on Node 22, whose node:sqlite
 * reads a text holding a NUL character cut at it (`node` still chooses it there).
 *
 * The adapters make the two alike where the libraries differ:
 * - errors: both throw a `SqliteError` whose `code` names SQLite's result code
 *   (`SQLITE_BUSY`, `SQLITE_IOERR_WRITE`, `SQLITE_CONSTRAINT_PRIMARYKEY`, …), the form
 *   better-sqlite3 gives; node:sqlite's `ERR_SQLITE_ERROR` with a numeric `errcode` is
 *   mapped to it (sqliteCodeName);
 * - parameters: named (`@name`), every one the statement names must be given
 *   (undefined binds NULL), others are ignored;
 * - rows: plain objects, or undefined from `get` when there is none; `run` returns the
 *   number of rows changed;
 * - compile-time defaults that differ between the two SQLite builds (cache size, foreign
 *   keys, WAL synchronous) are set by `openConnection`, the same on both.
 *
 * Neither library is loaded before a connection asks for it: where node:sqlite is the
 * default the bus never loads better-sqlite3, whose addon (when there is one) matches only
 * the Node it was built for.
 */
import { betterSqlite3Unavailable, openBetterSqlite3 } from './better-sqlite3.js';
import type {
  Connection,
  Opener,
  OpenOptions,
  SqliteDriver,
  SqliteDriverSetting,
} from './driver.js';
import { nodeSqliteCaveat, nodeSqliteUnavailable, openNodeSqlite } from './node-sqlite.js';

export {
  SQLITE_DRIVERS,
  SqliteError,
  type Connection,
  type SqliteDriver,
  type SqliteDriverSetting,
  type Statement,
} from './driver.js';

/**
 * Why a driver cannot be used on this Node, or null when it can. Asking loads the library
 * (node:sqlite is built in; better-sqlite3 loads its addon, and it is asked only when
 * chosen, or on a Node without node:sqlite).
 */
export function driverUnavailable(driver: SqliteDriver): string | null {
  return driver === 'node' ? nodeSqliteUnavailable() : betterSqlite3Unavailable();
}

/**
 * Null, or why `auto` passes over a driver that can be used (node:sqlite of Node 22, which
 * reads a text holding a NUL character cut at it).
 */
export function driverCaveat(driver: SqliteDriver): string | null {
  return driver === 'node' ? nodeSqliteCaveat() : null;
}

/**
 * The driver a setting names on this Node. `auto`: node:sqlite where this Node has it and
 * it reads every text whole (Node 24 and later), else better-sqlite3. Throws, saying what
 * to do, when the driver named (or, for `auto`, every driver) cannot be used. A driver
 * named is used with its caveat, if any (node on Node 22: the operator's choice).
 */
export function resolveDriver(setting: SqliteDriverSetting): SqliteDriver {
  if (setting !== 'auto') {
    const why = driverUnavailable(setting);
    if (why !== null) throw new Error(why);
    return setting;
  }
  const noNode = nodeSqliteUnavailable() ?? nodeSqliteCaveat();
  if (noNode === null) return 'node';
  const noB3 = betterSqlite3Unavailable();
  if (noB3 === null) return 'better-sqlite3';
  const choose = nodeSqliteUnavailable() === null ? ' (BUS_SQLITE_DRIVER=node uses it so)' : '';
  throw new Error(`no SQLite driver: ${noNode}${choose}; and ${noB3}`);
}

/**
 * Opens `path` with `driver` and sets what the bus expects of every connection, whatever
 * the library's build defaults: the busy timeout, foreign keys on, a 16 MB page cache
 * (better-sqlite3's default; node:sqlite's build has 2 MB), synchronous=NORMAL (in WAL
 * mode a commit survives a killed process; only a power loss can drop the last commits) and
 * temporary storage in memory: the journal of each savepoint (every `atomic` operation, a
 * batch's items) held the first image of each page it changed in a temporary file, one
 * write system call per page, 45 KB a job with batches of 100.
 * The journal mode is the file's own (the store sets WAL).
 */
export function openConnection(
  path: string,
  driver: SqliteDriver,
  options: OpenOptions,
): Connection {
  const open: Opener = driver === 'node' ? openNodeSqlite : openBetterSqlite3;
  const db = open(path, options);
  try {
    db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.trunc(options.busyTimeoutMs))}`);
    db.exec('PRAGMA foreign_keys = ON');
    db.exec('PRAGMA cache_size = -16000');
    db.exec('PRAGMA synchronous = NORMAL');
    db.exec('PRAGMA temp_store = MEMORY');
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}
