/**
 * The Store contract on a real PostgreSQL (BUS_TEST_DATABASE_URL). Every store gets a
 * schema of its own, so each test starts empty; all are dropped at the end. A database
 * that cannot be reached fails every test with the reason: this suite never skips.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { PgStore } from '../../src/store/postgres/pg-store.js';
import { StoreUnavailableError } from '../../src/store/store.js';
import { PG_ADMIN_URL as URL, pgQuery } from '../pg-database.js';
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
});
