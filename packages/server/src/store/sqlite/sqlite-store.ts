import { closeSync, fchmodSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
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
import { makeDataFolder, unusableDbFile } from './db-file.js';
import { migrations } from './migrations/index.js';
import * as q from './queries.js';

type Stmt = Database.Statement<unknown[], unknown>;

/** SQLite result codes that mean "the store is in trouble", not "the request is wrong". */
const UNAVAILABLE =
  /^SQLITE_(BUSY|LOCKED|FULL|READONLY|IOERR|CANTOPEN|NOMEM|CORRUPT|NOTADB|PROTOCOL)/;

export interface SqliteStoreOptions {
  path: string;
  /** How long a statement waits for another process's write lock before failing (ms). */
  busyTimeoutMs?: number;
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  private readonly db: Database.Database;
  private readonly stmts = new Map<string, Stmt>();

  constructor(private readonly options: SqliteStoreOptions) {
    const { path } = options;
    if (path !== ':memory:') {
      // Checked before anything is touched: a file or folder that is not a database is
      // left exactly as it is (its mode too), and so is the mode of an existing database.
      const unusable = unusableDbFile(path);
      if (unusable !== null) throw new Error(unusable);
      // Only missing folders are made (mode 700); existing ones keep their mode.
      makeDataFolder(dirname(path));
      createPrivate(path);
    }
    this.db = new Database(path, { timeout: options.busyTimeoutMs ?? 250 });
    // WAL: readers never block the writer. synchronous=NORMAL: a commit survives a killed
    // process (the WAL is in the OS page cache); only a power loss can drop the last commits.
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.tx = {
      begin: this.db.prepare('BEGIN IMMEDIATE'),
      commit: this.db.prepare('COMMIT'),
      rollback: this.db.prepare('ROLLBACK'),
    };
  }

  private stmt(sql: string): Stmt {
    let s = this.stmts.get(sql);
    if (s === undefined) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  /**
   * Group commit: the writes of one event-loop turn share one transaction, committed when
   * the turn's I/O callbacks are done (setImmediate). A write's promise resolves only after
   * that COMMIT, so nobody is answered for a change that is not durable, and a failed
   * COMMIT fails every call of the batch (none of them happened). Each changed page goes
   * to the WAL once per batch instead of once per request.
   */
  private batch: Array<(failure?: unknown) => void> | null = null;
  private readonly tx: { begin: Stmt; commit: Stmt; rollback: Stmt };
  /** Why this turn's BEGIN failed (another process holds the write lock, or worse). */
  private refused: unknown = null;

  /** Runs a write in this turn's transaction; settles once the transaction is committed. */
  private write<T>(fn: () => T): Promise<T> {
    if (this.batch === null) {
      // Each BEGIN may wait out the busy timeout, blocking the event loop: after one has
      // failed, the other writes of the same turn fail at once.
      if (this.refused !== null) return Promise.reject(this.refused);
      try {
        // A transaction left open by a ROLLBACK that failed (see settle) goes first.
        if (this.db.inTransaction) this.tx.rollback.run();
        this.tx.begin.run();
      } catch (err) {
        const failure = translate(err);
        if (failure instanceof StoreUnavailableError) {
          this.refused = failure;
          setImmediate(() => (this.refused = null));
        }
        return Promise.reject(failure);
      }
      const batch: Array<(failure?: unknown) => void> = [];
      this.batch = batch;
      setImmediate(() => this.commit(batch));
    }
    return this.join(fn);
  }

  /**
   * Runs a read. While a batch is open the read may see its uncommitted writes, so it
   * settles with the batch.
   */
  private read<T>(fn: () => T): Promise<T> {
    if (this.batch !== null) return this.join(fn);
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(translate(err));
    }
  }

  private join<T>(fn: () => T): Promise<T> {
    let value: T;
    try {
      value = fn();
    } catch (err) {
      // Most errors undo one statement; some (disk full, I/O) undo the whole transaction.
      if (!this.db.inTransaction) this.settle(unavailable('transaction rolled back', err));
      return Promise.reject(translate(err));
    }
    const batch = this.batch!;
    return new Promise((resolve, reject) =>
      batch.push((failure) => (failure === undefined ? resolve(value) : reject(failure))),
    );
  }

  private commit(batch: Array<(failure?: unknown) => void>): void {
    if (this.batch !== batch) return;
    try {
      this.tx.commit.run();
      this.settle(undefined);
    } catch (err) {
      // Whatever the reason, none of the batch happened: every caller may try again.
      this.settle(unavailable('commit failed', err));
    }
  }

  /** Ends the open batch: committed (`failure` undefined) or rolled back. */
  private settle(failure: unknown): void {
    const batch = this.batch;
    this.batch = null;
    if (failure !== undefined) {
      if (this.db.inTransaction) {
        try {
          this.tx.rollback.run();
        } catch {
          // The connection is in trouble; the next BEGIN will say so.
        }
      }
      // The nonce count may include rows that were rolled back: count again when needed.
      this.nonces = -1;
    }
    for (const done of batch ?? []) done(failure);
  }

  async migrate(): Promise<void> {
    try {
      this.db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
      const applied = new Set(
        (
          this.db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]
        ).map((r) => r.version),
      );
      for (const m of migrations) {
        if (applied.has(m.version)) continue;
        this.db
          .transaction(() => {
            this.db.exec(m.sql);
            this.db
              .prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
              .run(m.version, m.name, Date.now());
          })
          .immediate();
      }
      this.prepareAll();
    } catch (err) {
      throw translate(err);
    }
  }

  /** Prepares every statement once, so a query the planner cannot serve fails at start. */
  private prepareAll(): void {
    for (const [name, value] of Object.entries(q)) {
      if (typeof value === 'string' && name !== 'INTENT_COLUMNS') this.stmt(value);
    }
    for (const g of [true, false]) for (const p of [true, false]) this.stmt(q.intentClaim(g, p));
  }

  async ping(): Promise<void> {
    return this.read(() => void this.stmt(q.ping).get());
  }

  async close(): Promise<void> {
    if (this.batch !== null) this.commit(this.batch);
    if (this.db.open) this.db.close();
  }

  /** One process owns the file: nobody to exclude. */
  exclusive<T>(_name: string, _wait: boolean, task: () => Promise<T>): Promise<T | null> {
    return task();
  }

  async intentPublish(
    intent: NewIntent,
    idem: IdempotencyInput | null,
    maxOpen: number | null,
  ): Promise<PublishOutcome> {
    // Nothing to check first (the main key, no Idempotency-Key): the INSERT is atomic on
    // its own, without the savepoint that keeps the checks and the INSERT together.
    if (!idem && maxOpen == null) {
      return this.write(() => {
        this.stmt(q.intentInsert).run(intent);
        return { kind: 'created', row: openRow(intent) };
      });
    }
    return this.write(() =>
      this.db
        .transaction((): PublishOutcome => {
          if (idem) {
            const prior = this.stmt(q.idempotencyGet).get({
              keyId: idem.keyId,
              idemKey: idem.key,
            }) as
              { bodyHash: string; status: number; response: string; createdAt: number } | undefined;
            if (prior && prior.createdAt >= idem.notBefore) {
              if (prior.bodyHash !== idem.bodyHash) return { kind: 'conflict' };
              return { kind: 'replay', status: prior.status, body: prior.response };
            }
          }
          if (maxOpen != null) {
            const { n } = this.stmt(q.intentsLiveOfPublisher).get({
              publisher: intent.publisher,
            }) as {
              n: number;
            };
            if (n >= maxOpen) return { kind: 'limit_exceeded', open: n };
          }
          this.stmt(q.intentInsert).run(intent);
          const row = openRow(intent);
          if (idem) {
            this.stmt(q.idempotencyPut).run({
              keyId: idem.keyId,
              idemKey: idem.key,
              bodyHash: idem.bodyHash,
              status: 201,
              response: JSON.stringify({
                id: row.id,
                status: 'published',
                namespace: row.namespace,
              }),
              createdAt: intent.createdAt,
            });
          }
          return { kind: 'created', row };
        })
        .immediate(),
    );
  }

  async intentClaim(req: ClaimRequest): Promise<IntentRow | null> {
    const sql = q.intentClaim(req.goal != null, req.publisher != null);
    return this.write(
      () =>
        (this.stmt(sql).get({
          now: req.now,
          token: req.token,
          claimExpiresAt: req.now + req.leaseMs,
          keyId: req.keyId,
          workerId: req.workerId,
          namespace: req.namespace,
          goal: req.goal,
          publisher: req.publisher,
          caps: JSON.stringify(req.capabilities),
        }) as IntentRow | undefined) ?? null,
    );
  }

  async intentUnclaim(id: string, token: string): Promise<IntentRow | null> {
    return this.write(() => (this.stmt(q.intentUnclaim).get({ id, token }) as IntentRow) ?? null);
  }

  async intentExtend(ref: TokenRef, claimExpiresAt: number): Promise<IntentRow | null> {
    return this.write(
      () => (this.stmt(q.intentExtend).get({ ...ref, claimExpiresAt }) as IntentRow) ?? null,
    );
  }

  async intentFulfill(
    ref: TokenRef,
    result: string | null,
    resultType: ResultType,
  ): Promise<IntentRow | null> {
    return this.write(
      () => (this.stmt(q.intentFulfill).get({ ...ref, result, resultType }) as IntentRow) ?? null,
    );
  }

  async intentFail(ref: TokenRef, error: string | null, random: Random): Promise<IntentRow | null> {
    return this.write(() =>
      this.db
        .transaction(() => {
          const row = this.stmt(q.intentSelectLive).get(ref) as IntentRow | undefined;
          if (!row) return null;
          return this.release(row, ref.now, error, error, random);
        })
        .immediate(),
    );
  }

  /** Applies the core's decision for a claim that failed at time `at`. */
  private release(
    row: IntentRow,
    at: number,
    error: string | null,
    deadReason: string | null,
    random: Random,
  ): IntentRow {
    return this.stmt(q.intentRelease).get({
      id: row.id,
      token: row.claimToken,
      error,
      ...releasedColumns(row, at, deadReason, random),
    }) as IntentRow;
  }

  async intentGet(id: string): Promise<IntentRow | null> {
    return this.read(() => (this.stmt(q.intentGet).get({ id }) as IntentRow | undefined) ?? null);
  }

  async intentCancel(id: string, now: number): Promise<IntentRow | null> {
    return this.write(
      () =>
        (this.stmt(q.intentCancel).get({ id, now, reason: REASON_CANCELLED }) as
          IntentRow | undefined) ??
        (this.stmt(q.intentGet).get({ id }) as IntentRow | undefined) ??
        null,
    );
  }

  async intentRetry(id: string, now: number): Promise<IntentRow | null> {
    return this.write(() => (this.stmt(q.intentRetry).get({ id, now }) as IntentRow) ?? null);
  }

  async leasesSweep(now: number, random: Random, limit: number): Promise<IntentRow[]> {
    return this.write(() =>
      this.db
        .transaction(() => {
          const expired = this.stmt(q.leasesExpired).all({ now, limit }) as IntentRow[];
          return expired.map((row) =>
            this.release(
              row,
              row.claimExpiresAt ?? now,
              REASON_LEASE_EXPIRED,
              REASON_LEASE_EXPIRED,
              random,
            ),
          );
        })
        .immediate(),
    );
  }

  async intentsExpire(now: number, limit: number): Promise<IntentRow[]> {
    return this.write(
      () => this.stmt(q.intentsExpire).all({ now, limit, reason: REASON_EXPIRED }) as IntentRow[],
    );
  }

  /**
   * Runs a bulk DELETE (with @limit) batch by batch until it deletes less than a batch,
   * letting requests run between batches.
   */
  private async batched(sql: string, params: Record<string, unknown>): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.write(
        () => this.stmt(sql).run({ ...params, limit: DELETE_BATCH }).changes,
      );
      total += n;
      if (n < DELETE_BATCH) return total;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  async intentsDeleteFinished(before: number): Promise<{ fulfilled: number; dead: number }> {
    return {
      fulfilled: await this.batched(q.intentsDeleteFinished, { status: 'fulfilled', before }),
      dead: await this.batched(q.intentsDeleteFinished, { status: 'dead', before }),
    };
  }

  async intentsPurge(namespace: string | null): Promise<{ intents: number; dead: number }> {
    const dead = await this.read(
      () =>
        (namespace == null
          ? (this.stmt(q.deadCountAll).get() as { n: number })
          : (this.stmt(q.deadCountNamespace).get({ namespace }) as { n: number })
        ).n,
    );
    const intents =
      namespace == null
        ? await this.batched(q.intentsPurgeAll, {})
        : await this.batched(q.intentsPurgeNamespace, { namespace });
    return { intents, dead };
  }

  async deadList(limit: number, namespace: string | null): Promise<IntentRow[]> {
    return this.read(
      () =>
        (namespace == null
          ? this.stmt(q.deadListAll).all({ limit })
          : this.stmt(q.deadListNamespace).all({ limit, namespace })) as IntentRow[],
    );
  }

  async deadDiscard(id: string): Promise<boolean> {
    return this.write(() => this.stmt(q.deadDiscard).run({ id }).changes === 1);
  }

  async intentsList(
    filter: IntentListFilter,
    limit: number,
    cursor: ListCursor | null,
  ): Promise<IntentRow[]> {
    return this.read(
      () =>
        this.stmt(q.intentsList).all({
          namespace: filter.namespace ?? null,
          goal: filter.goal ?? null,
          status: filter.status ?? null,
          publisher: filter.publisher ?? null,
          workerId: filter.workerId ?? null,
          cursorAt: cursor?.createdAt ?? null,
          cursorId: cursor?.id ?? null,
          limit,
        }) as IntentRow[],
    );
  }

  async intentsCount(): Promise<StatusCount[]> {
    return this.read(() => this.stmt(q.intentsCount).all() as StatusCount[]);
  }

  async intentsPerMinute(since: number): Promise<MinuteCounts[]> {
    type Row = { minute: number; n: number };
    return this.read(() => {
      const finished = (status: string) =>
        this.stmt(q.finishedPerMinute).all({ status, since }) as Row[];
      return mergeMinuteCounts(
        this.stmt(q.publishedPerMinute).all({ since }) as Row[],
        finished('fulfilled'),
        finished('dead'),
      );
    });
  }

  async keyCount(): Promise<number> {
    return this.read(() => (this.stmt(q.keyCount).get() as { n: number }).n);
  }

  async intentsDueAfter(now: number, limit: number): Promise<IntentRow[]> {
    return this.read(() => this.stmt(q.intentsDueAfter).all({ now, limit }) as IntentRow[]);
  }

  async kvSet(owner: string, name: string, value: string, expiresAt: number): Promise<void> {
    return this.write(() => void this.stmt(q.kvSet).run({ owner, name, value, expiresAt }));
  }

  async kvGet(owner: string, name: string, now: number): Promise<string | null> {
    return this.read(
      () =>
        (this.stmt(q.kvGet).get({ owner, name, now }) as { value: string } | undefined)?.value ??
        null,
    );
  }

  async kvDeleteExpired(now: number): Promise<number> {
    return this.batched(q.kvDeleteExpired, { now });
  }

  async idempotencyDeleteBefore(before: number): Promise<number> {
    return this.batched(q.idempotencyDeleteBefore, { before });
  }

  /** Live nonce rows, counted once and then kept up to date by this process. */
  private nonces = -1;

  async nonceRecord(
    keyId: string,
    nonce: string,
    expiresAt: number,
    now: number,
    capacity: number,
  ): Promise<'recorded' | 'replay' | 'full'> {
    return this.write(() =>
      this.db
        .transaction(() => {
          if (this.nonces < 0) this.nonces = (this.stmt(q.nonceCount).get() as { n: number }).n;
          this.nonces -= this.stmt(q.nonceDeleteStale).run({ keyId, nonce, now }).changes;
          if (this.nonces >= capacity) {
            this.nonces -= this.stmt(q.noncesDeleteExpired).run({
              now,
              limit: DELETE_BATCH,
            }).changes;
            if (this.nonces >= capacity) return 'full' as const;
          }
          if (this.stmt(q.nonceInsert).run({ keyId, nonce, expiresAt }).changes === 0) {
            return 'replay' as const;
          }
          this.nonces++;
          return 'recorded' as const;
        })
        .immediate(),
    );
  }

  async noncesDeleteExpired(now: number): Promise<number> {
    const n = await this.batched(q.noncesDeleteExpired, { now });
    if (this.nonces >= 0) this.nonces -= n;
    return n;
  }

  async keyCreate(row: ApiKeyRow): Promise<void> {
    return this.write(() => void this.stmt(q.keyCreate).run(row));
  }

  async keyByHash(hash: string): Promise<ApiKeyRow | null> {
    return this.read(
      () => (this.stmt(q.keyByHash).get({ keyHash: hash }) as ApiKeyRow | undefined) ?? null,
    );
  }

  async keyList(): Promise<ApiKeyRow[]> {
    return this.read(() => this.stmt(q.keyList).all() as ApiKeyRow[]);
  }

  async keyRevoke(
    by: { keyId: string } | { keyHash: string },
    now: number,
  ): Promise<string | null> {
    return this.write(() =>
      this.db
        .transaction(() => {
          const gone = (
            'keyId' in by
              ? this.stmt(q.keyDeleteById).get({ keyId: by.keyId })
              : this.stmt(q.keyDeleteByHash).get({ keyHash: by.keyHash })
          ) as { keyId: string } | undefined;
          if (!gone) return null;
          this.stmt(q.idempotencyDeleteKey).run({ keyId: gone.keyId });
          this.nonces -= this.stmt(q.noncesDeleteKey).run({ keyId: gone.keyId }).changes;
          this.stmt(q.leasesEndOfKey).run({ keyId: gone.keyId, now });
          return gone.keyId;
        })
        .immediate(),
    );
  }

  async keyUsageAdd(usage: ReadonlyMap<string, KeyUsage>): Promise<void> {
    if (usage.size === 0) return;
    return this.write(() =>
      this.db
        .transaction(() => {
          for (const [keyId, u] of usage) {
            this.stmt(q.keyUsageAdd).run({ keyId, count: u.count, lastUsedAt: u.lastUsedAt });
          }
        })
        .immediate(),
    );
  }
}

/** The failure of a whole batch, named by SQLite's code (for the logs: no data in it). */
function unavailable(what: string, err: unknown): StoreUnavailableError {
  const code = (err as { code?: unknown }).code;
  return new StoreUnavailableError(
    `store unavailable: ${what}${typeof code === 'string' ? ` (${code})` : ''}`,
    err,
  );
}

function translate(err: unknown): unknown {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && UNAVAILABLE.test(code)) {
    return new StoreUnavailableError(`store unavailable: ${code}`, err);
  }
  return err;
}

/**
 * Creates the database file when it does not exist yet, mode 600 from its first byte
 * (fchmod makes it exact whatever the umask). Only a file made here is given a mode: an
 * existing one, the operator's, keeps its own.
 */
function createPrivate(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw err;
  }
  try {
    fchmodSync(fd, 0o600);
  } finally {
    closeSync(fd);
  }
}
