/**
 * The `serve` process on PostgreSQL (BUS_DATABASE_URL), one node: the protocol over HTTP,
 * a long poll, and every acknowledged intent kept across SIGKILL. Each run gets a database
 * of its own, dropped at the end. A database that cannot be reached fails the test.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApi } from './helpers.js';
import { createDatabase, type TestDatabase } from './pg-database.js';
import {
  runToExit,
  serverEnv,
  startProcess,
  type ServerProcess,
  claimAll,
  expectUnavailable,
  publishMany,
} from './process-helpers.js';

/**
 * A TCP relay to the database that a test can cut (every connection dropped, new ones
 * refused) and restore: the database becomes unreachable without touching the cluster.
 */
async function relay(
  target: URL,
): Promise<{ port: number; cut(): void; restore(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let down = false;
  const server: Server = createServer((client) => {
    if (down) return client.destroy();
    const upstream = connect(Number(target.port || 5432), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    cut() {
      down = true;
      for (const s of sockets) s.destroy();
    },
    restore() {
      down = false;
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('the serve process on PostgreSQL', () => {
  let db: TestDatabase;
  let url: URL;
  let env: NodeJS.ProcessEnv;
  const running: ServerProcess[] = [];
  beforeAll(async () => {
    db = await createDatabase('ib_proc');
    url = new URL(db.url);
    env = serverEnv('/nonexistent/unused.db', { BUS_DATABASE_URL: db.url, BUS_LOG_LEVEL: 'info' });
  });
  afterAll(async () => {
    for (const p of running) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await db?.drop();
  });

  it('speaks the protocol, wakes a long poll, and keeps every acknowledged intent across SIGKILL', async () => {
    const first = await startProcess(env);
    running.push(first);
    const api = makeApi(first.url);
    // A long poll woken by a publish, then fulfilled and read back.
    const waiting = api('POST', '/claim?goal=pg.first&wait=10');
    await new Promise((r) => setTimeout(r, 200));
    const p = await api('POST', '/intent', { body: { goal: 'pg.first', payload: { n: 1 } } });
    expect(p.status).toBe(201);
    const c = await waiting;
    expect(c.status).toBe(200);
    expect(c.json).toMatchObject({ id: p.json.id, payload: { n: 1 } });
    // A number past 2^53 comes back exactly as sent (stored as text, not re-serialised).
    const f = await api('POST', `/fulfill/${c.json.id}`, {
      raw: `{"claim_token":"${c.json.claim_token}","result":{"ok":12345678901234567890}}`,
      headers: { 'content-type': 'application/json' },
    });
    expect(f.status).toBe(200);
    const r = await api('GET', `/result/${c.json.id}`);
    expect(r.json).toMatchObject({ status: 'fulfilled' });
    expect(r.text).toContain('12345678901234567890');

    const published = await publishMany(api, 'pg.durable', 50);
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');

    const second = await startProcess(env);
    running.push(second);
    const api2 = makeApi(second.url);
    const claimed = await claimAll(api2, 'pg.durable');
    expect(claimed).toEqual(published);
    const health = await api2('GET', '/health');
    expect(health.json).toMatchObject({ ok: true });
  });

  it('answers 503 with Retry-After while the database is unreachable, and recovers by itself', async () => {
    const link = await relay(url);
    try {
      const via = new URL(url);
      via.hostname = '127.0.0.1';
      via.port = String(link.port);
      const p = await startProcess({ ...env, BUS_DATABASE_URL: via.toString() });
      running.push(p);
      const api = makeApi(p.url);
      expect(
        (await api('POST', '/intent', { body: { goal: 'pg.outage', payload: {} } })).status,
      ).toBe(201);

      link.cut();
      await expectUnavailable(api, 'pg.outage');
      // Through a few housekeeping passes (the lease sweeper runs every second).
      await new Promise((r) => setTimeout(r, 2500));
      expect(p.child.exitCode).toBeNull();

      link.restore();
      let claimed: { status: number } = { status: 0 };
      for (let i = 0; i < 50 && claimed.status !== 200; i++) {
        claimed = await api('POST', '/claim?goal=pg.outage');
        if (claimed.status !== 200) await new Promise((r) => setTimeout(r, 200));
      }
      expect(claimed.status).toBe(200);
      expect((await api('GET', '/health')).status).toBe(200);
    } finally {
      await link.close();
    }
  });

  it('refuses to start on a database it cannot reach, naming BUS_DATABASE_URL only', async () => {
    const out = await runToExit({
      ...env,
      BUS_DATABASE_URL: 'postgres://bus:s3cret-pass@127.0.0.1:1/nowhere',
    });
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain('BUS_DATABASE_URL');
    expect(out.stderr).not.toContain('s3cret-pass');
  });
});
