/**
 * The export file of `intent-bus export` / `intent-bus import` (format "intent-bus-export",
 * version 1): UTF-8 JSON lines, one object per line, each line ended by "\n".
 *
 *   line 1       the header:  {"format":"intent-bus-export","version":1,"bus_version":"0.1.0",
 *                "protocol_version":"2.1","exported_at":"2026-11-30T10:00:00.000Z",
 *                "store":"sqlite","namespace":null}
 *   then         one record per line, `type` first and then every column of its table under
 *                the column's name, nulls included, in this order of types:
 *                  key          api_keys: key_id, key_hash (the SHA-256 the store keeps; a raw
 *                               key is never stored, so never exported), prefix, owner,
 *                               created_at, last_used_at, requests
 *                  intent       intents: every column, lease (claim_token, claim_expires_at,
 *                               claimer, worker_id), attempts, run_at, result and dead_reason
 *                               included; a dead letter is an intent with status "dead"
 *                  idempotency  idempotency: the remembered answers of publishes that carried an
 *                               Idempotency-Key
 *                  kv           kv: owner, name, value, expires_at
 *                  nonce        nonces: the signature nonces each key has spent
 *                  schedule     schedules: owner, name, the timing, the intent of its runs
 *                               (`intent`, JSON text carried as a string), overlap, catch_up,
 *                               paused, last_tick, next_at, created_at, updated_at,
 *                               deadline_seconds, on_failure (JSON text as a string),
 *                               checked_until
 *                  run_failure  schedule_failures: a run that died or missed its deadline
 *                               (owner, schedule, scheduled_for, intent_id, reason,
 *                               failed_at, alert_id): its alert is not published again
 *                  worker       workers: the fleet's registry (issue 18), with the command
 *                               an admin gave each; not in a namespace's export
 *                  flow         flow_controls: a namespace and goal's pause, max_in_flight
 *                               and rate (issue 19)
 *                  flow_claim   flow_claims: the claims inside a rate's sliding window
 *   last line    the trailer: {"type":"end","counts":{"key":1,"intent":…,"idempotency":…,
 *                "kv":…,"nonce":…,"schedule":…,"run_failure":…,"worker":…,"flow":…,"flow_claim":…}}; a file without it, with anything after
 *                it, or whose counts differ from its records is refused as truncated or
 *                damaged.
 *
 * Added since the first files, and read from files written before them: the intents columns
 * `schedule` and `scheduled_for` (absent: null), the schedule and the worker records (an
 * absent count: none); then the schedules columns `deadline_seconds`, `on_failure` (absent:
 * null) and `checked_until` (absent: 0), and the run_failure, flow and flow_claim records. A bus that predates
 * them refuses a file that has them (an unknown field or type).
 *
 * Values are the stored ones, unchanged: times are integer milliseconds since the epoch;
 * `payload`, `result`, a KV `value` and an idempotency `response` are the stored JSON text
 * carried as a JSON string, so that a number like 12345678901234567890 in a result crosses
 * byte for byte (parsing and printing it again would round it to 12345678901234567000).
 *
 * This module only turns rows into lines and lines back into checked rows; the backends
 * (sqlite.ts, postgres.ts) read and write the tables, transfer.ts drives both.
 */
import { INTENT_MEMBERS, type IntentMember } from '../../core/intent-record.js';
import { PROTOCOL_VERSION, VERSION } from '../../version.js';

export const FORMAT = 'intent-bus-export';
export const FORMAT_VERSION = 1;

/** The record types, in the order an export writes them. */
export const RECORD_TYPES = [
  'key',
  'intent',
  'idempotency',
  'kv',
  'nonce',
  'schedule',
  'run_failure',
  'worker',
  'flow',
  'flow_claim',
] as const;
/** Record types that files written before them do not count in their trailer. */
const ADDED_TYPES: ReadonlySet<string> = new Set([
  'schedule',
  'run_failure',
  'worker',
  'flow',
  'flow_claim',
]);
export type RecordType = (typeof RECORD_TYPES)[number];

/** A row under its table's column names; values as the store keeps them. */
export type Row = Record<string, string | number | null>;

export interface TransferRecord {
  type: RecordType;
  row: Row;
}

export type TransferCounts = Record<RecordType, number>;

export const zeroCounts = (): TransferCounts => ({
  key: 0,
  intent: 0,
  idempotency: 0,
  kv: 0,
  nonce: 0,
  schedule: 0,
  run_failure: 0,
  worker: 0,
  flow: 0,
  flow_claim: 0,
});

/**
 * How a column is checked on import: `id` a non-empty string; `text` any string; `int` a
 * safe integer; `time` and `count` a safe integer >= 0; `real` a finite number; `json` a
 * string holding one JSON value; an array: one of those strings. `?` allows null.
 */
type Kind =
  | 'id'
  | 'id?'
  | 'text'
  | 'text?'
  | 'int'
  | 'time'
  | 'time?'
  | 'count'
  | 'count?'
  | 'real'
  | 'real?'
  | 'json'
  | 'json?'
  | readonly string[];

export interface Column {
  name: string;
  kind: Kind;
  /** Nullable (the kind ends with `?`, or a nullable enum). */
  nullable: boolean;
  /** Added after the first files: absent from a line, it is null (or `absent`). */
  added?: boolean;
  absent?: number;
}

export interface TableSpec {
  type: RecordType;
  table: string;
  /** The primary key, by which an export pages and an import detects a collision. */
  key: readonly string[];
  columns: readonly Column[];
}

const col = (name: string, kind: Kind, nullableEnum = false): Column => ({
  name,
  kind,
  nullable: nullableEnum || (typeof kind === 'string' && kind.endsWith('?')),
});

/** An intents column as the export file carries it (core/intent-record.ts). */
function memberColumn(m: IntentMember): Column {
  const c =
    typeof m.kind === 'string'
      ? col(m.column, m.kind)
      : col(
          m.column,
          m.kind.filter((v): v is string => v !== null),
          m.kind.includes(null),
        );
  return m.added ? { ...c, added: true } : c;
}

/** Every column of every table the bus keeps, apart from schema_migrations. */
export const TABLES: Readonly<Record<RecordType, TableSpec>> = {
  key: {
    type: 'key',
    table: 'api_keys',
    key: ['key_id'],
    columns: [
      col('key_id', 'id'),
      col('key_hash', 'id'),
      col('prefix', 'text'),
      col('owner', 'text'),
      col('created_at', 'time'),
      col('last_used_at', 'time?'),
      col('requests', 'count'),
    ],
  },
  intent: {
    type: 'intent',
    table: 'intents',
    key: ['id'],
    // Every column, from the one table of the intent's members.
    columns: INTENT_MEMBERS.map(memberColumn),
  },
  idempotency: {
    type: 'idempotency',
    table: 'idempotency',
    key: ['key_id', 'idem_key'],
    columns: [
      col('key_id', 'id'),
      col('idem_key', 'id'),
      col('body_hash', 'text'),
      col('status', 'int'),
      col('response', 'json'),
      col('created_at', 'time'),
    ],
  },
  kv: {
    type: 'kv',
    table: 'kv',
    key: ['owner', 'name'],
    columns: [
      col('owner', 'id'),
      col('name', 'id'),
      col('value', 'json'),
      col('expires_at', 'time'),
    ],
  },
  nonce: {
    type: 'nonce',
    table: 'nonces',
    key: ['key_id', 'nonce'],
    columns: [col('key_id', 'id'), col('nonce', 'id'), col('expires_at', 'time')],
  },
  schedule: {
    type: 'schedule',
    table: 'schedules',
    key: ['owner', 'name'],
    columns: [
      col('owner', 'id'),
      col('name', 'id'),
      col('cron', 'text?'),
      col('every_seconds', 'count?'),
      col('timezone', 'id'),
      col('intent', 'json'),
      col('overlap', ['allow', 'skip']),
      col('catch_up', ['none', 'latest', 'all']),
      col('paused', 'count'),
      col('last_tick', 'time'),
      col('next_at', 'time?'),
      col('created_at', 'time'),
      col('updated_at', 'time'),
      { ...col('deadline_seconds', 'count?'), added: true },
      { ...col('on_failure', 'json?'), added: true },
      { ...col('checked_until', 'time'), added: true, absent: 0 },
    ],
  },
  run_failure: {
    type: 'run_failure',
    table: 'schedule_failures',
    key: ['owner', 'schedule', 'scheduled_for'],
    columns: [
      col('owner', 'id'),
      col('schedule', 'id'),
      col('scheduled_for', 'time'),
      col('intent_id', 'id'),
      col('reason', ['dead', 'missed']),
      col('failed_at', 'time'),
      col('alert_id', 'id?'),
    ],
  },
  worker: {
    type: 'worker',
    table: 'workers',
    key: ['key_id', 'worker_id'],
    columns: [
      col('key_id', 'id'),
      col('worker_id', 'id'),
      col('capabilities', 'json'),
      col('asks', 'json'),
      col('user_agent', 'text?'),
      col('address', 'text?'),
      col('first_seen', 'time'),
      col('last_seen', 'time'),
      col('fulfilled', 'count'),
      col('failed', 'count'),
      col('last_error', 'text?'),
      col('command', ['quiet', 'stop'], true),
    ],
  },
  // Flow control (core/flow.ts): the controls, and the claims inside each rate's window.
  flow: {
    type: 'flow',
    table: 'flow_controls',
    key: ['namespace', 'goal'],
    columns: [
      col('namespace', 'id'),
      col('goal', 'id'),
      col('paused', 'count'),
      col('max_in_flight', 'count?'),
      col('rate_limit', 'count?'),
      col('rate_per', 'count?'),
      col('updated_at', 'time'),
    ],
  },
  flow_claim: {
    type: 'flow_claim',
    table: 'flow_claims',
    key: ['namespace', 'goal', 'at', 'intent_id'],
    columns: [col('namespace', 'id'), col('goal', 'id'), col('at', 'time'), col('intent_id', 'id')],
  },
};

/** The column names of a table, comma-separated, in the spec's order. */
export const columnList = (spec: TableSpec): string => spec.columns.map((c) => c.name).join(', ');

/** A record's primary key as one string (for messages and duplicate checks). */
export const keyOf = (spec: TableSpec, row: Row): string =>
  spec.key.map((k) => String(row[k])).join(' / ');

export interface Header {
  format: typeof FORMAT;
  version: typeof FORMAT_VERSION;
  bus_version: string;
  protocol_version: string;
  exported_at: string;
  store: 'sqlite' | 'postgres';
  namespace: string | null;
}

export function makeHeader(
  store: 'sqlite' | 'postgres',
  namespace: string | null,
  now: Date,
): Header {
  return {
    format: FORMAT,
    version: FORMAT_VERSION,
    bus_version: VERSION,
    protocol_version: PROTOCOL_VERSION,
    exported_at: now.toISOString(),
    store,
    namespace,
  };
}

/** Per type: each column's name and the text before its value (`{"type":"intent","id":`). */
const ENCODERS = Object.fromEntries(
  RECORD_TYPES.map((t) => [
    t,
    TABLES[t].columns.map((c, i) => ({
      name: c.name,
      before: `${i === 0 ? `{"type":${JSON.stringify(t)},` : ','}${JSON.stringify(c.name)}:`,
    })),
  ]),
) as Record<RecordType, Array<{ name: string; before: string }>>;

/** One record as its line (without the "\n"): `type`, then the columns in table order. */
export function encodeRecord(record: TransferRecord): string {
  let line = '';
  for (const c of ENCODERS[record.type]) {
    line += c.before + JSON.stringify(record.row[c.name] ?? null);
  }
  return `${line}}`;
}

export const encodeTrailer = (counts: TransferCounts): string =>
  JSON.stringify({ type: 'end', counts });

/** A line of an export file that cannot be imported; nothing is written. */
export class TransferFormatError extends Error {
  constructor(
    /** 1-based; 0 when the problem is the file as a whole. */
    readonly line: number,
    message: string,
  ) {
    super(line > 0 ? `line ${line}: ${message}` : message);
    this.name = 'TransferFormatError';
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function parseLine(text: string, line: number): Record<string, unknown> {
  if (text.trim() === '') throw new TransferFormatError(line, 'empty line');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new TransferFormatError(line, `not JSON (${(err as Error).message})`);
  }
  if (!isObject(value)) throw new TransferFormatError(line, 'not a JSON object');
  return value;
}

/** Checks the first line; throws unless it is the header of a file this version reads. */
export function parseHeader(text: string | undefined): Header {
  if (text === undefined) {
    throw new TransferFormatError(0, 'the file is empty: not an intent-bus export');
  }
  const h = parseLine(text, 1);
  if (h.format !== FORMAT) {
    throw new TransferFormatError(1, `not an intent-bus export (no "format":"${FORMAT}" header)`);
  }
  if (h.version !== FORMAT_VERSION) {
    throw new TransferFormatError(
      1,
      `export format version ${JSON.stringify(h.version)}; this intent-bus reads version ${FORMAT_VERSION}`,
    );
  }
  const fields: Record<string, (v: unknown) => boolean> = {
    format: () => true,
    version: () => true,
    bus_version: (v) => typeof v === 'string',
    protocol_version: (v) => typeof v === 'string',
    exported_at: (v) => typeof v === 'string' && !Number.isNaN(Date.parse(v)),
    store: (v) => v === 'sqlite' || v === 'postgres',
    namespace: (v) => v === null || (typeof v === 'string' && v !== ''),
  };
  for (const [name, ok] of Object.entries(fields)) {
    if (!(name in h)) throw new TransferFormatError(1, `header: missing field "${name}"`);
    if (!ok(h[name])) throw new TransferFormatError(1, `header: bad value of "${name}"`);
  }
  for (const name of Object.keys(h)) {
    if (!(name in fields)) throw new TransferFormatError(1, `header: unknown field "${name}"`);
  }
  return h as unknown as Header;
}

/** Per type: the fields a line may hold. */
const NAMES = Object.fromEntries(
  RECORD_TYPES.map((t) => [t, new Set(['type', ...TABLES[t].columns.map((c) => c.name)])]),
) as Record<RecordType, Set<string>>;

export type ParsedLine =
  { kind: 'record'; record: TransferRecord } | { kind: 'end'; counts: TransferCounts };

/** Parses and checks a line after the header: a record, or the trailer. */
export function parseBodyLine(text: string, line: number): ParsedLine {
  const o = parseLine(text, line);
  const type = o.type;
  if (type === 'end') return { kind: 'end', counts: parseCounts(o, line) };
  if (typeof type !== 'string' || !(RECORD_TYPES as readonly string[]).includes(type)) {
    throw new TransferFormatError(
      line,
      type === undefined
        ? 'missing field "type"'
        : `unknown type ${JSON.stringify(type)} (expected ${RECORD_TYPES.join(', ')} or end)`,
    );
  }
  const spec = TABLES[type as RecordType];
  const names = NAMES[type as RecordType];
  const row: Row = {};
  for (const c of spec.columns) {
    if (!(c.name in o) && c.added) {
      row[c.name] = c.absent ?? null;
      continue;
    }
    if (!(c.name in o)) throw new TransferFormatError(line, `${type}: missing field "${c.name}"`);
    const problem = check(c, o[c.name]);
    if (problem) throw new TransferFormatError(line, `${type}: "${c.name}" ${problem}`);
    row[c.name] = o[c.name] as string | number | null;
  }
  for (const name in o) {
    if (!names.has(name)) throw new TransferFormatError(line, `${type}: unknown field "${name}"`);
  }
  if (type === 'intent') {
    const problem = intentProblem(row);
    if (problem) throw new TransferFormatError(line, `intent ${String(row.id)}: ${problem}`);
  }
  return { kind: 'record', record: { type: type as RecordType, row } };
}

function parseCounts(o: Record<string, unknown>, line: number): TransferCounts {
  const counts = o.counts;
  if (!isObject(counts)) throw new TransferFormatError(line, 'end: missing object "counts"');
  const out = zeroCounts();
  for (const t of RECORD_TYPES) {
    const n = counts[t];
    if (n === undefined && ADDED_TYPES.has(t)) continue;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
      throw new TransferFormatError(line, `end: "counts.${t}" must be an integer >= 0`);
    }
    out[t] = n;
  }
  for (const name of Object.keys(counts)) {
    if (!(RECORD_TYPES as readonly string[]).includes(name))
      throw new TransferFormatError(line, `end: unknown count "${name}"`);
  }
  for (const name of Object.keys(o)) {
    if (name !== 'type' && name !== 'counts')
      throw new TransferFormatError(line, `end: unknown field "${name}"`);
  }
  return out;
}

/** What is wrong with a value of a column, or null. */
function check(c: Column, v: unknown): string | null {
  if (v === null) return c.nullable ? null : 'must not be null';
  const kind = c.kind;
  if (Array.isArray(kind)) {
    return typeof v === 'string' && kind.includes(v) ? null : `must be one of ${kind.join(', ')}`;
  }
  switch ((kind as string).replace('?', '')) {
    case 'id':
      return typeof v === 'string' && v !== '' ? null : 'must be a non-empty string';
    case 'text':
      return typeof v === 'string' ? null : 'must be a string';
    case 'int':
      return Number.isSafeInteger(v) ? null : 'must be an integer';
    case 'time':
    case 'count':
      return Number.isSafeInteger(v) && (v as number) >= 0 ? null : 'must be an integer >= 0';
    case 'real':
      return typeof v === 'number' && Number.isFinite(v) ? null : 'must be a number';
    case 'json':
      if (typeof v !== 'string') return 'must be a string of JSON text';
      try {
        JSON.parse(v);
        return null;
      } catch {
        return 'must be a string of JSON text';
      }
    default:
      return `has an unknown kind ${String(kind)}`;
  }
}

/**
 * The state rules an imported intent must keep so that the bus can go on with it: a
 * claimed intent has its lease (or the sweeper could never take it back), a finished one
 * its completion time (or retention would never remove it), a dead one its reason, a
 * fulfilled one its result type.
 */
function intentProblem(r: Row): string | null {
  switch (r.status) {
    case 'claimed':
      if (r.claim_token == null || r.claim_expires_at == null || r.claimer == null)
        return 'claimed without claim_token, claim_expires_at and claimer';
      return null;
    case 'fulfilled':
      if (r.completed_at == null || r.result_type == null)
        return 'fulfilled without completed_at and result_type';
      return null;
    case 'dead':
      if (r.completed_at == null || r.dead_reason == null)
        return 'dead without completed_at and dead_reason';
      return null;
    default:
      return null;
  }
}

/** The records of a file and its trailer disagree: say how. */
export function countsProblem(seen: TransferCounts, trailer: TransferCounts): string | null {
  const diff = RECORD_TYPES.filter((t) => seen[t] !== trailer[t]);
  if (diff.length === 0) return null;
  return diff.map((t) => `${trailer[t]} ${t} records announced, ${seen[t]} found`).join('; ');
}

/**
 * A record that would overwrite a row the target store already holds (or one an earlier
 * line of the same file wrote): the import is refused and nothing is written.
 */
export class ImportConflictError extends Error {
  constructor(readonly record: TransferRecord) {
    const spec = TABLES[record.type];
    super(
      `${record.type} ${keyOf(spec, record.row)} is already in the target store ` +
        `(or twice in the file)`,
    );
    this.name = 'ImportConflictError';
  }
}

export interface ImportResult {
  /** Rows written, by type. */
  imported: TransferCounts;
  /** Idempotency records the target already held, identical: left as they were. */
  identical: number;
}

/** One store's reading and writing of records (sqlite.ts, postgres.ts). */
export interface TransferBackend {
  readonly kind: 'sqlite' | 'postgres';
  /**
   * Every record (or, with a namespace, that namespace's intents and the idempotency
   * records of their publishes) from one consistent snapshot, read in pages by primary
   * key, in the order of RECORD_TYPES.
   */
  exportRecords(namespace: string | null, pageSize?: number): AsyncGenerator<TransferRecord>;
  /**
   * Writes the records in one transaction. When a record collides with a row already
   * there (ImportConflictError), or the iterable throws (a bad line, a truncated file),
   * the transaction is rolled back: nothing was written.
   */
  importRecords(records: AsyncIterable<TransferRecord>): Promise<ImportResult>;
  close(): Promise<void>;
}

/** Whether an idempotency record says exactly what the row already in the store says. */
export const sameRow = (spec: TableSpec, a: Row, b: Row): boolean =>
  spec.columns.every((c) => a[c.name] === b[c.name]);
