/**
 * Export and import on the SQLite file (format.ts describes the records). A connection of
 * its own, opened after the store's migrate() has prepared the file.
 *
 * Export: one deferred read transaction; its first SELECT fixes the snapshot (WAL) that
 * every later page reads, so the file is consistent even while a bus in another process
 * keeps writing. Pages of `pageSize` rows by primary key, so memory stays flat.
 *
 * Import: one BEGIN IMMEDIATE … COMMIT around every record; `INSERT … ON CONFLICT DO
 * NOTHING` reports a collision as "no row changed", which refuses the whole import.
 */
import {
  openConnection,
  type Connection,
  type SqliteDriver,
  type Statement,
} from '../sqlite/connection.js';
import {
  ImportConflictError,
  RECORD_TYPES,
  TABLES,
  columnList,
  sameRow,
  zeroCounts,
  type ImportResult,
  type RecordType,
  type Row,
  type TableSpec,
  type TransferBackend,
  type TransferRecord,
} from './format.js';

/** The rows of a namespace export, by type; types not listed are left out of it. */
const NAMESPACE_FILTER: Partial<Record<RecordType, string>> = {
  flow: 'namespace = @namespace',
  flow_claim: 'namespace = @namespace',
  intent: 'namespace = @namespace',
  // Only publishes write idempotency rows; their answer names the intent's namespace.
  idempotency: "json_extract(response, '$.namespace') = @namespace",
};

export class SqliteTransfer implements TransferBackend {
  readonly kind = 'sqlite' as const;
  private readonly db: Connection;

  /** `driver`: the one the store opened the file with (SqliteStore.driver). */
  constructor(path: string, driver: SqliteDriver) {
    // The store created and migrated the file; a missing one here is an error.
    this.db = openConnection(path, driver, { busyTimeoutMs: 5000, fileMustExist: true });
    // Pages by id visit the table (and an import its indexes) in random order: a larger
    // page cache than the bus's 16 MB keeps them from being read again and again.
    this.db.exec('PRAGMA cache_size = -65536');
  }

  async *exportRecords(namespace: string | null, pageSize = 1000): AsyncGenerator<TransferRecord> {
    const db = this.db;
    db.exec('BEGIN');
    try {
      for (const type of RECORD_TYPES) {
        const filter = namespace == null ? 'TRUE' : NAMESPACE_FILTER[type];
        if (filter === undefined) continue;
        const spec = TABLES[type];
        const order = spec.key.join(', ');
        const select = `SELECT ${columnList(spec)} FROM ${spec.table} WHERE ${filter}`;
        const first = db.prepare(`${select} ORDER BY ${order} LIMIT @limit`);
        const next = db.prepare(
          `${select} AND (${order}) > (${spec.key.map((k) => `@after_${k}`).join(', ')})
           ORDER BY ${order} LIMIT @limit`,
        );
        let after: Row | null = null;
        for (;;) {
          const params: Record<string, unknown> = { limit: pageSize };
          if (namespace != null) params.namespace = namespace;
          if (after) for (const k of spec.key) params[`after_${k}`] = after[k];
          const rows = (after ? next : first).all(params) as Row[];
          for (const row of rows) yield { type, row };
          if (rows.length < pageSize) break;
          after = rows[rows.length - 1]!;
        }
      }
      db.exec('COMMIT');
    } finally {
      if (db.inTransaction) db.exec('ROLLBACK');
    }
  }

  async importRecords(records: AsyncIterable<TransferRecord>): Promise<ImportResult> {
    const db = this.db;
    const insert = new Map<RecordType, Statement>();
    for (const type of RECORD_TYPES) {
      const spec = TABLES[type];
      const values = spec.columns.map((c) => `@${c.name}`).join(', ');
      insert.set(
        type,
        db.prepare(
          `INSERT INTO ${spec.table} (${columnList(spec)}) VALUES (${values}) ON CONFLICT DO NOTHING`,
        ),
      );
    }
    const idem: TableSpec = TABLES.idempotency;
    const prior = db.prepare(
      `SELECT ${columnList(idem)} FROM idempotency WHERE key_id = @key_id AND idem_key = @idem_key`,
    );
    const result: ImportResult = { imported: zeroCounts(), identical: 0 };
    db.exec('BEGIN IMMEDIATE');
    try {
      for await (const record of records) {
        if (insert.get(record.type)!.run(record.row) === 1) {
          result.imported[record.type]++;
          continue;
        }
        if (record.type === 'idempotency') {
          const held = prior.get(record.row) as Row | undefined;
          if (held && sameRow(idem, held, record.row)) {
            result.identical++;
            continue;
          }
        }
        throw new ImportConflictError(record);
      }
      db.exec('COMMIT');
      return result;
    } finally {
      if (db.inTransaction) db.exec('ROLLBACK');
    }
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
