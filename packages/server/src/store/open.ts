/** The store the configuration names: PostgreSQL with BUS_DATABASE_URL, else the SQLite file. */
import { ConfigError, type Config } from '../config.js';
import { PgStore } from './postgres/pg-store.js';
import { resolveDriver, type SqliteDriver, type SqliteDriverSetting } from './sqlite/connection.js';
import { SqliteStore } from './sqlite/sqlite-store.js';
import type { Store } from './store.js';

export function openStore(config: Config): Store {
  // The pool connects on first use: an unreachable database is reported by migrate().
  if (config.databaseUrl != null) {
    return new PgStore({
      connectionString: config.databaseUrl,
      ...(config.databaseSchema != null && { schema: config.databaseSchema }),
    });
  }
  const driver = sqliteDriver(config);
  try {
    return new SqliteStore({ path: config.dbPath, driver });
  } catch (err) {
    throw new ConfigError('BUS_DB_PATH', `cannot open ${config.dbPath}: ${(err as Error).message}`);
  }
}

/**
 * The library that opens the SQLite file (BUS_SQLITE_DRIVER; `auto`: node:sqlite where
 * this Node has it, else better-sqlite3), or a ConfigError saying why none can.
 */
export function sqliteDriver(config: Config): SqliteDriver {
  try {
    // resolveConfig has checked it is one of the settings.
    return resolveDriver(config.sqliteDriver as SqliteDriverSetting);
  } catch (err) {
    throw new ConfigError('BUS_SQLITE_DRIVER', (err as Error).message);
  }
}
