/**
 * The PostgreSQL backend: a pool shared by the nodes of one bus. Its runner drives the
 * store's programs (bus-store.ts) on the pool, or in one pooled transaction when they must
 * be atomic, and owns what only PostgreSQL has: the pool, advisory locks, error
 * translation, the text escaping, `exclusive` and the migrations.
 */
import pg from 'pg';
import { BusStore } from '../bus-store.js';
import { driveAsync, type LockName, type Program, type Runner, type Step } from '../program.js';
import type { StatementName, Statements } from '../statements.js';
import { StoreUnavailableError } from '../store.js';
import { migrations } from './migrations.js';
import * as q from './queries.js';

const statements: Statements = q;

/**
 * SQLSTATEs that mean "the store is in trouble", not "the request is wrong": connection
 * (08), insufficient resources such as a full disk or too many connections (53), system
 * I/O (58), shutdown or not yet accepting (57P01-57P03), a cancelled or timed-out
 * statement (57014), lock trouble that a retry resolves (40001, 40P01, 55P03), a read-only
 * server (25006) and corrupted data (XX001, XX002).
 */
const UNAVAILABLE_SQLSTATE = /^(08|53|58|57P0[123]|57014|40001|40P01|55P03|25006|XX00[12])/;
/** Socket errors on the way to the server. */
const UNAVAILABLE_ERRNO = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
/** What the driver itself says when the connection is gone or cannot be had in time. */
const UNAVAILABLE_MESSAGE =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed)/;

/** Advisory lock classes (the first key of pg_advisory_xact_lock(int, int)). */
const LOCK_CLASS: Record<LockName | 'housekeeping', number> = {
  idempotency: 1,
  quota: 2,
  housekeeping: 3,
  schedule: 4,
  flow: 7,
};

/**
 * BIGINT (int8) columns hold ms timestamps and counts, far below 2^53: read them as
 * numbers. Set on the bus's own connections only (this pool, the transfer's), so that
 * other users of `pg` in the process keep strings.
 */
export const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 && format !== 'binary'
      ? Number
      : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

export interface PgStoreOptions {
  connectionString: string;
  /** The schema holding the tables (created by migrate()); the server's default otherwise. */
  schema?: string;
  /** Pool size. */
  max?: number;
}

type Queryable = pg.Pool | pg.PoolClient;

/**
 * PostgreSQL text cannot hold U+0000, which SQLite stores like any other character (a
 * goal, a KV name, an error or an owner may contain it). Every bound string is escaped and
 * every string read back unescaped: U+0000 → U+E000 '0', U+E000 → U+E000 '1'. The
 * mapping is one to one, so equality, uniqueness and hashes behave as on the raw text.
 * Whatever reads or writes the tables without PgStore must map the same way.
 */
const ESC = '\uE000';
const ESCAPED = /\uE000[01]/g;
export function escapeText(v: unknown): unknown {
  if (typeof v === 'string') {
    return v.includes('\0') || v.includes(ESC)
      ? v.replaceAll(ESC, `${ESC}1`).replaceAll('\0', `${ESC}0`)
      : v;
  }
  return Array.isArray(v) ? v.map(escapeText) : v;
}
export function unescapeRow(row: Record<string, unknown>): void {
  for (const k in row) {
    const v = row[k];
    if (typeof v === 'string' && v.includes(ESC)) {
      row[k] = v.replace(ESCAPED, (e) => (e === `${ESC}1` ? ESC : '\0'));
    }
  }
}

/**
 * `@name` parameters → `$n`, one number per name (PostgreSQL binds by position): the text
 * and the names in the order of their numbers.
 */
export function positional(sql: string): { text: string; names: string[] } {
  const names: string[] = [];
  const text = sql.replace(/@([A-Za-z_]\w*)/g, (_, name: string) => {
    let i = names.indexOf(name);
    if (i < 0) i = names.push(name) - 1;
    return `$${i + 1}`;
  });
  return { text, names };
}

/**
 * Group writes (issue 21): a step of a `write` program (each statement atomic on its own)
 * that runs one of these statements is not sent at once. It joins the event-loop turn's
 * group for that statement, sent when the turn's I/O callbacks have run (setImmediate), or
 * at once when it holds GROUP_CAP items or GROUP_BYTES of text: a group of one as the statement itself, a group of
 * several as one multi-row statement (queries.ts), so one round trip and one commit for
 * all. Each item is then handed its own answer and its program goes on. These are the
 * writes every job makes once each on its own (publish, fulfil); a claim is not grouped,
 * since each claim must take a different intent.
 */
interface GroupWrite {
  /** The step it answers (`run`: rows changed; `get`: the row or undefined). */
  op: 'run' | 'get';
  /** The multi-row statement: each parameter an array of the items' values. */
  sql: string;
  /**
   * The row an item changes, if two items may change the same one: no group holds two
   * items of one key (the second goes in the next group), and a group is sent in key
   * order, so that two groups (on any node) lock their rows in the same order.
   */
  key?: (params: Record<string, unknown>) => string;
  /** Each item's answer from the multi-row statement's result. */
  answers(result: pg.QueryResult, items: ReadonlyArray<Record<string, unknown>>): unknown[];
}

const GROUPED: Partial<Record<StatementName, GroupWrite>> = {
  // Every row or (an error) none: each item inserted its one row.
  intentInsert: { op: 'run', sql: q.intentInsertMany, answers: (_, items) => items.map(() => 1) },
  // The rows of the live tokens: by id, since no id is in a group twice.
  intentFulfill: {
    op: 'get',
    sql: q.intentFulfillMany,
    key: (params) => params.id as string,
    answers: (result, items) => {
      const rows = new Map(result.rows.map((row: Record<string, unknown>) => [row.id, row]));
      return items.map((params) => rows.get(params.id));
    },
  },
};
const GROUP_CAP = 100;
/**
 * And at most about this many bytes of bound text (payloads, results): a group of large
 * bodies is sent before it makes one statement of hundreds of megabytes.
 */
const GROUP_BYTES = 4 * 2 ** 20;

/** The text an item binds, in UTF-16 code units (about its bytes). */
function textLength(params: object): number {
  let n = 0;
  for (const v of Object.values(params)) if (typeof v === 'string') n += v.length;
  return n;
}

/** A step waiting in its group, and how to settle its promise. */
interface Waiting {
  step: Step & { op: 'run' | 'get' };
  resolve(answer: unknown): void;
  reject(err: unknown): void;
}

/** A statement as the pool prepares it: once per connection, under a name of its own. */
interface Prepared {
  name: string;
  text: string;
  names: string[];
}

export class PgStore extends BusStore {
  constructor(options: PgStoreOptions) {
    super(new PgRunner(options));
  }
}

class PgRunner implements Runner {
  readonly kind = 'postgres' as const;
  /** The nodes of one bus share the database. */
  readonly sharedByNodes = true;
  private readonly pool: pg.Pool;
  private readonly prepared = new Map<string, Prepared>();
  /** This turn's group of each grouped statement (GROUPED), not yet sent, and its text. */
  private readonly groups = new Map<StatementName, Waiting[]>();
  private readonly groupText = new WeakMap<Waiting[], number>();
  private closed = false;

  constructor(private readonly options: PgStoreOptions) {
    const { schema } = options;
    const setPath = schema == null ? null : `SET search_path TO ${pg.escapeIdentifier(schema)}`;
    this.pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.max ?? 10,
      types,
      // Waiting longer for a connection only holds the request: answer 503, let it retry.
      connectionTimeoutMillis: 5000,
      // Awaited before the connection is handed out (pool.on('connect') is not): a SET that
      // failed would otherwise let the first queries run against the default schema.
      ...(setPath && {
        onConnect: async (client: pg.ClientBase) => void (await client.query(setPath)),
      }),
    });
    // An idle connection that dies (server restart) is reported here; without a listener
    // the process would crash. The pool drops it and the next checkout connects anew.
    this.pool.on('error', () => {});
  }

  private statement(sql: string): Prepared {
    let p = this.prepared.get(sql);
    if (p === undefined) {
      p = { name: `ib_${this.prepared.size}`, ...positional(sql) };
      this.prepared.set(sql, p);
    }
    return p;
  }

  /** Runs one statement (SQL with `@name` parameters), its values taken from `params`. */
  private async query(on: Queryable, sql: string, params: object): Promise<pg.QueryResult> {
    const p = this.statement(sql);
    const bound = params as Record<string, unknown>;
    const values = p.names.map((n) => {
      const v = bound[n];
      if (v === undefined) throw new Error(`no value for @${n}`);
      return escapeText(v);
    });
    let result: pg.QueryResult;
    try {
      result = await on.query({ name: p.name, text: p.text, values });
    } catch (err) {
      throw translate(err);
    }
    for (const row of result.rows) unescapeRow(row);
    return result;
  }

  /** Answers one step of a program (program.ts). */
  private async exec(on: Queryable, step: Step): Promise<unknown> {
    if (step.op === 'lock') {
      // On the pool the lock would end with its own statement.
      if (on === this.pool) throw new Error('a lock step outside an atomic program');
      await this.query(on, q.advisoryLock, { cls: LOCK_CLASS[step.lock], key: step.key });
      return undefined;
    }
    const result = await this.query(on, statements[step.name], step.params);
    if (step.op === 'get') return result.rows[0];
    if (step.op === 'all') return result.rows;
    return result.rowCount ?? 0;
  }

  /** Each statement on its own, on the pool. */
  read<T>(p: Program<T>): Promise<T> {
    return driveAsync(p, (step) => this.exec(this.pool, step));
  }

  /** The same (each statement is atomic by itself), its grouped steps in their groups. */
  write<T>(p: Program<T>): Promise<T> {
    return driveAsync(p, (step) =>
      step.op !== 'lock' && GROUPED[step.name]?.op === step.op
        ? this.join({ ...step, op: step.op as 'run' | 'get' })
        : this.exec(this.pool, step),
    );
  }

  /** Adds a step to its statement's group; settles with its own answer once it is sent. */
  private join(step: Waiting['step']): Promise<unknown> {
    return new Promise((resolve, reject) => this.enqueue({ step, resolve, reject }));
  }

  private enqueue(w: Waiting): void {
    const { name } = w.step;
    let group = this.groups.get(name);
    if (group === undefined) {
      const fresh: Waiting[] = [];
      group = fresh;
      this.groups.set(name, fresh);
      setImmediate(() => this.flush(name, fresh));
    }
    group.push(w);
    const text = (this.groupText.get(group) ?? 0) + textLength(w.step.params);
    this.groupText.set(group, text);
    if (group.length >= GROUP_CAP || text >= GROUP_BYTES) this.flush(name, group);
  }

  /** Sends a group, unless it has gone already (full); an item whose key is taken waits. */
  private flush(name: StatementName, group: Waiting[]): void {
    if (this.groups.get(name) !== group) return;
    this.groups.delete(name);
    const form = GROUPED[name]!;
    const { key } = form;
    if (key === undefined) return void this.send(form, group);
    const keyed = group.map((w) => ({ w, key: key(w.step.params as Record<string, unknown>) }));
    const first: typeof keyed = [];
    const seen = new Set<string>();
    for (const k of keyed) {
      // A second item for the same row goes in the next group, sent after this one: the
      // statement that commits first changes the row, the other finds it changed.
      if (seen.has(k.key)) this.enqueue(k.w);
      else first.push(k);
      seen.add(k.key);
    }
    first.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    void this.send(
      form,
      first.map((k) => k.w),
    );
  }

  private async send(form: GroupWrite, group: readonly Waiting[]): Promise<void> {
    const alone = (w: Waiting): void => void this.exec(this.pool, w.step).then(w.resolve, w.reject);
    if (group.length === 1) return alone(group[0]!);
    const items = group.map((w) => w.step.params as Record<string, unknown>);
    let result: pg.QueryResult;
    try {
      const columns: Record<string, unknown[]> = {};
      for (const n of this.statement(form.sql).names) {
        columns[n] = items.map((params) => {
          if (params[n] === undefined) throw new Error(`no value for @${n}`);
          return params[n];
        });
      }
      result = await this.query(this.pool, form.sql, columns);
    } catch (err) {
      // Nothing happened (one autocommit statement): with the store unavailable each would
      // fail the same way; otherwise each runs alone, so that a bad item fails only itself.
      if (err instanceof StoreUnavailableError) for (const w of group) w.reject(err);
      else for (const w of group) alone(w);
      return;
    }
    const answers = form.answers(result, items);
    group.forEach((w, i) => w.resolve(answers[i]));
  }

  atomic<T>(p: Program<T>): Promise<T> {
    return this.tx((c) => driveAsync(p, (step) => this.exec(c, step)));
  }

  private async connect(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (err) {
      throw translate(err);
    }
  }

  /**
   * Runs `fn` in one transaction on one connection: committed when it resolves, rolled
   * back when it throws. A connection whose ROLLBACK fails is discarded, not reused.
   */
  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const out = await fn(client);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackErr) {
        broken = rollbackErr as Error;
      }
      const out = translate(err);
      // A session that failed for the store's sake (read-only, shutting down, …) may keep
      // failing: the pool gets a new one instead.
      if (out instanceof StoreUnavailableError) broken ??= out;
      throw out;
    } finally {
      client.release(broken);
    }
  }

  async migrate(): Promise<void> {
    const { schema } = this.options;
    // Two nodes starting at once: the second waits for the first and then finds its
    // migrations applied. The lock is per schema, so that separate buses never wait.
    const lockName = `intent-bus migrate ${schema ?? ''}`;
    const lock = `SELECT pg_advisory_xact_lock(hashtext($1::text))`;
    await this.tx(async (c) => {
      await c.query(lock, [lockName]);
      // CREATE SCHEMA needs the CREATE privilege on the database even when the schema
      // exists: a role given a schema of its own (and nothing more) must not be asked for it.
      if (schema != null) {
        const found = await c.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
        if (!found.rowCount)
          await c.query(`CREATE SCHEMA IF NOT EXISTS ${pg.escapeIdentifier(schema)}`);
      }
      await c.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`);
    });
    for (const m of migrations) {
      await this.tx(async (c) => {
        await c.query(lock, [lockName]);
        const done = await c.query('SELECT 1 FROM schema_migrations WHERE version = $1', [
          m.version,
        ]);
        if (done.rowCount) return;
        await c.query(m.sql);
        await c.query(
          'INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)',
          [m.version, m.name, Date.now()],
        );
      });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // What this turn has grouped goes first.
    for (const [name, group] of [...this.groups]) this.flush(name, group);
    await this.pool.end();
  }

  async exclusive<T>(name: string, wait: boolean, task: () => Promise<T>): Promise<T | null> {
    // A session lock on a connection held for the task: a node that dies mid-task loses
    // its connection, and with it the lock. Advisory locks are database-wide, so the key
    // names the schema too.
    const key = { cls: LOCK_CLASS.housekeeping, key: `${this.options.schema ?? ''}\n${name}` };
    const client = await this.connect();
    let broken: Error | undefined;
    try {
      if (wait) await this.query(client, q.sessionLock, key);
      else if ((await this.query(client, q.sessionTryLock, key)).rows[0]?.got !== true) return null;
      try {
        return await task();
      } finally {
        await this.query(client, q.sessionUnlock, key).catch((err: Error) => (broken = err));
      }
    } finally {
      client.release(broken);
    }
  }
}

function translate(err: unknown): unknown {
  if (err instanceof StoreUnavailableError) return err;
  const e = err as { code?: unknown; message?: unknown; errors?: unknown };
  const code = typeof e?.code === 'string' ? e.code : undefined;
  // A host name with several addresses fails as an AggregateError of one error per address.
  const codes = [
    code,
    ...(Array.isArray(e?.errors) ? e.errors.map((x) => (x as { code?: unknown })?.code) : []),
  ];
  if (
    (code !== undefined && /^[0-9A-Z]{5}$/.test(code) && UNAVAILABLE_SQLSTATE.test(code)) ||
    codes.some((c) => typeof c === 'string' && UNAVAILABLE_ERRNO.has(c)) ||
    (typeof e?.message === 'string' && UNAVAILABLE_MESSAGE.test(e.message))
  ) {
    return new StoreUnavailableError(`store unavailable: ${code ?? String(e.message)}`, err);
  }
  return err;
}
