/**
 * SQLite migration 9 rebuilds the intents table (its status CHECK without an IN list), on
 * a real file migrated to version 8 as a bus of that version left it: every row comes
 * through whole, every index as it was, and the writes of a job no longer build an
 * ephemeral B-tree for the CHECK, which still refuses a status that is not one of the four.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Connection, SqliteDriver } from '../../src/store/sqlite/connection.js';
import { migrations } from '../../src/store/sqlite/migrations/index.js';
import * as q from '../../src/store/sqlite/queries.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { claimBy } from './contract.js';
import { forEachDriver, openPeer } from './drivers.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const T0 = 1_800_000_000_000;
const COLUMNS = [
  'id',
  'namespace',
  'goal',
  'payload',
  'publisher',
  'visibility',
  'priority',
  'status',
  'run_at',
  'created_at',
  'expires_at',
  'max_attempts',
  'claim_attempts',
  'backoff_base',
  'ttl',
  'target_worker',
  'required_capability',
  'claim_token',
  'claim_expires_at',
  'claimer',
  'worker_id',
  'result',
  'result_type',
  'completed_at',
  'error',
  'dead_reason',
  'schedule',
  'scheduled_for',
  'progress_percent',
  'progress_message',
  'progress_data',
  'progress_at',
] as const;
type Row = Record<(typeof COLUMNS)[number], string | number | null> & { id: string };

const base = (n: number): Row => ({
  id: `${(T0 + n).toString(16).padStart(12, '0')}${'0'.repeat(19)}${n}`,
  namespace: 'default',
  goal: 'g',
  payload: `{"n":${n}}`,
  publisher: 'kid_a',
  visibility: 'private',
  priority: 100,
  status: 'open',
  run_at: T0,
  created_at: T0 + n,
  expires_at: T0 + 86_400_000,
  max_attempts: 3,
  claim_attempts: 0,
  backoff_base: 1.5,
  ttl: 86_400,
  target_worker: null,
  required_capability: null,
  claim_token: null,
  claim_expires_at: null,
  claimer: null,
  worker_id: null,
  result: null,
  result_type: null,
  completed_at: null,
  error: null,
  dead_reason: null,
  schedule: null,
  scheduled_for: null,
  progress_percent: null,
  progress_message: null,
  progress_data: null,
  progress_at: null,
});

/** Intents in every status, each filling other columns, those of migrations 4 and 8 too. */
const ROWS: Row[] = [
  base(1),
  {
    ...base(2),
    visibility: 'public',
    priority: 5,
    target_worker: 'w1',
    required_capability: 'gpu',
  },
  // Delayed (intents_due), a retry of a scheduled run.
  { ...base(3), run_at: T0 + 60_000, claim_attempts: 1, schedule: 'nightly', scheduled_for: T0 },
  {
    ...base(4),
    status: 'claimed',
    claim_attempts: 1,
    claim_token: 't'.repeat(32),
    claim_expires_at: T0 + 30_000,
    claimer: 'kid_b',
    worker_id: 'w2',
    progress_percent: 42.5,
    progress_message: 'half way',
    progress_data: '{"step":3}',
    progress_at: T0 + 10,
  },
  {
    ...base(5),
    status: 'fulfilled',
    goal: 'other',
    claim_attempts: 1,
    claimer: 'kid_b',
    worker_id: 'w2',
    result: '{"ok":true}',
    result_type: 'json',
    completed_at: T0 + 20,
    progress_percent: 100,
    progress_at: T0 + 19,
  },
  {
    ...base(6),
    status: 'dead',
    namespace: 'ns2',
    claim_attempts: 3,
    completed_at: T0 + 30,
    error: '{"message":"boom"}',
    dead_reason: 'max_attempts',
    schedule: 'nightly',
    scheduled_for: T0 + 86_400_000,
  },
];

/** Migrations 1 to 8 applied as the store of that version applied them. */
function migrateTo8(db: Connection): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
  const record = db.prepare(
    'INSERT INTO schema_migrations (version, name, applied_at) VALUES (@version, @name, @at)',
  );
  for (const m of migrations.filter((m) => m.version <= 8)) {
    db.exec('BEGIN IMMEDIATE');
    db.exec(m.sql);
    record.run({ version: m.version, name: m.name, at: T0 });
    db.exec('COMMIT');
  }
}

interface Seen {
  rows: unknown[];
  columns: unknown[];
  indexes: unknown[];
  ephemeral: Record<'insert' | 'claim' | 'fulfil', number>;
}

function look(db: Connection): Seen {
  const all = (sql: string): unknown[] => db.prepare(sql).all();
  /** The OpenEphemeral instructions of a statement's program (any parameters: all null). */
  const ephemeral = (sql: string): number => {
    const names = [...new Set([...sql.matchAll(/@(\w+)/g)].map((m) => m[1]!))];
    const program = db
      .prepare(`EXPLAIN ${sql}`)
      .all(Object.fromEntries(names.map((n) => [n, null]))) as { opcode: string }[];
    return program.filter((op) => op.opcode === 'OpenEphemeral').length;
  };
  return {
    rows: all(`SELECT rowid AS row_id, ${COLUMNS.join(', ')} FROM intents ORDER BY id`),
    columns: all('PRAGMA table_info(intents)'),
    indexes: all(
      "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'intents' " +
        'ORDER BY name',
    ),
    ephemeral: {
      insert: ephemeral(q.intentInsert),
      claim: ephemeral(q.intentClaimGoal),
      fulfil: ephemeral(q.intentFulfill),
    },
  };
}

forEachDriver('SQLite migration 9', (driver: SqliteDriver) => {
  describe(`SQLite migration 9 (${driver}): the status CHECK without an IN list`, () => {
    it('keeps every row and index of a version 8 file, and drops the CHECK’s B-tree', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'intent-bus-migration-'));
      dirs.push(dir);
      const path = join(dir, 'bus.db');
      const old = openPeer(path, driver);
      let before: Seen;
      try {
        old.exec('PRAGMA journal_mode = WAL');
        migrateTo8(old);
        const insert = old.prepare(
          `INSERT INTO intents (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map((c) => `@${c}`).join(', ')})`,
        );
        for (const row of ROWS) insert.run(row);
        // A row deleted leaves a hole in the rowids, which the copy keeps.
        old.exec(`DELETE FROM intents WHERE id = '${ROWS[1]!.id}'`);
        insert.run({ ...ROWS[1]!, id: ROWS[1]!.id.replace(/2$/, '7') });
        before = look(old);
      } finally {
        old.close();
      }
      expect(before.rows).toHaveLength(ROWS.length);
      expect(before.indexes).toHaveLength(11);
      // Version 8: the CHECK's list is one ephemeral table in each of the three programs.
      expect(before.ephemeral.insert).toBe(1);

      const store = new SqliteStore({ path, driver });
      await store.migrate();
      // The store prepared its statements (INDEXED BY each index) and works on the copy.
      const claimed = await store.intentClaim(
        claimBy({ goal: 'g', now: T0 + 100_000, token: 'u'.repeat(32) }),
      );
      await store.close();
      expect(claimed?.id).toBe(ROWS[0]!.id);

      const db = openPeer(path, driver);
      try {
        const after = look(db);
        expect(db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get()).toEqual({
          v: 9,
        });
        expect(after.columns).toEqual(before.columns);
        expect(after.indexes).toEqual(before.indexes);
        // Every row as it was, but the one the store just claimed.
        const unclaimed = (rows: unknown[]) => rows.filter((r) => (r as Row).id !== ROWS[0]!.id);
        expect(unclaimed(after.rows)).toEqual(unclaimed(before.rows));
        expect(after.rows.map((r) => (r as { row_id: number }).row_id)).toEqual(
          before.rows.map((r) => (r as { row_id: number }).row_id),
        );
        expect(after.ephemeral).toEqual({
          insert: before.ephemeral.insert - 1,
          claim: before.ephemeral.claim - 1,
          fulfil: before.ephemeral.fulfil - 1,
        });
        expect(db.prepare('PRAGMA integrity_check').all()).toEqual([{ integrity_check: 'ok' }]);
        expect(db.prepare('PRAGMA foreign_key_check').all()).toEqual([]);
        expect(
          db.prepare("SELECT COUNT(*) AS n FROM sqlite_schema WHERE name = 'intents_new'").get(),
        ).toEqual({ n: 0 });

        // The CHECK still holds.
        expect(() =>
          db.exec(`UPDATE intents SET status = 'bogus' WHERE id = '${ROWS[3]!.id}'`),
        ).toThrow(/CHECK constraint failed/);
        expect(() =>
          db
            .prepare(
              `INSERT INTO intents (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map((c) => `@${c}`).join(', ')})`,
            )
            .run({ ...base(9), status: 'Open' }),
        ).toThrow(/CHECK constraint failed/);
        for (const status of ['open', 'claimed', 'fulfilled', 'dead'])
          db.exec(`UPDATE intents SET status = '${status}' WHERE id = '${ROWS[3]!.id}'`);
      } finally {
        db.close();
      }
    });
  });
});
