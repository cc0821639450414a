/**
 * `intent-bus export` and `intent-bus import` (PRODUCT.md "The CLI"): the content of the
 * store the configuration names (BUS_DB_PATH, or BUS_DATABASE_URL and BUS_DATABASE_SCHEMA)
 * as JSON lines, and back. The way to move a bus from SQLite to PostgreSQL (or back), and
 * a backup. The file is described in format.ts; what crosses and why:
 *
 * - Everything the bus keeps but its schema_migrations: intents (a dead letter is a dead
 *   intent, with its dead_reason), API keys as the store keeps them (the SHA-256 of each
 *   key, never the key), KV entries with their expiry, the idempotency records of
 *   publishes, and the signature nonces. Idempotency records cross so that a publisher
 *   retrying a publish with the same Idempotency-Key after the move gets the original
 *   answer instead of a second intent; nonces cross so that a signed request captured
 *   before the move cannot be replayed against the new store inside its window. Rows the
 *   cleanup pass would delete (expired KV entries, nonces and idempotency records) cross
 *   too: the target's cleanup deletes them as the source's would have. The main key, the
 *   admin token and the dashboard password are configuration, not data: give the target
 *   bus the same BUS_SECRET (intents published with the main key belong to "main"),
 *   BUS_ADMIN_SECRET and DASHBOARD_PASSWORD (a SQLite bus that generated them keeps them in
 *   secrets.json next to its database).
 * - Every column crosses as stored, so the target resumes where the source stopped:
 *   status, attempts, run_at (a delayed or backed-off intent stays due when it was), expiry,
 *   results (their JSON text byte for byte), errors, timestamps. A claimed intent keeps its
 *   lease (token, expiry, claimer, worker): its worker can still extend, fulfil or fail it
 *   with its token against the target; a lease that ran out during the move is swept on the
 *   target as on a restart (open again with backoff, or dead after its last attempt).
 * - `--namespace NS` exports that namespace's intents (dead letters included) and the
 *   idempotency records of their publishes. Keys, KV entries and nonces belong to keys, not
 *   to namespaces, and are left out, so that a namespace file can be imported back into the
 *   bus it came from (after `admin purge --namespace NS`) or into a bus that already has
 *   those keys.
 * - An export reads one consistent snapshot (one read transaction), page by page by
 *   primary key, and streams lines: memory stays flat on a database of millions of intents,
 *   and a bus may keep running meanwhile (it goes on after the snapshot, so stop it first
 *   when moving, or the changes made after the snapshot are left behind).
 * - An import checks every line (JSON, type, every field and its type, the state rules of
 *   an intent), writes everything in one transaction into the store after migrate(), and
 *   commits only after the trailer line has matched the records: a bad line, a truncated
 *   file or a collision leaves the target as it was. A collision is any record whose primary
 *   key (or a key's hash) the target already holds: the import refuses and names it. The
 *   one exception is an idempotency record identical to the one the target holds, which is
 *   left as it is. Import into a stopped bus: a SQLite file is locked for writing while the
 *   import runs, and a running bus hears of no imported intent until it restarts.
 */
import { existsSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { createInterface } from 'node:readline';
import type { Config } from '../../config.js';
import { openStore, sqliteDriver } from '../open.js';
import {
  TransferFormatError,
  countsProblem,
  encodeRecord,
  encodeTrailer,
  makeHeader,
  parseBodyLine,
  parseHeader,
  zeroCounts,
  type Header,
  type ImportResult,
  type TransferBackend,
  type TransferCounts,
  type TransferRecord,
} from './format.js';
import { PgTransfer } from './postgres.js';
import { SqliteTransfer } from './sqlite.js';

/** The configured store cannot be read or written (missing file, unreachable database). */
export class TransferStoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TransferStoreError';
  }
}

/** What names the store in messages: never the URL, which may carry a password. */
export const storeName = (config: Config): string =>
  config.databaseUrl != null
    ? `PostgreSQL (BUS_DATABASE_URL${config.databaseSchema != null ? `, schema ${config.databaseSchema}` : ''})`
    : `SQLite ${config.dbPath}`;

/**
 * Opens the configured store for an export or an import: prepared by migrate() as `serve`
 * prepares it (so an older schema reads like the current one), then one connection of the
 * transfer's own. An export refuses a SQLite file that does not exist rather than create it.
 */
export async function openTransfer(
  config: Config,
  purpose: 'export' | 'import',
): Promise<TransferBackend> {
  if (purpose === 'export' && config.databaseUrl == null && !existsSync(config.dbPath)) {
    throw new TransferStoreError(
      `BUS_DB_PATH: there is no SQLite database at ${config.dbPath} to export`,
    );
  }
  const store = openStore(config);
  try {
    await store.migrate();
  } catch (err) {
    throw new TransferStoreError(`cannot prepare ${storeName(config)}: ${(err as Error).message}`, {
      cause: err,
    });
  } finally {
    await store.close();
  }
  return config.databaseUrl != null
    ? new PgTransfer({ connectionString: config.databaseUrl, schema: config.databaseSchema })
    : new SqliteTransfer(config.dbPath, sqliteDriver(config));
}

export interface ExportOptions {
  /** Only this namespace's intents and their idempotency records. */
  namespace?: string | null;
  /** The header's exported_at (now by default). */
  now?: Date;
  /** Rows per page read from the store. */
  pageSize?: number;
}

/** Bytes collected before a write: few system calls, little memory. */
const CHUNK_CHARS = 1 << 20;

function write(out: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise((resolve, reject) =>
    out.write(text, (err?: Error | null) => (err ? reject(err) : resolve())),
  );
}

/** Writes the header, every record and the trailer to `out`; the counts written. */
export async function writeExport(
  backend: TransferBackend,
  out: NodeJS.WritableStream,
  options: ExportOptions = {},
): Promise<TransferCounts> {
  const namespace = options.namespace ?? null;
  const counts = zeroCounts();
  let chunk = `${JSON.stringify(makeHeader(backend.kind, namespace, options.now ?? new Date()))}\n`;
  for await (const record of backend.exportRecords(namespace, options.pageSize)) {
    chunk += `${encodeRecord(record)}\n`;
    counts[record.type]++;
    if (chunk.length >= CHUNK_CHARS) {
      await write(out, chunk);
      chunk = '';
    }
  }
  await write(out, `${chunk}${encodeTrailer(counts)}\n`);
  return counts;
}

/**
 * The records of an export file, each line checked as it is read. Throws (a
 * TransferFormatError naming the line) on the first bad line, and at the end when the
 * trailer is missing, followed by anything, or does not match the records: the consumer's
 * transaction is then rolled back.
 */
export async function* readExport(
  input: Readable,
  onHeader: (header: Header) => void = () => {},
): AsyncGenerator<TransferRecord> {
  const lines = createInterface({ input, crlfDelay: Infinity });
  const counts = zeroCounts();
  let line = 0;
  let end: { line: number; counts: TransferCounts } | null = null;
  for await (const text of lines) {
    line++;
    if (line === 1) {
      onHeader(parseHeader(text));
      continue;
    }
    if (end !== null) {
      throw new TransferFormatError(
        line,
        `a line after the trailer line (line ${end.line}): the file is damaged`,
      );
    }
    const parsed = parseBodyLine(text, line);
    if (parsed.kind === 'end') {
      end = { line, counts: parsed.counts };
      continue;
    }
    counts[parsed.record.type]++;
    yield parsed.record;
  }
  if (line === 0) parseHeader(undefined);
  if (end === null) {
    throw new TransferFormatError(
      0,
      `the file ends at line ${line} without its trailer line ({"type":"end",…}): it is truncated`,
    );
  }
  const problem = countsProblem(counts, end.counts);
  if (problem) {
    throw new TransferFormatError(
      end.line,
      `the trailer does not match the records (${problem}): the file is damaged`,
    );
  }
}

export interface ImportSummary extends ImportResult {
  header: Header;
}

/** Reads an export file into the store, all of it or (on any error) nothing. */
export async function runImport(backend: TransferBackend, input: Readable): Promise<ImportSummary> {
  let header: Header | undefined;
  const result = await backend.importRecords(readExport(input, (h) => (header = h)));
  return { ...result, header: header! };
}
