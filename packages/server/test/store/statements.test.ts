/**
 * The statements of both backends, held together without a database: every statement of
 * store/statements.ts has SQL on both, naming the same parameters, and PostgreSQL numbers
 * those names as it must. (Their behaviour is the Store contract's to check.)
 */
import { describe, expect, it } from 'vitest';
import { INTENT_MEMBERS } from '../../src/core/intent-record.js';
import * as pgQueries from '../../src/store/postgres/queries.js';
import { positional } from '../../src/store/postgres/pg-store.js';
import * as sqliteQueries from '../../src/store/sqlite/queries.js';

/**
 * The statements PostgreSQL has for itself: advisory locks (SQLite has one writer) and the
 * multi-row forms of its group writes (SQLite shares one commit per turn instead).
 */
const PG_ONLY = [
  'advisoryLock',
  'sessionLock',
  'sessionTryLock',
  'sessionUnlock',
  'intentInsertMany',
  'intentFulfillMany',
];

const parameters = (sql: string): string[] =>
  [...new Set([...sql.matchAll(/@(\w+)/g)].map((m) => m[1]!))].sort();

describe('the statements of both backends', () => {
  it('are the same statements, each naming the same parameters', () => {
    const sqlite: Record<string, string> = sqliteQueries;
    const postgres: Record<string, string> = pgQueries;
    expect(
      Object.keys(postgres)
        .filter((n) => !PG_ONLY.includes(n))
        .sort(),
    ).toEqual(Object.keys(sqlite).sort());
    for (const [name, sql] of Object.entries(sqlite)) {
      expect(parameters(postgres[name]!), name).toEqual(parameters(sql));
    }
  });

  it('number each name once on PostgreSQL, in order of first use', () => {
    expect(positional('SELECT @b, @a::text WHERE x = @b OR @a IS NULL')).toEqual({
      text: 'SELECT $1, $2::text WHERE x = $1 OR $2 IS NULL',
      names: ['b', 'a'],
    });
    expect(positional(pgQueries.intentsList).text).not.toMatch(/@/);
    expect(positional(pgQueries.intentsList).names).toEqual([
      'namespace',
      'goal',
      'status',
      'publisher',
      'workerId',
      'cursorAt',
      'cursorId',
      'limit',
    ]);
  });

  it('select every intents column under its IntentRow name, and insert what a publish sets', () => {
    const list = (text: string): string[] => text.split(',').map((c) => c.trim());
    for (const q of [sqliteQueries, pgQueries]) {
      const select = /^SELECT ([^]*) FROM intents WHERE id = @id$/.exec(q.intentGet)![1]!;
      expect(list(select).map((c) => c.replace(/"/g, ''))).toEqual(
        INTENT_MEMBERS.map((m) => (m.name === m.column ? m.name : `${m.column} AS ${m.name}`)),
      );
      // The claims return the same list.
      expect(q.intentClaim.endsWith(`RETURNING ${select}`)).toBe(true);
      const [, columns, values] = /^INSERT INTO intents \(([^)]*)\)\s+VALUES \(([^)]*)\)$/.exec(
        q.intentInsert,
      )!;
      const published = INTENT_MEMBERS.filter((m) => 'publish' in m);
      expect(list(columns!)).toEqual([...published.map((m) => m.column), 'status']);
      expect(list(values!)).toEqual([...published.map((m) => `@${m.name}`), "'open'"]);
    }
    expect(pgQueries.intentGet).toContain('run_at AS "runAt"');
    expect(sqliteQueries.intentGet).toContain('run_at AS runAt,');
  });
});
