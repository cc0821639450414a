/**
 * Export and import on PostgreSQL (format.ts describes the records). One connection of its
 * own, in the configured schema, opened after the store's migrate() has prepared it.
 *
 * Export: one REPEATABLE READ, READ ONLY transaction, so every page reads the snapshot of
 * its first statement while the bus's nodes keep writing; pages of `pageSize` rows by
 * primary key, so memory stays flat.
 *
 * Import: one transaction around every record. Records go in batches of one table (at most
 * BATCH_ROWS rows or BATCH_CHARS characters) as `INSERT … SELECT * FROM unnest(arrays) ON
 * CONFLICT DO NOTHING RETURNING key`; a record whose key does not come back collided with a
 * row already there, which refuses the whole import.
 *
 * Text crosses through PgStore's mapping of U+0000 (which PostgreSQL text cannot hold):
 * bound values are escaped and rows read are unescaped, so a record carries the text SQLite
 * would hold and the rows written read back through PgStore unchanged.
 */
import pg from 'pg';
import { escapeText, types, unescapeRow } from '../postgres/pg-store.js';
import {
  ImportConflictError,
  RECORD_TYPES,
  TABLES,
  columnList,
  sameRow,
  zeroCounts,
  type Column,
  type ImportResult,
  type RecordType,
  type Row,
  type TransferBackend,
  type TransferRecord,
} from './format.js';

const BATCH_ROWS = 1000;
const BATCH_CHARS = 8 * 1024 * 1024;

/** The rows of a namespace export, by type ($1 is the namespace); others are left out. */
const NAMESPACE_FILTER: Partial<Record<RecordType, string>> = {
  flow: 'namespace = $1',
  flow_claim: 'namespace = $1',
  intent: 'namespace = $1',
  // Only publishes write idempotency rows; their answer names the intent's namespace.
  idempotency: "(response::json ->> 'namespace') = $1",
};

/** The array type a column travels in through unnest(). */
function arrayType(c: Column): string {
  if (Array.isArray(c.kind)) return 'text[]';
  switch ((c.kind as string).replace('?', '')) {
    case 'int':
    case 'time':
    case 'count':
      return 'int8[]';
    case 'real':
      return 'float8[]';
    default:
      return 'text[]';
  }
}

/** One statement, its values escaped and its rows unescaped as PgStore.run does. */
async function query(c: pg.Client, text: string, values: unknown[]): Promise<Row[]> {
  const { rows } = await c.query<Row>(text, values.map(escapeText));
  for (const row of rows) unescapeRow(row);
  return rows;
}

export interface PgTransferOptions {
  connectionString: string;
  schema?: string | null;
}

export class PgTransfer implements TransferBackend {
  readonly kind = 'postgres' as const;
  private readonly client: pg.Client;
  private connected: Promise<pg.Client> | null = null;

  constructor(private readonly options: PgTransferOptions) {
    this.client = new pg.Client({
      connectionString: options.connectionString,
      types,
      connectionTimeoutMillis: 10_000,
    });
    // A connection lost while idle is reported by the next query; without a listener the
    // 'error' event would end the process.
    this.client.on('error', () => {});
  }

  private open(): Promise<pg.Client> {
    this.connected ??= (async () => {
      await this.client.connect();
      const { schema } = this.options;
      if (schema != null) {
        await this.client.query(`SET search_path TO ${pg.escapeIdentifier(schema)}`);
      }
      return this.client;
    })();
    return this.connected;
  }

  async *exportRecords(namespace: string | null, pageSize = 1000): AsyncGenerator<TransferRecord> {
    const c = await this.open();
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    let finished = false;
    try {
      for (const type of RECORD_TYPES) {
        const filter = namespace == null ? 'TRUE' : NAMESPACE_FILTER[type];
        if (filter === undefined) continue;
        const spec = TABLES[type];
        const order = spec.key.join(', ');
        const base = namespace == null ? [] : [namespace];
        const n = base.length;
        const select = `SELECT ${columnList(spec)} FROM ${spec.table} WHERE ${filter}`;
        const first = `${select} ORDER BY ${order} LIMIT $${n + 1}`;
        const next = `${select} AND (${order}) > (${spec.key.map((_, i) => `$${n + 1 + i}`).join(', ')})
          ORDER BY ${order} LIMIT $${n + 1 + spec.key.length}`;
        let after: Row | null = null;
        for (;;) {
          const values: unknown[] = after
            ? [...base, ...spec.key.map((k) => after![k]), pageSize]
            : [...base, pageSize];
          const rows = await query(c, after ? next : first, values);
          for (const row of rows) yield { type, row };
          if (rows.length < pageSize) break;
          after = rows[rows.length - 1]!;
        }
      }
      await c.query('COMMIT');
      finished = true;
    } finally {
      if (!finished) await c.query('ROLLBACK').catch(() => {});
    }
  }

  async importRecords(records: AsyncIterable<TransferRecord>): Promise<ImportResult> {
    const c = await this.open();
    const result: ImportResult = { imported: zeroCounts(), identical: 0 };
    let batch: TransferRecord[] = [];
    let chars = 0;
    // One batch in flight: the next one is read and checked while the server writes it.
    let inFlight: Promise<void> = Promise.resolve();
    const flush = async (): Promise<void> => {
      await inFlight;
      if (batch.length === 0) return;
      const records = batch;
      batch = [];
      chars = 0;
      inFlight = this.insertBatch(c, records, result);
      // Awaited by the next flush (or the last one); marked handled until then.
      inFlight.catch(() => {});
    };
    await c.query('BEGIN');
    let committed = false;
    try {
      for await (const record of records) {
        if (
          batch.length > 0 &&
          (batch[0]!.type !== record.type || batch.length >= BATCH_ROWS || chars >= BATCH_CHARS)
        ) {
          await flush();
        }
        batch.push(record);
        for (const v of Object.values(record.row)) if (typeof v === 'string') chars += v.length;
      }
      await flush();
      await inFlight;
      await c.query('COMMIT');
      committed = true;
      return result;
    } finally {
      if (!committed) {
        await inFlight.catch(() => {});
        await c.query('ROLLBACK').catch(() => {});
      }
    }
  }

  /** Inserts records of one type; throws ImportConflictError on the first that collides. */
  private async insertBatch(
    c: pg.Client,
    records: TransferRecord[],
    result: ImportResult,
  ): Promise<void> {
    const type = records[0]!.type;
    const spec = TABLES[type];
    const arrays = spec.columns.map((col, i) => `$${i + 1}::${arrayType(col)}`).join(', ');
    const sql = `INSERT INTO ${spec.table} (${columnList(spec)})
      SELECT * FROM unnest(${arrays}) ON CONFLICT DO NOTHING RETURNING ${spec.key.join(', ')}`;
    const values = spec.columns.map((col) => records.map((r) => r.row[col.name] ?? null));
    const rows = await query(c, sql, values);
    const keyText = (row: Row): string => spec.key.map((k) => String(row[k])).join('\u0000');
    const inserted = new Map<string, number>();
    for (const row of rows) inserted.set(keyText(row), (inserted.get(keyText(row)) ?? 0) + 1);
    for (const record of records) {
      const k = keyText(record.row);
      const left = inserted.get(k) ?? 0;
      if (left > 0) {
        inserted.set(k, left - 1);
        result.imported[type]++;
        continue;
      }
      if (type === 'idempotency') {
        const [held] = await query(
          c,
          `SELECT ${columnList(spec)} FROM idempotency WHERE key_id = $1 AND idem_key = $2`,
          [record.row.key_id, record.row.idem_key],
        );
        if (held && sameRow(spec, held, record.row)) {
          result.identical++;
          continue;
        }
      }
      throw new ImportConflictError(record);
    }
  }

  async close(): Promise<void> {
    if (this.connected === null) return;
    this.connected = null;
    await this.client.end().catch(() => {});
  }
}
