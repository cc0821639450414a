/**
 * Both backends end their migrations at the same logical schema: the same migration
 * numbers, tables, columns (order, kind of type, NOT NULL, default), primary keys, unique
 * constraints and indexes (columns, order, uniqueness, partial predicate), read from a
 * real SQLite file and a real PostgreSQL schema (dropped at the end). A schema change made
 * on one backend only fails here.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { migrations as pgMigrations } from '../../src/store/postgres/migrations.js';
import { PgStore } from '../../src/store/postgres/pg-store.js';
import { migrations as sqliteMigrations } from '../../src/store/sqlite/migrations/index.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { PG_ADMIN_URL as URL, pgQuery } from '../pg-database.js';
import { openPeer } from './drivers.js';

const SCHEMA = `ib_schema_${process.pid}_${randomBytes(4).toString('hex')}`;
const dirs: string[] = [];

afterAll(async () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await pgQuery(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(SCHEMA)} CASCADE`);
});

interface Column {
  name: string;
  type: 'integer' | 'real' | 'text';
  notNull: boolean;
  default: string | null;
}

interface Index {
  table: string;
  columns: string[];
  unique: boolean;
  /** The WHERE of a partial index, normalised (no parentheses, casts or spaces). */
  where: string | null;
}

interface Schema {
  versions: number[];
  tables: Record<string, Column[]>;
  primaryKeys: Record<string, string[]>;
  /** Per table, the column lists of its UNIQUE constraints. */
  uniques: Record<string, string[][]>;
  /** The indexes the migrations create, by name. */
  indexes: Record<string, Index>;
}

const typeOf = (declared: string): Column['type'] => {
  const t = declared.toLowerCase();
  if (/int/.test(t)) return 'integer';
  if (/real|double|float|numeric/.test(t)) return 'real';
  if (/text|char/.test(t)) return 'text';
  throw new Error(`unknown column type ${declared}`);
};

/** A predicate as both dialects can be compared: `x IN (…)`, no casts, no parentheses. */
const normalise = (where: string): string =>
  where
    .replace(/::[a-z ]+(\[\])?/g, '')
    .replace(/(\w+) = ANY \(ARRAY\[(.*?)\]\)/g, '$1 IN ($2)')
    .replace(/[()\s]/g, '')
    .toLowerCase();

function sqliteSchema(path: string): Schema {
  const db = openPeer(path);
  try {
    const all = <R>(sql: string): R[] => db.prepare(sql).all() as R[];
    const tables = all<{ name: string }>(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' " +
        "AND name <> 'schema_migrations' ORDER BY name",
    ).map((t) => t.name);
    const schema: Schema = {
      versions: all<{ version: number }>(
        'SELECT version FROM schema_migrations ORDER BY version',
      ).map((r) => r.version),
      tables: {},
      primaryKeys: {},
      uniques: {},
      indexes: {},
    };
    for (const table of tables) {
      const info = all<{
        name: string;
        type: string;
        notnull: number;
        dflt_value: string | null;
        pk: number;
      }>(`PRAGMA table_info(${table})`);
      schema.tables[table] = info.map((c) => ({
        name: c.name,
        type: typeOf(c.type),
        // A primary key column is NOT NULL on PostgreSQL whatever it says.
        notNull: c.notnull === 1 || c.pk > 0,
        default: c.dflt_value,
      }));
      schema.primaryKeys[table] = info
        .filter((c) => c.pk > 0)
        .sort((a, b) => a.pk - b.pk)
        .map((c) => c.name);
      schema.uniques[table] = [];
      for (const ix of all<{ name: string; unique: number; origin: string }>(
        `PRAGMA index_list(${table})`,
      )) {
        const columns = all<{ name: string; desc: number; key: number }>(
          `PRAGMA index_xinfo(${ix.name})`,
        )
          .filter((c) => c.key === 1)
          .map((c) => (c.desc ? `${c.name} DESC` : c.name));
        if (ix.origin === 'u') schema.uniques[table]!.push(columns);
        if (ix.origin !== 'c') continue;
        const sql = all<{ sql: string }>(
          `SELECT sql FROM sqlite_master WHERE type = 'index' AND name = '${ix.name}'`,
        )[0]!.sql;
        const where = /\bWHERE\b([\s\S]*)$/i.exec(sql)?.[1];
        schema.indexes[ix.name] = {
          table,
          columns,
          unique: ix.unique === 1,
          where: where === undefined ? null : normalise(where),
        };
      }
    }
    return schema;
  } finally {
    db.close();
  }
}

async function pgSchema(schemaName: string): Promise<Schema> {
  const q = <R extends pg.QueryResultRow>(sql: string) => pgQuery<R>(sql, [schemaName]);
  const schema: Schema = {
    versions: (
      await pgQuery<{ version: number }>(
        `SELECT version FROM ${pg.escapeIdentifier(schemaName)}.schema_migrations ORDER BY version`,
      )
    ).map((r) => r.version),
    tables: {},
    primaryKeys: {},
    uniques: {},
    indexes: {},
  };
  const columns = await q<{
    table_name: string;
    column_name: string;
    data_type: string;
    is_nullable: string;
    column_default: string | null;
  }>(
    `SELECT table_name, column_name, data_type, is_nullable, column_default
     FROM information_schema.columns
     WHERE table_schema = $1 AND table_name <> 'schema_migrations'
     ORDER BY table_name, ordinal_position`,
  );
  for (const c of columns) {
    (schema.tables[c.table_name] ??= []).push({
      name: c.column_name,
      type: typeOf(c.data_type),
      notNull: c.is_nullable === 'NO',
      default: c.column_default?.replace(/::\w+$/, '') ?? null,
    });
  }
  const constraints = await q<{ table_name: string; kind: string; columns: string[] }>(
    `SELECT rel.relname AS table_name, con.contype AS kind,
       ARRAY(SELECT att.attname FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = k.attnum
             ORDER BY k.n)::text[] AS columns
     FROM pg_constraint con
     JOIN pg_class rel ON rel.oid = con.conrelid
     JOIN pg_namespace ns ON ns.oid = rel.relnamespace
     WHERE ns.nspname = $1 AND con.contype IN ('p', 'u') AND rel.relname <> 'schema_migrations'
     ORDER BY rel.relname, con.conname`,
  );
  for (const table of Object.keys(schema.tables)) schema.uniques[table] = [];
  for (const c of constraints) {
    if (c.kind === 'p') schema.primaryKeys[c.table_name] = c.columns;
    else schema.uniques[c.table_name]!.push(c.columns);
  }
  const indexes = await q<{
    name: string;
    table_name: string;
    unique: boolean;
    def: string;
    where: string | null;
  }>(
    `SELECT ic.relname AS name, tc.relname AS table_name, ix.indisunique AS unique,
       pg_get_indexdef(ix.indexrelid) AS def, pg_get_expr(ix.indpred, ix.indrelid) AS where
     FROM pg_index ix
     JOIN pg_class ic ON ic.oid = ix.indexrelid
     JOIN pg_class tc ON tc.oid = ix.indrelid
     JOIN pg_namespace ns ON ns.oid = tc.relnamespace
     WHERE ns.nspname = $1 AND tc.relname <> 'schema_migrations'
       AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = ix.indexrelid)`,
  );
  for (const ix of indexes) {
    const list = /USING \w+ \((.*?)\)(?: WHERE|$)/.exec(ix.def)?.[1];
    if (list === undefined) throw new Error(`cannot read the columns of ${ix.def}`);
    schema.indexes[ix.name] = {
      table: ix.table_name,
      columns: list.split(', '),
      unique: ix.unique,
      where: ix.where === null ? null : normalise(ix.where),
    };
  }
  return schema;
}

describe('the schema of both backends', () => {
  it('numbers the migrations alike', () => {
    expect(pgMigrations.map((m) => [m.version, m.name])).toEqual(
      sqliteMigrations.map((m) => [m.version, m.name]),
    );
  });

  it('ends at the same tables, columns, keys and indexes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intent-bus-schema-'));
    dirs.push(dir);
    const path = join(dir, 'bus.db');
    const sqlite = new SqliteStore({ path });
    await sqlite.migrate();
    await sqlite.close();
    const postgres = new PgStore({ connectionString: URL, schema: SCHEMA });
    try {
      await postgres.migrate();
    } finally {
      await postgres.close();
    }

    const fromSqlite = sqliteSchema(path);
    const fromPg = await pgSchema(SCHEMA);
    // Sanity: the readers saw the schema, not nothing.
    expect(Object.keys(fromSqlite.tables).sort()).toEqual([
      'api_keys',
      'flow_claims',
      'flow_controls',
      'idempotency',
      'intents',
      'kv',
      'nonces',
      'schedule_failures',
      'schedules',
      'workers',
    ]);
    expect(fromSqlite.indexes.intents_due?.where).toBe("status='open'andrun_at>created_at");
    expect(fromSqlite.versions).toEqual(sqliteMigrations.map((m) => m.version));
    expect(fromPg).toEqual(fromSqlite);
  });
});
