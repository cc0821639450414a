import { existsSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publish, startTestBus, type TestBus } from './helpers.js';
import { PG_ADMIN_URL } from './pg-database.js';

describe('publish → claim → fulfil → result over a real socket', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  it('completes the round trip of the README', async () => {
    const id = await publish(t.api, {
      goal: 'send_notification',
      payload: { instruction: 'Hello' },
    });
    const claim = await t.api('POST', '/claim?goal=send_notification');
    expect(claim.status).toBe(200);
    expect(claim.json).toMatchObject({
      id,
      goal: 'send_notification',
      payload: { instruction: 'Hello' },
    });
    const done = await t.api('POST', `/fulfill/${id}`, {
      body: { claim_token: claim.json.claim_token, result: 'done', result_type: 'text' },
    });
    expect(done.json).toEqual({ ok: true, id, status: 'fulfilled' });
    const result = await t.api('GET', `/result/${id}`);
    expect(result.json).toMatchObject({
      id,
      status: 'fulfilled',
      result: 'done',
      result_type: 'text',
    });
  });

  it('keeps its data where it is configured: BUS_DB_PATH, or BUS_DATABASE_SCHEMA', async () => {
    const id = await publish(t.api, { goal: 'where', payload: {} });
    if (t.schema === null) {
      expect(existsSync(t.dbPath)).toBe(true);
      return;
    }
    // On PostgreSQL there is no file, and the intent is in the bus's own schema.
    expect(existsSync(t.dbPath)).toBe(false);
    const client = new pg.Client({ connectionString: PG_ADMIN_URL });
    await client.connect();
    try {
      const r = await client.query(
        `SELECT count(*)::int AS n FROM ${pg.escapeIdentifier(t.schema)}.intents WHERE id = $1`,
        [id],
      );
      expect(r.rows[0].n).toBe(1);
    } finally {
      await client.end();
    }
  });
});

describe('a restart on the same data (startTestBus with dir)', () => {
  /** Whether the intent `id` is still in the data of `t`: its file, or its PostgreSQL schema. */
  async function stored(t: TestBus, id: string): Promise<boolean> {
    if (t.schema === null) return existsSync(t.dbPath);
    const client = new pg.Client({ connectionString: PG_ADMIN_URL });
    await client.connect();
    try {
      const intents = `${pg.escapeIdentifier(t.schema)}.intents`;
      const r = await client.query(`SELECT 1 FROM ${intents} WHERE id = $1`, [id]);
      return r.rowCount === 1;
    } catch {
      return false;
    } finally {
      await client.end();
    }
  }

  it('finds what the first bus stored; only the first bus removes it', async () => {
    const first = await startTestBus();
    try {
      const id = await publish(first.api, { goal: 'kept', payload: {} });
      await first.bus.close();
      const second = await startTestBus({ dir: first.dir });
      expect(second.schema).toBe(first.schema);
      try {
        expect((await second.api('GET', `/status/${id}`)).json).toMatchObject({
          id,
          status: 'open',
        });
      } finally {
        await second.close();
      }
      expect(await stored(first, id)).toBe(true);
      await first.close();
      expect(await stored(first, id)).toBe(false);
    } finally {
      await first.close();
    }
  });
});
