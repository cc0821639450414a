/**
 * The Store contract on a real PostgreSQL (BUS_TEST_DATABASE_URL). Every store gets a
 * schema of its own, so each test starts empty; all are dropped at the end. A database
 * that cannot be reached fails every test with the reason: this suite never skips.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { INTENT_MEMBERS } from '../../src/core/intent-record.js';
import { PgStore } from '../../src/store/postgres/pg-store.js';
import * as queries from '../../src/store/postgres/queries.js';
import { StoreUnavailableError } from '../../src/store/store.js';
import { PG_ADMIN_URL as URL, pgQuery } from '../pg-database.js';
import type { NewIntent } from '../../src/core/intent-record.js';
import { claimBy, intent, storeContract } from './contract.js';

const RUN = `ib_test_${process.pid}_${randomBytes(4).toString('hex')}`;
const schemas: string[] = [];

/** Throws, with what to do about it, when the database does not answer. */
const checkReachable = (): Promise<unknown> => pgQuery('SELECT 1');

async function openStore(max?: number): Promise<PgStore> {
  await checkReachable();
  const schema = `${RUN}_${schemas.length}`;
  schemas.push(schema);
  return new PgStore({ connectionString: URL, schema, ...(max && { max }) });
}

afterAll(async () => {
  if (schemas.length === 0) return;
  const client = new pg.Client({ connectionString: URL });
  await client.connect();
  try {
    for (const s of schemas)
      await client.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(s)} CASCADE`);
  } finally {
    await client.end();
  }
});

storeContract('postgres', () => openStore());

describe('PostgreSQL store', () => {
  const stores: PgStore[] = [];
  const fresh = async (max?: number): Promise<PgStore> => {
    const s = await openStore(max);
    stores.push(s);
    await s.migrate();
    return s;
  };
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
  });

  it('gives one open intent to exactly one of two racing claims', async () => {
    const s = await fresh(4);
    for (let round = 0; round < 20; round++) {
      const i = intent({ createdAt: 1_800_000_000_000 + round });
      await s.intentPublish(i, null, null);
      const claim = (token: string) => s.intentClaim(claimBy({ now: i.runAt, token }));
      const got = (await Promise.all([claim('t1'), claim('t2')])).filter((r) => r !== null);
      expect(got).toHaveLength(1);
      expect(got[0]).toMatchObject({ id: i.id, status: 'claimed', claimAttempts: 1 });
      expect((await s.intentGet(i.id))?.claimToken).toBe(got[0]!.claimToken);
    }
  });

  it('lets two stores migrate the same schema at once', async () => {
    const a = await openStore();
    const b = new PgStore({ connectionString: URL, schema: schemas[schemas.length - 1]! });
    stores.push(a, b);
    await Promise.all([a.migrate(), b.migrate()]);
    await b.migrate();
    expect(await a.keyCount()).toBe(0);
  });

  it('runs an exclusive task on one store of a schema at a time, and frees the lock after', async () => {
    const a = await fresh();
    const b = new PgStore({ connectionString: URL, schema: schemas[schemas.length - 1]! });
    const other = await fresh(); // another schema: its own lock
    stores.push(b);
    let release!: () => void;
    const held = a.exclusive(
      'housekeeping',
      false,
      () => new Promise<string>((r) => (release = () => r('a'))),
    );
    await new Promise((r) => setTimeout(r, 100));
    expect(await b.exclusive('housekeeping', false, async () => 'b')).toBeNull();
    expect(await other.exclusive('housekeeping', false, async () => 'other')).toBe('other');
    const waiting = b.exclusive('housekeeping', true, async () => 'b waited');
    release();
    expect(await held).toBe('a');
    expect(await waiting).toBe('b waited');
    expect(await b.exclusive('housekeeping', false, async () => 'b')).toBe('b');
    // A task that throws frees the lock too.
    await expect(
      a.exclusive('housekeeping', false, async () => Promise.reject(new Error('x'))),
    ).rejects.toThrow('x');
    expect(await b.exclusive('housekeeping', false, async () => 'b again')).toBe('b again');
  });

  it('reports an unreachable server as StoreUnavailableError', async () => {
    const s = new PgStore({ connectionString: 'postgres://postgres@127.0.0.1:1/test' });
    stores.push(s);
    await expect(s.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(s.intentGet('x')).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it('passes other errors through', async () => {
    const s = await fresh();
    const row = {
      keyId: 'kid_1',
      keyHash: 'h',
      prefix: 'p',
      owner: 'o',
      createdAt: 1,
      lastUsedAt: null,
      requests: 0,
    };
    await s.keyCreate(row);
    const dup = s.keyCreate(row);
    await expect(dup).rejects.toMatchObject({ code: '23505' });
    await expect(dup).rejects.not.toBeInstanceOf(StoreUnavailableError);
  });

  describe('group writes (the publishes and fulfils of one event-loop turn)', () => {
    const T0 = 1_800_000_000_000;
    /** The transactions that wrote the rows now in the table: one per statement sent. */
    const writers = async (ids: readonly string[]): Promise<Map<string, string>> => {
      const table = `${pg.escapeIdentifier(schemas.at(-1)!)}.intents`;
      const rows = await pgQuery<{ id: string; xmin: string }>(
        `SELECT id, xmin::text AS xmin FROM ${table} WHERE id = ANY($1::text[])`,
        [ids],
      );
      return new Map(rows.map((r) => [r.id, r.xmin]));
    };
    const rowCount = async (): Promise<number> => {
      const table = `${pg.escapeIdentifier(schemas.at(-1)!)}.intents`;
      return (await pgQuery<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))[0]!.n;
    };
    const created = (n: number, over: (i: number) => Partial<NewIntent> = () => ({})) =>
      Array.from({ length: n }, (_, i) => intent({ createdAt: T0 + i, ...over(i) }));

    it('inserts each intent of a turn once, with exactly its values, in one statement per 100', async () => {
      const s = await fresh();
      const strange = (i: number) => `g\u0000${i}\uE000\uE0000\uE0001'"\\{},NULL`;
      const all = created(150, (i) => ({
        goal: strange(i),
        payload: JSON.stringify({ i, s: `\u0000\uE000${i}` }),
        priority: i % 7,
        backoffBase: 1.5 + i,
        ttl: 0.25 + i,
        targetWorker: i % 2 ? `w${i}` : null,
        requiredCapability: i % 3 ? null : 'NULL',
        schedule: i % 5 ? null : `s\u0000${i}`,
        scheduledFor: i % 5 ? null : T0 - i,
      }));
      const outs = await Promise.all(all.map((i) => s.intentPublish(i, null, null)));
      for (const [k, out] of outs.entries()) {
        expect(out).toMatchObject({ kind: 'created', row: { id: all[k]!.id } });
        const row = await s.intentGet(all[k]!.id);
        expect(row).toMatchObject({ ...all[k]!, status: 'open', claimAttempts: 0 });
      }
      expect(await rowCount()).toBe(150);
      // The first 100 went when the group was full, the other 50 at the end of the turn.
      const xmins = await writers(all.map((i) => i.id));
      expect(new Set(xmins.values()).size).toBe(2);
      expect(new Set(all.slice(0, 100).map((i) => xmins.get(i.id))).size).toBe(1);
    });

    it('sends a group before its bound text passes 4 MiB, whatever its count', async () => {
      const s = await fresh();
      // 1.5 MiB payloads: the third makes 4.5 MiB, so the first three go as one statement.
      const big = (i: number) => JSON.stringify({ i, pad: 'x'.repeat(1.5 * 2 ** 20) });
      const all = created(5, (i) => ({ payload: big(i) }));
      const outs = await Promise.all(all.map((i) => s.intentPublish(i, null, null)));
      for (const out of outs) expect(out.kind).toBe('created');
      const xmins = await writers(all.map((i) => i.id));
      expect(new Set(all.slice(0, 3).map((i) => xmins.get(i.id))).size).toBe(1);
      expect(new Set(all.slice(3).map((i) => xmins.get(i.id))).size).toBe(1);
      expect(xmins.get(all[0]!.id)).not.toBe(xmins.get(all[3]!.id));
      for (const i of all) expect((await s.intentGet(i.id))!.payload).toBe(i.payload);
    });

    it('answers each fulfil of a turn: the live tokens their rows, the others null', async () => {
      const s = await fresh();
      const all = created(8);
      for (const i of all) await s.intentPublish(i, null, null);
      const refs = [];
      for (const i of all) {
        const row = await s.intentClaim(claimBy({ goal: 'g', token: `t_${i.id}` }));
        expect(row).not.toBeNull();
        refs.push({ id: row!.id, token: row!.claimToken!, keyId: 'kid_a', now: T0 + 1000 });
      }
      const lease = T0 + 60_000;
      const [a, b, c, d, e, f, g, h] = refs as [(typeof refs)[number], ...typeof refs];
      const result = `{"r":"\\u0000","e":"\uE000\uE0001"}`;
      const answers = await Promise.all([
        s.intentFulfill(a, result, 'json'),
        s.intentFulfill({ ...b!, token: 'stale' }, '1', 'json'),
        s.intentFulfill({ ...c!, now: lease }, '1', 'json'), // its lease has ended by its own now
        s.intentFulfill({ ...d!, keyId: 'kid_b' }, '1', 'json'),
        s.intentFulfill({ ...e!, now: lease - 1 }, '"e"', 'text'),
        s.intentFulfill(f!, '"f1"', 'text'),
        s.intentFulfill(f!, '"f2"', 'text'), // the same claim twice: one of them
        s.intentFulfill(g!, 'null', 'json'),
        s.intentFulfill({ ...h!, id: 'no such intent' }, '1', 'json'),
      ]);
      expect(answers[0]).toMatchObject({
        id: a.id,
        status: 'fulfilled',
        result,
        completedAt: a.now,
      });
      expect(answers[0]!.claimToken).toBeNull();
      expect(answers.slice(1, 4)).toEqual([null, null, null]);
      expect(answers[4]).toMatchObject({ id: e!.id, status: 'fulfilled', completedAt: lease - 1 });
      const twice = answers.slice(5, 7);
      expect(twice.filter((r) => r !== null)).toHaveLength(1);
      const won = twice.find((r) => r !== null)!;
      expect(won).toMatchObject({ id: f!.id, status: 'fulfilled', resultType: 'text' });
      expect(answers[7]).toMatchObject({ id: g!.id, status: 'fulfilled', result: 'null' });
      expect(answers[8]).toBeNull();
      // What the table holds agrees with the answers.
      for (const [k, ref] of refs.entries()) {
        const row = await s.intentGet(ref.id);
        const done = [0, 4, 5, 6].includes(k);
        expect(row?.status, `intent ${k}`).toBe(done ? 'fulfilled' : 'claimed');
      }
      expect((await s.intentGet(f!.id))!.result).toBe(won.result);
      expect((await s.intentGet(a.id))!.result).toBe(result);
      // a, e and g in one statement; the second fulfil of f's claim went after it.
      const xmins = await writers([a.id, e!.id, g!.id]);
      expect(new Set(xmins.values()).size).toBe(1);
    });

    it('fails only the item that fails when a group fails, and every item when the store is down', async () => {
      const s = await fresh();
      const there = intent({ createdAt: T0 - 1 });
      await s.intentPublish(there, null, null);
      const fine = created(3);
      const outs = await Promise.allSettled([
        s.intentPublish(fine[0]!, null, null),
        s.intentPublish({ ...there, goal: 'again' }, null, null), // its id exists
        s.intentPublish(fine[1]!, null, null),
        s.intentPublish(intent({ visibility: 'nobody' as 'public' }), null, null), // CHECK
        s.intentPublish(fine[2]!, null, null),
      ]);
      expect(outs.map((o) => o.status)).toEqual([
        'fulfilled',
        'rejected',
        'fulfilled',
        'rejected',
        'fulfilled',
      ]);
      expect(outs[1]).toMatchObject({ reason: { code: '23505' } });
      expect(outs[3]).toMatchObject({ reason: { code: '23514' } });
      for (const o of outs.filter((x) => x.status === 'rejected'))
        expect(o.reason).not.toBeInstanceOf(StoreUnavailableError);
      for (const i of fine) expect(await s.intentGet(i.id)).toMatchObject({ id: i.id, goal: 'g' });
      expect(await s.intentGet(there.id)).toMatchObject({ goal: 'g' });
      expect(await rowCount()).toBe(4);

      // The same for fulfils: a time PostgreSQL refuses as a bigint fails its own item.
      const refs = [];
      for (const i of fine) {
        const row = await s.intentClaim(claimBy({ token: `t_${i.id}` }));
        refs.push({ id: row!.id, token: row!.claimToken!, keyId: 'kid_a', now: T0 + 1 });
      }
      const done = await Promise.allSettled([
        s.intentFulfill(refs[0]!, '1', 'json'),
        s.intentFulfill({ ...refs[1]!, now: T0 + 0.5 }, '2', 'json'),
        s.intentFulfill(refs[2]!, '3', 'json'),
      ]);
      expect(done[0]).toMatchObject({ status: 'fulfilled', value: { result: '1' } });
      expect(done[1]).toMatchObject({ status: 'rejected', reason: { code: '22P02' } });
      expect(done[2]).toMatchObject({ status: 'fulfilled', value: { result: '3' } });
      expect((await s.intentGet(refs[1]!.id))!.status).toBe('claimed');

      const down = new PgStore({ connectionString: 'postgres://postgres@127.0.0.1:1/test' });
      stores.push(down);
      const failed = await Promise.allSettled(
        created(5).map((i) => down.intentPublish(i, null, null)),
      );
      for (const o of failed) {
        expect(o.status).toBe('rejected');
        expect((o as PromiseRejectedResult).reason).toBeInstanceOf(StoreUnavailableError);
      }
    });

    it('binds each item as an array of its column type, so the plans are the single statement', async () => {
      await fresh();
      const columns = await pgQuery<{ column_name: string; data_type: string }>(
        `SELECT column_name, data_type FROM information_schema.columns
         WHERE table_schema = $1 AND table_name = 'intents'`,
        [schemas.at(-1)],
      );
      const typeOf = new Map(columns.map((c) => [c.column_name, c.data_type]));
      const bound = (sql: string) =>
        [...sql.matchAll(/@(\w+)::([a-z ]+)\[\]/g)].map((m) => [m[1]!, m[2]!]);
      const column = (name: string) => INTENT_MEMBERS.find((m) => m.name === name)!.column;
      const inserted = bound(queries.intentInsertMany);
      expect(inserted.map(([n]) => n)).toEqual(
        INTENT_MEMBERS.filter((m) => 'publish' in m).map((m) => m.name),
      );
      for (const [name, type] of inserted) expect(type, name).toBe(typeOf.get(column(name)));
      const compared: Record<string, string> = {
        id: 'id',
        token: 'claim_token',
        keyId: 'claimer',
        now: 'claim_expires_at',
        result: 'result',
        resultType: 'result_type',
      };
      const fulfilled = bound(queries.intentFulfillMany);
      expect(fulfilled.map(([n]) => n).sort()).toEqual(Object.keys(compared).sort());
      for (const [name, type] of fulfilled) expect(type, name).toBe(typeOf.get(compared[name]!));
    });
  });
});
