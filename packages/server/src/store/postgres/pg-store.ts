import pg from 'pg';
import type { ResultType } from '@intent-bus/protocol';
import type { Random } from '../../core/clock.js';
import {
  REASON_CANCELLED,
  REASON_EXPIRED,
  REASON_LEASE_EXPIRED,
  releasedColumns,
} from '../../core/lifecycle.js';
import type { NewIntent } from '../../core/validate.js';
import {
  DELETE_BATCH,
  StoreUnavailableError,
  mergeMinuteCounts,
  openRow,
  type ApiKeyRow,
  type ClaimRequest,
  type IdempotencyInput,
  type IntentRow,
  type IntentListFilter,
  type KeyUsage,
  type ListCursor,
  type MinuteCounts,
  type StatusCount,
  type PublishOutcome,
  type Store,
  type TokenRef,
} from '../store.js';
import { migrations } from './migrations.js';
import * as q from './queries.js';

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
const LOCK_IDEMPOTENCY = 1;
const LOCK_QUOTA = 2;
const LOCK_HOUSEKEEPING = 3;

/**
 * BIGINT (int8) columns hold ms timestamps and counts, far below 2^53: read them as
 * numbers. Set on this pool only, so that other users of `pg` in the process keep strings.
 */
const types: pg.CustomTypesConfig = {
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

export class PgStore implements Store {
  readonly kind = 'postgres' as const;
  private readonly pool: pg.Pool;
  private readonly names = new Map<string, string>();
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

  /** Runs one statement, prepared once per connection under a name of its own. */
  private async run<R extends pg.QueryResultRow>(
    on: Queryable,
    text: string,
    values: unknown[] = [],
  ): Promise<pg.QueryResult<R>> {
    let name = this.names.get(text);
    if (name === undefined) {
      name = `ib_${this.names.size}`;
      this.names.set(text, name);
    }
    let result: pg.QueryResult<R>;
    try {
      result = await on.query<R>({ name, text, values: values.map(escapeText) });
    } catch (err) {
      throw translate(err);
    }
    for (const row of result.rows) unescapeRow(row);
    return result;
  }

  private async rows<R extends pg.QueryResultRow>(
    on: Queryable,
    text: string,
    values: unknown[] = [],
  ): Promise<R[]> {
    return (await this.run<R>(on, text, values)).rows;
  }

  private async row<R extends pg.QueryResultRow>(
    on: Queryable,
    text: string,
    values: unknown[] = [],
  ): Promise<R | null> {
    return (await this.run<R>(on, text, values)).rows[0] ?? null;
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

  async ping(): Promise<void> {
    await this.run(this.pool, q.ping);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  async exclusive<T>(name: string, wait: boolean, task: () => Promise<T>): Promise<T | null> {
    // A session lock on a connection held for the task: a node that dies mid-task loses
    // its connection, and with it the lock. Advisory locks are database-wide, so the key
    // names the schema too.
    const key = [LOCK_HOUSEKEEPING, `${this.options.schema ?? ''}\n${name}`];
    const client = await this.connect();
    let broken: Error | undefined;
    try {
      if (wait) await this.run(client, q.sessionLock, key);
      else if (!(await this.row<{ got: boolean }>(client, q.sessionTryLock, key))?.got) return null;
      try {
        return await task();
      } finally {
        await this.run(client, q.sessionUnlock, key).catch((err: Error) => (broken = err));
      }
    } finally {
      client.release(broken);
    }
  }

  async intentPublish(
    intent: NewIntent,
    idem: IdempotencyInput | null,
    maxOpen: number | null,
  ): Promise<PublishOutcome> {
    const insert = [
      intent.id,
      intent.namespace,
      intent.goal,
      intent.payload,
      intent.publisher,
      intent.visibility,
      intent.priority,
      intent.runAt,
      intent.createdAt,
      intent.expiresAt,
      intent.maxAttempts,
      intent.backoffBase,
      intent.ttl,
      intent.targetWorker,
      intent.requiredCapability,
    ];
    // Nothing to check first (the main key, no Idempotency-Key): the INSERT is atomic on
    // its own, without a transaction around it.
    if (!idem && maxOpen == null) {
      await this.run(this.pool, q.intentInsert, insert);
      return { kind: 'created', row: openRow(intent) };
    }
    return this.tx(async (c): Promise<PublishOutcome> => {
      // Read committed lets two publishes both pass a check before either inserts: the
      // advisory locks make the same idempotency key, and the same publisher's quota, wait
      // for one another. Always idempotency first, then quota, so two never deadlock.
      if (idem) {
        await this.run(c, q.advisoryLock, [LOCK_IDEMPOTENCY, `${idem.keyId}\n${idem.key}`]);
        const prior = await this.row<{
          bodyHash: string;
          status: number;
          response: string;
          createdAt: number;
        }>(c, q.idempotencyGet, [idem.keyId, idem.key]);
        if (prior && prior.createdAt >= idem.notBefore) {
          if (prior.bodyHash !== idem.bodyHash) return { kind: 'conflict' };
          return { kind: 'replay', status: prior.status, body: prior.response };
        }
      }
      if (maxOpen != null) {
        await this.run(c, q.advisoryLock, [LOCK_QUOTA, intent.publisher]);
        const { n } = (await this.row<{ n: number }>(c, q.intentsLiveOfPublisher, [
          intent.publisher,
        ]))!;
        if (n >= maxOpen) return { kind: 'limit_exceeded', open: n };
      }
      await this.run(c, q.intentInsert, insert);
      const row = openRow(intent);
      if (idem) {
        await this.run(c, q.idempotencyPut, [
          idem.keyId,
          idem.key,
          idem.bodyHash,
          201,
          JSON.stringify({ id: row.id, status: 'published', namespace: row.namespace }),
          intent.createdAt,
        ]);
      }
      return { kind: 'created', row };
    });
  }

  async intentClaim(req: ClaimRequest): Promise<IntentRow | null> {
    const values: unknown[] = [
      req.now,
      req.token,
      req.now + req.leaseMs,
      req.keyId,
      req.workerId,
      req.namespace,
      req.capabilities,
    ];
    if (req.goal != null) values.push(req.goal);
    if (req.publisher != null) values.push(req.publisher);
    return this.row<IntentRow>(
      this.pool,
      q.intentClaim(req.goal != null, req.publisher != null),
      values,
    );
  }

  async intentUnclaim(id: string, token: string): Promise<IntentRow | null> {
    return this.row<IntentRow>(this.pool, q.intentUnclaim, [id, token]);
  }

  async intentExtend(ref: TokenRef, claimExpiresAt: number): Promise<IntentRow | null> {
    return this.row<IntentRow>(this.pool, q.intentExtend, [...live(ref), claimExpiresAt]);
  }

  async intentFulfill(
    ref: TokenRef,
    result: string | null,
    resultType: ResultType,
  ): Promise<IntentRow | null> {
    return this.row<IntentRow>(this.pool, q.intentFulfill, [...live(ref), result, resultType]);
  }

  async intentFail(ref: TokenRef, error: string | null, random: Random): Promise<IntentRow | null> {
    return this.tx(async (c) => {
      const row = await this.row<IntentRow>(c, q.intentSelectLive, live(ref));
      if (!row) return null;
      return this.release(c, row, ref.now, error, error, random);
    });
  }

  /** Applies the core's decision for a claim (locked by the caller) that failed at `at`. */
  private async release(
    c: pg.PoolClient,
    row: IntentRow,
    at: number,
    error: string | null,
    deadReason: string | null,
    random: Random,
  ): Promise<IntentRow> {
    const next = releasedColumns(row, at, deadReason, random);
    return (await this.row<IntentRow>(c, q.intentRelease, [
      row.id,
      row.claimToken,
      next.status,
      next.runAt,
      error,
      next.deadReason,
      next.completedAt,
    ]))!;
  }

  async intentGet(id: string): Promise<IntentRow | null> {
    return this.row<IntentRow>(this.pool, q.intentGet, [id]);
  }

  async intentCancel(id: string, now: number): Promise<IntentRow | null> {
    return (
      (await this.row<IntentRow>(this.pool, q.intentCancel, [id, now, REASON_CANCELLED])) ??
      (await this.intentGet(id))
    );
  }

  async intentRetry(id: string, now: number): Promise<IntentRow | null> {
    return this.row<IntentRow>(this.pool, q.intentRetry, [id, now]);
  }

  async leasesSweep(now: number, random: Random, limit: number): Promise<IntentRow[]> {
    return this.tx(async (c) => {
      const expired = await this.rows<IntentRow>(c, q.leasesExpired, [now, limit]);
      const out: IntentRow[] = [];
      for (const row of expired) {
        out.push(
          await this.release(
            c,
            row,
            row.claimExpiresAt ?? now,
            REASON_LEASE_EXPIRED,
            REASON_LEASE_EXPIRED,
            random,
          ),
        );
      }
      return out;
    });
  }

  async intentsExpire(now: number, limit: number): Promise<IntentRow[]> {
    return this.rows<IntentRow>(this.pool, q.intentsExpire, [now, limit, REASON_EXPIRED]);
  }

  /**
   * Runs a bulk DELETE (its last parameter the limit) batch by batch until it deletes
   * less than a batch; each batch commits on its own.
   */
  private async batched(sql: string, values: unknown[]): Promise<number> {
    let total = 0;
    for (;;) {
      const n = (await this.run(this.pool, sql, [...values, DELETE_BATCH])).rowCount ?? 0;
      total += n;
      if (n < DELETE_BATCH) return total;
    }
  }

  async intentsDeleteFinished(before: number): Promise<{ fulfilled: number; dead: number }> {
    return {
      fulfilled: await this.batched(q.intentsDeleteFinished, ['fulfilled', before]),
      dead: await this.batched(q.intentsDeleteFinished, ['dead', before]),
    };
  }

  async intentsPurge(namespace: string | null): Promise<{ intents: number; dead: number }> {
    const { n: dead } = (
      namespace == null
        ? await this.row<{ n: number }>(this.pool, q.deadCountAll)
        : await this.row<{ n: number }>(this.pool, q.deadCountNamespace, [namespace])
    )!;
    const intents =
      namespace == null
        ? await this.batched(q.intentsPurgeAll, [])
        : await this.batched(q.intentsPurgeNamespace, [namespace]);
    return { intents, dead };
  }

  async deadList(limit: number, namespace: string | null): Promise<IntentRow[]> {
    return namespace == null
      ? this.rows<IntentRow>(this.pool, q.deadListAll, [limit])
      : this.rows<IntentRow>(this.pool, q.deadListNamespace, [limit, namespace]);
  }

  async deadDiscard(id: string): Promise<boolean> {
    return (await this.run(this.pool, q.deadDiscard, [id])).rowCount === 1;
  }

  async intentsList(
    filter: IntentListFilter,
    limit: number,
    cursor: ListCursor | null,
  ): Promise<IntentRow[]> {
    return this.rows<IntentRow>(this.pool, q.intentsList, [
      filter.namespace ?? null,
      filter.goal ?? null,
      filter.status ?? null,
      filter.publisher ?? null,
      filter.workerId ?? null,
      cursor?.createdAt ?? null,
      cursor?.id ?? null,
      limit,
    ]);
  }

  async intentsCount(): Promise<StatusCount[]> {
    return this.rows<StatusCount>(this.pool, q.intentsCount);
  }

  async intentsPerMinute(since: number): Promise<MinuteCounts[]> {
    type Row = { minute: number; n: number };
    const finished = (status: string) =>
      this.rows<Row>(this.pool, q.finishedPerMinute, [status, since]);
    return mergeMinuteCounts(
      await this.rows<Row>(this.pool, q.publishedPerMinute, [since]),
      await finished('fulfilled'),
      await finished('dead'),
    );
  }

  async keyCount(): Promise<number> {
    return (await this.row<{ n: number }>(this.pool, q.keyCount))!.n;
  }

  async intentsDueAfter(now: number, limit: number): Promise<IntentRow[]> {
    return this.rows<IntentRow>(this.pool, q.intentsDueAfter, [now, limit]);
  }

  async kvSet(owner: string, name: string, value: string, expiresAt: number): Promise<void> {
    await this.run(this.pool, q.kvSet, [owner, name, value, expiresAt]);
  }

  async kvGet(owner: string, name: string, now: number): Promise<string | null> {
    return (
      (await this.row<{ value: string }>(this.pool, q.kvGet, [owner, name, now]))?.value ?? null
    );
  }

  async kvDeleteExpired(now: number): Promise<number> {
    return this.batched(q.kvDeleteExpired, [now]);
  }

  async idempotencyDeleteBefore(before: number): Promise<number> {
    return this.batched(q.idempotencyDeleteBefore, [before]);
  }

  /**
   * Nonce rows, counted once and then kept up to date by this process, as the SQLite
   * store does: counting a million rows on every signed request is not affordable. Rows
   * written by other nodes are seen when the count is taken again: after a rollback and
   * after each cleanup pass.
   */
  private nonces = -1;

  async nonceRecord(
    keyId: string,
    nonce: string,
    expiresAt: number,
    now: number,
    capacity: number,
  ): Promise<'recorded' | 'replay' | 'full'> {
    let delta = 0;
    try {
      return await this.tx(async (c) => {
        if (this.nonces < 0) this.nonces = (await this.row<{ n: number }>(c, q.nonceCount))!.n;
        delta -= (await this.run(c, q.nonceDeleteStale, [keyId, nonce, now])).rowCount ?? 0;
        if (this.nonces + delta >= capacity) {
          delta -= (await this.run(c, q.noncesDeleteExpired, [now, DELETE_BATCH])).rowCount ?? 0;
          if (this.nonces + delta >= capacity) return 'full' as const;
        }
        if (!(await this.run(c, q.nonceInsert, [keyId, nonce, expiresAt])).rowCount) {
          return 'replay' as const;
        }
        delta++;
        return 'recorded' as const;
      });
    } catch (err) {
      delta = 0;
      // Whatever was counted may not have happened: count again when needed.
      this.nonces = -1;
      throw err;
    } finally {
      if (this.nonces >= 0) this.nonces += delta;
    }
  }

  async noncesDeleteExpired(now: number): Promise<number> {
    const n = await this.batched(q.noncesDeleteExpired, [now]);
    // Count again on the next record: other nodes may have written in the meantime.
    this.nonces = -1;
    return n;
  }

  async keyCreate(row: ApiKeyRow): Promise<void> {
    await this.run(this.pool, q.keyCreate, [
      row.keyId,
      row.keyHash,
      row.prefix,
      row.owner,
      row.createdAt,
      row.lastUsedAt,
      row.requests,
    ]);
  }

  async keyByHash(hash: string): Promise<ApiKeyRow | null> {
    return this.row<ApiKeyRow>(this.pool, q.keyByHash, [hash]);
  }

  async keyList(): Promise<ApiKeyRow[]> {
    return this.rows<ApiKeyRow>(this.pool, q.keyList);
  }

  async keyRevoke(
    by: { keyId: string } | { keyHash: string },
    now: number,
  ): Promise<string | null> {
    let removed = 0;
    const keyId = await this.tx(async (c) => {
      const gone =
        'keyId' in by
          ? await this.row<{ keyId: string }>(c, q.keyDeleteById, [by.keyId])
          : await this.row<{ keyId: string }>(c, q.keyDeleteByHash, [by.keyHash]);
      if (!gone) return null;
      await this.run(c, q.idempotencyDeleteKey, [gone.keyId]);
      removed = (await this.run(c, q.noncesDeleteKey, [gone.keyId])).rowCount ?? 0;
      await this.run(c, q.leasesEndOfKey, [gone.keyId, now]);
      return gone.keyId;
    });
    if (this.nonces >= 0) this.nonces -= removed;
    return keyId;
  }

  async keyUsageAdd(usage: ReadonlyMap<string, KeyUsage>): Promise<void> {
    if (usage.size === 0) return;
    // In key order, so that two nodes flushing at once lock the rows in the same order.
    const keys = [...usage.keys()].sort();
    await this.tx(async (c) => {
      for (const keyId of keys) {
        const u = usage.get(keyId)!;
        await this.run(c, q.keyUsageAdd, [keyId, u.count, u.lastUsedAt]);
      }
    });
  }
}

/** The parameters of a live-token statement: id token keyId now. */
const live = (ref: TokenRef): unknown[] => [ref.id, ref.token, ref.keyId, ref.now];

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
