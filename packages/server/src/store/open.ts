/** The store the configuration names: PostgreSQL with BUS_DATABASE_URL, else the SQLite file. */
import { ConfigError, type Config } from '../config.js';
import { PgStore } from './postgres/pg-store.js';
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
  try {
    return new SqliteStore({ path: config.dbPath });
  } catch (err) {
    throw new ConfigError('BUS_DB_PATH', `cannot open ${config.dbPath}: ${(err as Error).message}`);
  }
}
