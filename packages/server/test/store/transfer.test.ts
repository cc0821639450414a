/**
 * Export and import on the store layer (src/store/transfer/): real SQLite files and real
 * PostgreSQL schemas (TEST_DATABASE_URL or BUS_TEST_DATABASE_URL; one schema per store, all dropped at the end;
 * a database that cannot be reached fails the tests, never skips them). The CLI test
 * (packages/cli/test/transfer.test.ts) runs the same through the `intent-bus` binary.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { resolveConfig, type Config } from '../../src/config.js';
import { hashKey } from '../../src/http/auth.js';
import { PgStore } from '../../src/store/postgres/pg-store.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/store.js';
import {
  ImportConflictError,
  RECORD_TYPES,
  TABLES,
  TransferFormatError,
  type TransferBackend,
} from '../../src/store/transfer/format.js';
import { openTransfer, runImport, writeExport } from '../../src/store/transfer/transfer.js';
import { PG_ADMIN_URL as URL, pgQuery } from '../pg-database.js';
import { claimBy, intent } from './contract.js';
import { openPeer } from './drivers.js';

const RUN = `ib_xfer_${process.pid}_${randomBytes(4).toString('hex')}`;
const T0 = 1_800_000_000_000;
const BIG_RESULT = '{"n":12345678901234567890,"f":1.0,"s":"é\\u2028"}';
const BIG_KV = '{"big":-98765432109876543210.5e3}';

const schemas: string[] = [];
const dirs: string[] = [];
const open: Array<{ close(): Promise<void> }> = [];

const checkReachable = (): Promise<unknown> => pgQuery('SELECT 1');

const adminQuery = pgQuery;

afterEach(async () => {
  for (const o of open.splice(0)) await o.close();
});

afterAll(async () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  if (schemas.length === 0) return;
  for (const s of schemas)
    await adminQuery(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(s)} CASCADE`);
});

type Kind = 'sqlite' | 'postgres';

/** A fresh, empty place for a store: a new SQLite file or a new PostgreSQL schema. */
async function place(kind: Kind): Promise<Config> {
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'intent-bus-xfer-'));
    dirs.push(dir);
    return resolveConfig({ BUS_DB_PATH: join(dir, 'bus.db') });
  }
  await checkReachable();
  const schema = `${RUN}_${schemas.length}`;
  schemas.push(schema);
  return resolveConfig({ BUS_DATABASE_URL: URL, BUS_DATABASE_SCHEMA: schema });
}

async function storeAt(config: Config): Promise<Store> {
  const s: Store =
    config.databaseUrl != null
      ? new PgStore({ connectionString: URL, schema: config.databaseSchema! })
      : new SqliteStore({ path: config.dbPath });
  open.push(s);
  await s.migrate();
  return s;
}

async function backendAt(config: Config, purpose: 'export' | 'import'): Promise<TransferBackend> {
  const b = await openTransfer(config, purpose);
  open.push(b);
  return b;
}

async function exportText(
  config: Config,
  options: { namespace?: string; pageSize?: number } = {},
): Promise<string> {
  const parts: string[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, done) {
      parts.push(chunk.toString('utf8'));
      done();
    },
  });
  const b = await backendAt(config, 'export');
  await writeExport(b, out, { ...options, now: new Date(T0) });
  await b.close();
  return parts.join('');
}

async function importText(config: Config, text: string) {
  const b = await backendAt(config, 'import');
  try {
    return await runImport(b, Readable.from([text]));
  } finally {
    await b.close();
  }
}

/** The lines of an export without its header (which names the store it came from). */
const body = (text: string): string[] => text.split('\n').slice(1);

/** What the fixture left where, for the checks after a move. */
interface Fixture {
  ids: Record<string, string>;
  claimToken: string;
}

/**
 * A store holding one of everything: intents in every state and with every routing field,
 * two namespaces, keys with usage, KV entries (one expired), an idempotency record and a
 * nonce.
 */
async function populate(s: Store): Promise<Fixture> {
  const ids: Record<string, string> = {};
  const put = async (name: string, over: Parameters<typeof intent>[0] = {}) => {
    const i = intent({ goal: name, ...over });
    const out = await s.intentPublish(i, null, null);
    if (out.kind !== 'created') throw new Error(out.kind);
    ids[name] = i.id;
    return i;
  };
  const claim = async (goal: string, token: string, over = {}) => {
    const row = await s.intentClaim(claimBy({ goal, token, workerId: 'w-1', ...over }));
    if (!row) throw new Error(`nothing to claim for ${goal}`);
    return { id: row.id, token, keyId: 'kid_a', now: T0 + 1000 };
  };
  await s.keyCreate({
    keyId: 'kid_a',
    keyHash: hashKey('tk_alice'),
    prefix: 'tk_alic',
    owner: 'alice',
    createdAt: T0 - 5000,
    lastUsedAt: T0 - 10,
    requests: 42,
  });
  await s.keyCreate({
    keyId: 'kid_b',
    keyHash: hashKey('tk_bob'),
    prefix: 'tk_bob',
    // U+0000 and U+E000, which PostgreSQL text keeps only through PgStore's escaping.
    owner: 'bob "the\u0000builder" \uE000 \uE0001',
    createdAt: T0 - 4000,
    lastUsedAt: null,
    requests: 0,
  });
  await put('open', { payload: '{"n":98765432109876543210}' });
  await put('delayed', { runAt: T0 + 3_600_000, expiresAt: T0 + 90_000_000, priority: 7 });
  await put('public', { visibility: 'public', namespace: 'other', publisher: 'kid_b' });
  await put('targeted', { targetWorker: 'w-2' });
  await put('capable', { requiredCapability: 'gpu', backoffBase: 1.5, ttl: 0.25 });
  await put('claimed');
  const token = `tok_${randomBytes(8).toString('hex')}`;
  await claim('claimed', token);
  await put('fulfilled');
  await s.intentFulfill(await claim('fulfilled', 'tf'), BIG_RESULT, 'json');
  await put('text');
  await s.intentFulfill(await claim('text', 'tt'), '"plain text"', 'text');
  await put('dead', { maxAttempts: 1 });
  await s.intentFail(await claim('dead', 'td'), 'boom: disk full', () => 0.5);
  await put('retrying', { maxAttempts: 3 });
  await s.intentFail(await claim('retrying', 'tr'), 'first try', () => 0.25);
  await put('cancelled', { namespace: 'other' });
  await s.intentCancel(ids.cancelled!, T0 + 2000);
  await put('expiring', { expiresAt: T0 + 10 });
  await s.intentsExpire(T0 + 20, 10);
  const idem = intent({ goal: 'idem' });
  await s.intentPublish(
    idem,
    { keyId: 'kid_a', key: 'publish-1', bodyHash: 'h1', notBefore: 0 },
    null,
  );
  ids.idem = idem.id;
  await s.kvSet('kid_a', 'config', BIG_KV, T0 + 600_000);
  await s.kvSet('main', 'gone\u0000', '"expired"', T0 - 1);
  await s.nonceRecord('kid_a', 'nonce-1', T0 + 300_000, T0, 1_000_000);
  // A schedule, and one of its runs (an intent naming its schedule and tick).
  await s.schedulePut(
    {
      owner: 'kid_a',
      name: 'nightly',
      cron: '0 3 * * *',
      every: null,
      timezone: 'Europe/Berlin',
      intent: '{"goal":"backup","payload":{"n":12345678901234567890}}',
      overlap: 'skip',
      catchUp: 'all',
      paused: null,
      deadline: 60,
      onFailure: null,
    },
    T0,
  );
  await put('run', { schedule: 'nightly', scheduledFor: T0 - 60_000 });
  // Its run missed its deadline: the failure is carried, so no alert is published again.
  const run = await s.intentGet(ids.run!);
  const failed = await s.scheduleRunFailed(run!, 'missed', T0, () => {
    throw new Error('no alert: the schedule has no on_failure');
  });
  if (!failed.recorded) throw new Error('the failure was not recorded');
  // A worker of the fleet, told to stop.
  await s.workersSave([
    {
      keyId: 'kid_a',
      workerId: 'phone-1',
      capabilities: '["gpu"]',
      asks: '[["default","resize",null]]',
      userAgent: 'intent-bus-cli/0.1.0',
      address: '192.0.2.7',
      firstSeen: T0 - 5000,
      lastSeen: T0,
      fulfilled: 3,
      failed: 1,
      lastError: 'exit 2',
    },
  ]);
  await s.workerCommandSet('phone-1', 'kid_a', 'stop');
  // Flow controls: a goal's and a whole namespace's.
  await s.flowPut('a', 'backup', { paused: true, rate: { limit: 5, per: 10 } }, T0);
  await s.flowPut('a', '*', { maxInFlight: 4 }, T0);
  return { ids, claimToken: token };
}

describe('export and import', () => {
  it('carries every column of every table the migrations create', async () => {
    const sqlite = await place('sqlite');
    await (await storeAt(sqlite)).close();
    const db = openPeer(sqlite.dbPath);
    try {
      const tables = (
        db
          .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
          )
          .all() as { name: string }[]
      )
        .map((r) => r.name)
        .filter((n) => n !== 'schema_migrations');
      expect(tables.sort()).toEqual(RECORD_TYPES.map((t) => TABLES[t].table).sort());
      for (const t of RECORD_TYPES) {
        const cols = (
          db.prepare(`PRAGMA table_info(${TABLES[t].table})`).all() as {
            name: string;
          }[]
        ).map((c) => c.name);
        expect(cols, t).toEqual(TABLES[t].columns.map((c) => c.name));
      }
    } finally {
      db.close();
    }

    const pgc = await place('postgres');
    await (await storeAt(pgc)).close();
    const rows = await adminQuery<{ table_name: string; column_name: string }>(
      `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = $1
       ORDER BY table_name, ordinal_position`,
      [pgc.databaseSchema],
    );
    const byTable = new Map<string, string[]>();
    for (const r of rows) {
      if (r.table_name === 'schema_migrations') continue;
      byTable.set(r.table_name, [...(byTable.get(r.table_name) ?? []), r.column_name]);
    }
    expect([...byTable.keys()].sort()).toEqual(RECORD_TYPES.map((t) => TABLES[t].table).sort());
    for (const t of RECORD_TYPES) {
      expect(byTable.get(TABLES[t].table), t).toEqual(TABLES[t].columns.map((c) => c.name));
    }
  });

  it('moves SQLite → PostgreSQL → SQLite with every record byte for byte', async () => {
    const src = await place('sqlite');
    const fixture = await populate(await storeAt(src));
    const a = await exportText(src);

    const lines = a.trimEnd().split('\n');
    expect(JSON.parse(lines[0]!)).toEqual({
      format: 'intent-bus-export',
      version: 1,
      bus_version: '0.1.0',
      protocol_version: '2.1',
      exported_at: new Date(T0).toISOString(),
      store: 'sqlite',
      namespace: null,
    });
    expect(JSON.parse(lines.at(-1)!)).toEqual({
      type: 'end',
      counts: {
        key: 2,
        intent: 14,
        idempotency: 1,
        kv: 2,
        nonce: 1,
        schedule: 1,
        run_failure: 1,
        worker: 1,
        flow: 2,
        flow_claim: 0,
      },
    });
    // Results and values are the stored text, carried as strings: nothing is rounded.
    expect(a).toContain(JSON.stringify(BIG_RESULT));
    expect(a).toContain(JSON.stringify(BIG_KV));
    const dead = lines.map((l) => JSON.parse(l)).find((r) => r.id === fixture.ids.dead);
    expect(dead).toMatchObject({
      type: 'intent',
      status: 'dead',
      dead_reason: 'boom: disk full',
      error: 'boom: disk full',
      claim_attempts: 1,
    });

    const mid = await place('postgres');
    const imported = await importText(mid, a);
    expect(imported.imported).toEqual({
      key: 2,
      intent: 14,
      idempotency: 1,
      kv: 2,
      nonce: 1,
      schedule: 1,
      run_failure: 1,
      worker: 1,
      flow: 2,
      flow_claim: 0,
    });
    expect(imported.identical).toBe(0);
    expect(imported.header.store).toBe('sqlite');
    const b = await exportText(mid);
    expect(JSON.parse(b.split('\n')[0]!).store).toBe('postgres');
    expect(body(b)).toEqual(body(a));

    const back = await place('sqlite');
    await importText(back, b);
    expect(body(await exportText(back))).toEqual(body(a));

    // The rows read through the store are the same on both sides.
    const from = await storeAt(src);
    const to = await storeAt(mid);
    for (const id of Object.values(fixture.ids)) {
      expect(await to.intentGet(id), id).toEqual(await from.intentGet(id));
    }
    expect(await to.keyList()).toEqual(await from.keyList());
  });

  it('lets the bus go on where the source stopped', async () => {
    const src = await place('sqlite');
    const fixture = await populate(await storeAt(src));
    const text = await exportText(src);
    const dst = await place('postgres');
    await importText(dst, text);
    const s = await storeAt(dst);
    const { ids } = fixture;

    // The claimed intent keeps its lease: its worker fulfils it with its token.
    const done = await s.intentFulfill(
      { id: ids.claimed!, token: fixture.claimToken, keyId: 'kid_a', now: T0 + 5000 },
      '{"after":"move"}',
      'json',
    );
    expect(done).toMatchObject({ status: 'fulfilled', workerId: 'w-1', claimAttempts: 1 });
    expect((await s.intentGet(ids.fulfilled!))?.result).toBe(BIG_RESULT);
    // The tester key is found by the hash of its key.
    expect(await s.keyByHash(hashKey('tk_alice'))).toMatchObject({
      keyId: 'kid_a',
      requests: 42,
    });
    expect(await s.kvGet('kid_a', 'config', T0)).toBe(BIG_KV);
    expect(await s.kvGet('main', 'gone\u0000', T0)).toBeNull();
    expect(await s.kvGet('main', 'gone\u0000', T0 - 2)).toBe('"expired"');
    // A retried publish answers the original intent; a spent nonce stays spent.
    const again = await s.intentPublish(
      intent({ goal: 'idem' }),
      { keyId: 'kid_a', key: 'publish-1', bodyHash: 'h1', notBefore: 0 },
      null,
    );
    expect(again).toMatchObject({ kind: 'replay', status: 201 });
    expect(JSON.parse((again as { body: string }).body).id).toBe(ids.idem);
    expect(await s.nonceRecord('kid_a', 'nonce-1', T0 + 300_000, T0 + 1, 1_000_000)).toBe('replay');
    // Routing and timing are kept: the delayed one is not due, the targeted one waits for
    // its worker, the capable one for its capability, the retried one for its backoff.
    const claimable = async (over: Parameters<typeof claimBy>[0]) =>
      (await s.intentClaim(claimBy(over)))?.goal ?? null;
    expect(await claimable({ goal: 'delayed', now: T0 + 3_599_999 })).toBeNull();
    expect(await claimable({ goal: 'delayed', now: T0 + 3_600_000 })).toBe('delayed');
    expect(await claimable({ goal: 'targeted', workerId: 'w-1' })).toBeNull();
    expect(await claimable({ goal: 'targeted', workerId: 'w-2' })).toBe('targeted');
    expect(await claimable({ goal: 'capable' })).toBeNull();
    expect(await claimable({ goal: 'capable', capabilities: ['gpu'] })).toBe('capable');
    const retry = await s.intentGet(ids.retrying!);
    expect(retry).toMatchObject({ status: 'open', claimAttempts: 1, error: 'first try' });
    expect(await claimable({ goal: 'retrying', now: retry!.runAt - 1 })).toBeNull();
    expect(await claimable({ goal: 'retrying', now: retry!.runAt })).toBe('retrying');
    expect((await s.deadList(10, null)).map((r) => r.deadReason).sort()).toEqual([
      'boom: disk full',
      'cancelled',
      'expired',
    ]);
  });

  it('imports a file written before schedules: no schedule columns, records or count', async () => {
    const src = await place('sqlite');
    const fixture = await populate(await storeAt(src));
    const old = (await exportText(src))
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((r) => r.type !== 'schedule' && r.type !== 'run_failure')
      .map((r) => {
        if (r.type === 'intent') {
          delete r.schedule;
          delete r.scheduled_for;
        }
        if (r.type === 'end') {
          delete r.counts.schedule;
          delete r.counts.run_failure;
        }
        return JSON.stringify(r);
      })
      .join('\n');
    expect(old).not.toContain('schedule');
    const dst = await place('postgres');
    const out = await importText(dst, `${old}\n`);
    expect(out.imported).toMatchObject({ intent: 14, schedule: 0, run_failure: 0, worker: 1 });
    const s = await storeAt(dst);
    expect(await s.intentGet(fixture.ids.run!)).toMatchObject({
      schedule: null,
      scheduledFor: null,
    });
    expect(await s.scheduleList('kid_a')).toEqual([]);
  });

  it('moves PostgreSQL → SQLite', async () => {
    const src = await place('postgres');
    const fixture = await populate(await storeAt(src));
    const a = await exportText(src);
    expect(JSON.parse(a.split('\n')[0]!).store).toBe('postgres');
    const dst = await place('sqlite');
    await importText(dst, a);
    expect(body(await exportText(dst))).toEqual(body(a));
    const s = await storeAt(dst);
    expect((await s.intentGet(fixture.ids.fulfilled!))?.result).toBe(BIG_RESULT);
    expect(
      await s.intentFulfill(
        { id: fixture.ids.claimed!, token: fixture.claimToken, keyId: 'kid_a', now: T0 + 5000 },
        '1',
        'json',
      ),
    ).toMatchObject({ status: 'fulfilled' });
  });

  it.each(['sqlite', 'postgres'] as const)(
    'reads pages by primary key: any page size gives the same file (%s)',
    async (kind) => {
      const src = await place(kind);
      const s = await storeAt(src);
      await populate(s);
      for (let i = 0; i < 5; i++) {
        await s.kvSet('kid_b', `k${i}`, `${i}`, T0 + 1000);
        await s.nonceRecord('kid_b', `n${i}`, T0 + 1000, T0, 1_000_000);
        await s.intentPublish(
          intent({ goal: 'more' }),
          { keyId: 'kid_b', key: `i${i}`, bodyHash: 'h', notBefore: 0 },
          null,
        );
      }
      const whole = await exportText(src);
      for (const pageSize of [1, 2, 3]) expect(await exportText(src, { pageSize })).toBe(whole);
    },
  );

  it.each(['sqlite', 'postgres'] as const)(
    'exports one snapshot while the store keeps changing (%s)',
    async (kind) => {
      const src = await place(kind);
      const s = await storeAt(src);
      for (let i = 0; i < 6; i++) await s.intentPublish(intent({ goal: 'before' }), null, null);
      const b = await backendAt(src, 'export');
      const records = b.exportRecords(null, 2);
      const first = await records.next();
      expect(first.value).toMatchObject({ type: 'intent' });
      // Written after the snapshot began, on another connection: not in this export.
      for (let i = 0; i < 4; i++) await s.intentPublish(intent({ goal: 'after' }), null, null);
      await s.keyCreate({
        keyId: 'kid_late',
        keyHash: hashKey('tk_late'),
        prefix: 'tk_late',
        owner: 'late',
        createdAt: T0,
        lastUsedAt: null,
        requests: 0,
      });
      await s.intentCancel(first.value!.row.id as string, T0);
      const rest = [];
      for await (const r of records) rest.push(r);
      const all = [first.value!, ...rest];
      expect(all).toHaveLength(6);
      expect(all.every((r) => r.type === 'intent' && r.row.goal === 'before')).toBe(true);
      expect(all[0]!.row.status).toBe('open');
      // A new export sees them.
      expect(JSON.parse((await exportText(src)).trimEnd().split('\n').at(-1)!).counts).toEqual({
        key: 1,
        intent: 10,
        idempotency: 0,
        kv: 0,
        nonce: 0,
        schedule: 0,
        run_failure: 0,
        worker: 0,
        flow: 0,
        flow_claim: 0,
      });
    },
  );

  it('exports one namespace: its intents and their idempotency records, no keys, KV or nonces', async () => {
    const src = await place('sqlite');
    const s = await storeAt(src);
    const { ids } = await populate(s);
    const text = await exportText(src, { namespace: 'other' });
    const lines = text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines[0].namespace).toBe('other');
    expect(
      lines
        .slice(1, -1)
        .map((r) => [r.type, r.id])
        .sort(),
    ).toEqual(
      [
        ['intent', ids.cancelled],
        ['intent', ids.public],
      ].sort(),
    );
    expect(lines.at(-1).counts).toEqual({
      key: 0,
      intent: 2,
      idempotency: 0,
      kv: 0,
      nonce: 0,
      schedule: 0,
      run_failure: 0,
      worker: 0,
      flow: 0,
      flow_claim: 0,
    });

    const def = (await exportText(src, { namespace: 'default' })).trimEnd().split('\n');
    const types = def.slice(1, -1).map((l) => JSON.parse(l).type);
    expect(types.filter((t) => t === 'intent')).toHaveLength(12);
    expect(types.filter((t) => t === 'idempotency')).toHaveLength(1);
    expect(types.filter((t) => t !== 'intent' && t !== 'idempotency')).toEqual([]);

    // The backup use: purge a namespace, import its file back. The idempotency record the
    // purge left behind is identical, so it is not a collision.
    const defText = `${def.join('\n')}\n`;
    await s.intentsPurge('default');
    const back = await importText(src, defText);
    expect(back.imported).toMatchObject({ intent: 12, idempotency: 0 });
    expect(back.identical).toBe(1);
    expect((await s.intentGet(ids.claimed!))?.status).toBe('claimed');

    // The other namespace into a PostgreSQL bus that already has other intents and keys.
    const dst = await place('postgres');
    const d = await storeAt(dst);
    await d.intentPublish(intent({ goal: 'already there' }), null, null);
    await d.keyCreate({
      keyId: 'kid_a',
      keyHash: hashKey('tk_alice'),
      prefix: 'tk_alic',
      owner: 'alice',
      createdAt: T0,
      lastUsedAt: null,
      requests: 0,
    });
    expect((await importText(dst, text)).imported.intent).toBe(2);
    expect((await d.intentGet(ids.public!))?.namespace).toBe('other');
  });

  describe.each(['sqlite', 'postgres'] as const)('refusals into %s, nothing written', (kind) => {
    /** An export of 2500 intents, so that PostgreSQL writes several batches first. */
    async function largeExport(): Promise<string> {
      const src = await place('sqlite');
      const s = await storeAt(src);
      await populate(s);
      await Promise.all(
        Array.from({ length: 2500 }, (_, i) =>
          s.intentPublish(intent({ goal: 'bulk', payload: `{"i":${i}}` }), null, null),
        ),
      );
      return exportText(src);
    }
    let cached: Promise<string> | undefined;
    const source = (): Promise<string> => (cached ??= largeExport());

    async function expectEmpty(config: Config): Promise<void> {
      const last = (await exportText(config)).trimEnd().split('\n').at(-1)!;
      expect(JSON.parse(last).counts).toEqual({
        key: 0,
        intent: 0,
        idempotency: 0,
        kv: 0,
        nonce: 0,
        schedule: 0,
        run_failure: 0,
        worker: 0,
        flow: 0,
        flow_claim: 0,
      });
    }

    async function refused(text: string, line: number, message: RegExp): Promise<void> {
      const dst = await place(kind);
      const err = await importText(dst, text).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(TransferFormatError);
      expect((err as TransferFormatError).line).toBe(line);
      expect((err as Error).message).toMatch(message);
      await expectEmpty(dst);
    }

    const edit = (text: string, fn: (lines: string[]) => void): string => {
      const lines = text.split('\n');
      lines.pop();
      fn(lines);
      return `${lines.join('\n')}\n`;
    };
    /** The 1-based line of the n-th record from the end (1: the last record). */
    const fromEnd = (text: string, n: number): number => text.split('\n').length - 2 - n + 1;

    it('a file cut after a line, or inside one', async () => {
      const text = await source();
      const lines = text.split('\n').length - 1;
      await refused(
        edit(text, (l) => l.splice(-1)),
        0,
        new RegExp(`ends at line ${lines - 1} without its trailer line.*truncated`),
      );
      const cut = text.slice(0, text.length - 200);
      expect(cut.endsWith('\n')).toBe(false);
      await refused(cut, cut.split('\n').length, /not JSON/);
    });

    it('a corrupted line, a wrong type, a missing or unknown field, an impossible state', async () => {
      const text = await source();
      const at = fromEnd(text, 100);
      const change = (fn: (r: Record<string, unknown>) => unknown) =>
        edit(text, (l) => {
          l[at - 1] = JSON.stringify(fn(JSON.parse(l[at - 1]!)) ?? null);
        });
      await refused(
        edit(text, (l) => (l[at - 1] = l[at - 1]!.slice(0, -1))),
        at,
        /not JSON/,
      );
      await refused(
        change((r) => ({ ...r, type: 'intnet' })),
        at,
        /unknown type "intnet"/,
      );
      await refused(
        change(({ run_at: _, ...r }) => r),
        at,
        /intent: missing field "run_at"/,
      );
      await refused(
        change((r) => ({ ...r, run_at: '1800000000000' })),
        at,
        /"run_at" must be an integer >= 0/,
      );
      await refused(
        change((r) => ({ ...r, payload: '{"cut": ' })),
        at,
        /"payload" must be a string of JSON text/,
      );
      await refused(
        change((r) => ({ ...r, color: 'red' })),
        at,
        /unknown field "color"/,
      );
      await refused(
        change((r) => ({ ...r, status: 'claimed', claim_token: null })),
        at,
        /claimed without claim_token/,
      );
      await refused(
        change(() => []),
        at,
        /not a JSON object/,
      );
      await refused(
        edit(text, (l) => (l[at - 1] = '')),
        at,
        /empty line/,
      );
    });

    it('a trailer that does not match, a line after it, a foreign or newer header', async () => {
      const text = await source();
      const lines = text.split('\n').length - 1;
      await refused(
        // The last intent record goes (the records of other types follow it).
        edit(text, (l) =>
          l.splice(
            l.findLastIndex((x) => x.startsWith('{"type":"intent"')),
            1,
          ),
        ),
        lines - 1,
        /trailer does not match the records \(2514 intent records announced, 2513 found\)/,
      );
      await refused(
        edit(text, (l) => l.push(l[3]!)),
        lines + 1,
        /a line after the trailer line/,
      );
      await refused(
        edit(text, (l) => (l[0] = JSON.stringify({ ...JSON.parse(l[0]!), version: 2 }))),
        1,
        /export format version 2; this intent-bus reads version 1/,
      );
      await refused(
        edit(text, (l) => (l[0] = '{"hello":"world"}')),
        1,
        /not an intent-bus export/,
      );
      await refused('', 0, /the file is empty/);
    });

    it('a record the target already holds, or one that is twice in the file', async () => {
      const text = await source();
      const dst = await place(kind);
      const s = await storeAt(dst);
      // One intent of the file, near its end, is already there.
      const line = JSON.parse(text.split('\n')[fromEnd(text, 20) - 1]!);
      await s.intentPublish(intent({ id: line.id }), null, null);
      const err = await importText(dst, text).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ImportConflictError);
      expect((err as Error).message).toBe(
        `intent ${line.id} is already in the target store (or twice in the file)`,
      );
      const counts = JSON.parse((await exportText(dst)).trimEnd().split('\n').at(-1)!).counts;
      expect(counts).toEqual({
        key: 0,
        intent: 1,
        idempotency: 0,
        kv: 0,
        nonce: 0,
        schedule: 0,
        run_failure: 0,
        worker: 0,
        flow: 0,
        flow_claim: 0,
      });

      // A key whose hash the target holds under another key id collides too.
      const keyed = await place(kind);
      await (
        await storeAt(keyed)
      ).keyCreate({
        keyId: 'kid_other',
        keyHash: hashKey('tk_bob'),
        prefix: 'tk_bob',
        owner: 'bob',
        createdAt: T0,
        lastUsedAt: null,
        requests: 0,
      });
      await expect(importText(keyed, text)).rejects.toThrow(/^key kid_b is already in/);

      // The same file twice: the second import is refused and changes nothing.
      const twice = await place(kind);
      await importText(twice, text);
      const before = await exportText(twice);
      await expect(importText(twice, text)).rejects.toBeInstanceOf(ImportConflictError);
      expect(body(await exportText(twice))).toEqual(body(before));

      // A record twice in one file.
      const dup = edit(text, (l) => {
        const end = l.pop()!;
        l.push(l[3]!);
        const t = JSON.parse(end);
        t.counts.intent++;
        l.push(JSON.stringify(t));
      });
      const fresh = await place(kind);
      await expect(importText(fresh, dup)).rejects.toBeInstanceOf(ImportConflictError);
      await expectEmpty(fresh);
    });
  });
});
