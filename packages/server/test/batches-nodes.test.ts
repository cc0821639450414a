/**
 * Batches [ext] (issue 21) across two `serve` processes on one PostgreSQL database: the same
 * batch with idempotency keys sent to both nodes at once publishes each intent once; claims
 * of max=N on both nodes at once never hold more than a goal's max_in_flight; and fulfils
 * many on the other node end every intent exactly once.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApi, type Api } from './helpers.js';
import { createDatabase, type TestDatabase } from './pg-database.js';
import { serverEnv, startProcess, type ServerProcess } from './process-helpers.js';

const MAX_IN_FLIGHT = 7;
const JOBS = 60;

let db: TestDatabase;
let nodes: ServerProcess[] = [];
let apis: Api[] = [];
let sql: pg.Pool;

beforeAll(async () => {
  db = await createDatabase('ib_batch');
  const env = serverEnv('/nonexistent/unused.db', {
    BUS_DATABASE_URL: db.url,
    BUS_LOG_LEVEL: 'info',
  });
  nodes = await Promise.all([startProcess(env), startProcess(env)]);
  apis = nodes.map((n) => makeApi(n.url));
  sql = new pg.Pool({ connectionString: db.url, max: 2 });
}, 60_000);

afterAll(async () => {
  for (const p of nodes) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  await sql?.end();
  await db?.drop();
});

interface Claimed {
  id: string;
  claim_token: string;
}

describe('batches on two PostgreSQL nodes', () => {
  it('publish once per key, claim within max_in_flight, fulfil each once', async () => {
    const ns = 'bn';
    const intents = Array.from({ length: JOBS }, (_, i) => ({
      goal: 'g',
      namespace: ns,
      payload: { i },
      idempotency_key: `bn-${i}`,
    }));
    const [a, b] = await Promise.all(
      apis.map((api) => api('POST', '/intents', { body: { intents } })),
    );
    expect(a!.status, a!.text).toBe(200);
    expect(b!.status, b!.text).toBe(200);
    const ids = (r: typeof a) => r!.json.results.map((x: { body: { id: string } }) => x.body.id);
    expect(ids(b)).toEqual(ids(a));
    const { rows } = await sql.query(
      'SELECT count(*)::int AS n FROM intents WHERE namespace = $1',
      [ns],
    );
    expect(rows[0].n).toBe(JOBS);

    const put = await apis[0]!('PUT', `/admin/flow/${ns}/g`, {
      admin: true,
      body: { max_in_flight: MAX_IN_FLIGHT },
    });
    expect(put.status, put.text).toBe(200);
    // Let both nodes read the control (their copy is read again within a second).
    await new Promise((r) => setTimeout(r, 1200));

    const fulfilled = new Map<string, number>();
    for (let round = 0; fulfilled.size < JOBS && round < 50; round++) {
      // Four claims of max=10 at once, two on each node.
      const answers = await Promise.all(
        [0, 1, 0, 1].map((n) => apis[n]!('POST', `/claim?namespace=${ns}&goal=g&max=10`)),
      );
      const claimed: Claimed[] = answers.flatMap((r) => (r.status === 200 ? r.json : []));
      expect(claimed.length).toBeLessThanOrEqual(MAX_IN_FLIGHT);
      const inFlight = await sql.query(
        "SELECT count(*)::int AS n FROM intents WHERE namespace = $1 AND status = 'claimed'",
        [ns],
      );
      expect(inFlight.rows[0].n).toBeLessThanOrEqual(MAX_IN_FLIGHT);
      if (claimed.length === 0) continue;
      // Ended on the other node, one stale token among them.
      const items = claimed.map((c) => ({ id: c.id, claim_token: c.claim_token, result: 1 }));
      items.push({ id: claimed[0]!.id, claim_token: 'stale', result: 1 });
      const done = await apis[round % 2 === 0 ? 1 : 0]!('POST', '/fulfill', { body: { items } });
      expect(done.status, done.text).toBe(200);
      const statuses = done.json.results.map((r: { status: number }) => r.status);
      expect(statuses).toEqual([...claimed.map(() => 200), 404]);
      for (const c of claimed) fulfilled.set(c.id, (fulfilled.get(c.id) ?? 0) + 1);
    }
    expect(fulfilled.size).toBe(JOBS);
    expect([...fulfilled.values()].every((n) => n === 1)).toBe(true);
    const end = await sql.query(
      "SELECT count(*)::int AS n FROM intents WHERE namespace = $1 AND status = 'fulfilled'",
      [ns],
    );
    expect(end.rows[0].n).toBe(JOBS);
  }, 60_000);
});
