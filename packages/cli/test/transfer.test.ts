/**
 * `intent-bus export` and `intent-bus import` as a person runs them: the real binary
 * (packages/cli/bin/intent-bus.js) as a child process, its output redirected by a shell,
 * against real SQLite files and real PostgreSQL schemas (BUS_TEST_DATABASE_URL; one schema per store, dropped at the end; a database that cannot
 * be reached fails the tests, never skips them), and `intent-bus serve` on the result,
 * spoken to over HTTP. The store-level cases are in
 * packages/server/test/store/transfer.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  DASHBOARD_PASSWORD,
  MAIN_KEY,
  makeApi,
  type Api,
} from '../../server/test/helpers.js';
import { PG_ADMIN_URL as PG_URL, pgQuery } from '../../server/test/pg-database.js';
import {
  ROOT,
  baseEnv,
  cli,
  ensureBuilt,
  freePort,
  killAll,
  removeTemps,
  settle,
  sleep,
  spawnProc,
  startCli,
  tempDir,
  usedFlags,
  type Finished,
} from './cli-helpers.js';

const RUN = `ib_cli_xfer_${process.pid}_${randomBytes(4).toString('hex')}`;
const BIN = join(ROOT, 'packages', 'cli', 'bin', 'intent-bus.js');
const BIG = '12345678901234567890';

const schemas: string[] = [];

afterEach(killAll);
afterAll(async () => {
  removeTemps();
  for (const s of schemas) await pgQuery(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(s)} CASCADE`);
});

/** The environment naming a fresh PostgreSQL schema (checked reachable). */
async function pgEnv(): Promise<Record<string, string>> {
  await pgQuery('SELECT 1');
  const schema = `${RUN}_${schemas.length}`;
  schemas.push(schema);
  return { BUS_DATABASE_URL: PG_URL, BUS_DATABASE_SCHEMA: schema };
}

const sqliteEnv = (): Record<string, string> => ({
  BUS_DB_PATH: join(tempDir('intent-bus-xfer-'), 'bus.db'),
});

const SECRETS = { BUS_SECRET: MAIN_KEY, BUS_ADMIN_SECRET: ADMIN_TOKEN, DASHBOARD_PASSWORD };

/** `intent-bus serve` on the store of `env`; resolves once /health answers. */
async function startServe(env: Record<string, string>) {
  const port = await freePort();
  const p = startCli(['serve', '--port', String(port)], {
    env: baseEnv({ ...SECRETS, BUS_LOG_LEVEL: 'info', ...env }),
    logStdout: true,
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (p.child.exitCode !== null) throw new Error(`serve exited: ${p.stderr()}`);
    const ok = await fetch(`${url}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (i > 200) throw new Error(`serve did not answer: ${p.stderr()}`);
    await sleep(50);
  }
  return {
    api: makeApi(url),
    async stop() {
      p.child.kill('SIGTERM');
      const f = await settle(p);
      expect(f.code, f.stderr).toBe(0);
    },
  };
}

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** `intent-bus export ARGS > FILE` through a shell, the way the README shows it. */
async function exportTo(
  file: string,
  env: Record<string, string>,
  args: string[] = [],
): Promise<Finished> {
  ensureBuilt();
  // Recorded as startCli records the flags of the commands it runs.
  const used = usedFlags.get('export') ?? new Set<string>();
  usedFlags.set('export', used);
  for (const a of args) if (/^--?[a-z]/.test(a)) used.add(a);
  const line = [process.execPath, BIN, 'export', ...args].map(q).join(' ');
  return settle(spawnProc('sh', ['-c', `${line} > ${q(file)}`], { env: baseEnv(env) }), 20_000);
}

/** `intent-bus import FILE ARGS` (the real binary). */
function importFrom(file: string, env: Record<string, string>, args: string[] = []) {
  return cli(['import', file, ...args], { env: baseEnv(env), timeoutMs: 20_000 });
}

/** The lines of an export file without its header (which names the store it came from). */
const recordsOf = (text: string): string[] => text.split('\n').slice(1);
const lastLine = (text: string) => JSON.parse(text.trimEnd().split('\n').at(-1)!);

const ok = (f: Finished): Finished => {
  expect(f.code, `exit ${f.code}\nstdout: ${f.stdout}\nstderr: ${f.stderr}`).toBe(0);
  return f;
};

async function json<T = Record<string, unknown>>(api: Api, ...args: Parameters<Api>) {
  const r = await api(...args);
  expect(r.status, `${args[0]} ${args[1]}: ${r.status} ${r.text}`).toBeLessThan(300);
  return r.json as T;
}

/**
 * A bus with one of everything, built over HTTP: a tester key, intents open, delayed,
 * public in another namespace, targeted, needing a capability, claimed, fulfilled with a
 * big integer, dead with its reason, cancelled, published with an Idempotency-Key, and a
 * KV entry with a TTL.
 */
async function populate(api: Api) {
  const tester = await json<{ api_key: string; key_id: string }>(
    api,
    'POST',
    '/admin/generate_key',
    { admin: true, body: { owner: 'tester' } },
  );
  const key = tester.api_key;
  const publish = async (body: Record<string, unknown>, headers: Record<string, string> = {}) =>
    (await json<{ id: string }>(api, 'POST', '/intent', { key, body, headers })).id;
  const claim = async (goal: string, worker = 'w-1') =>
    json<{ id: string; claim_token: string }>(
      api,
      'POST',
      `/claim?goal=${goal}&worker_id=${worker}`,
      {
        key,
      },
    );
  const ids: Record<string, string> = {};
  ids.open = await publish({ goal: 'open', payload: { n: 1 } });
  ids.later = await publish({ goal: 'later', payload: {}, delay: 3600 });
  ids.public = await publish({
    goal: 'public',
    payload: {},
    visibility: 'public',
    namespace: 'ns2',
  });
  ids.targeted = await publish({ goal: 'targeted', payload: {}, target_worker: 'w-2' });
  ids.gpu = await publish({ goal: 'gpu', payload: {}, required_capability: 'gpu' });
  ids.claimed = await publish({ goal: 'claimed', payload: {} });
  const lease = await claim('claimed');
  ids.done = await publish({ goal: 'done', payload: {} });
  const d = await claim('done');
  await json(api, 'POST', `/fulfill/${ids.done}`, {
    key,
    headers: { 'content-type': 'application/json' },
    raw: `{"claim_token":"${d.claim_token}","result":{"n":${BIG}}}`,
  });
  ids.dies = await publish({ goal: 'dies', payload: {}, max_attempts: 1 });
  const x = await claim('dies');
  await json(api, 'POST', `/fail/${ids.dies}`, {
    key,
    body: { claim_token: x.claim_token, error: 'exploded' },
  });
  ids.cancelled = await publish({ goal: 'cancelled', payload: {} });
  await json(api, 'POST', `/admin/intents/${ids.cancelled}/cancel`, { admin: true });
  ids.idem = await publish({ goal: 'idem', payload: { a: 1 } }, { 'idempotency-key': 'once' });
  await json(api, 'POST', '/set/cfg', {
    key,
    headers: { 'content-type': 'application/json' },
    raw: `{"value":{"big":${BIG}},"ttl":3600}`,
  });
  return { key, keyId: tester.key_id, ids, lease };
}

describe('intent-bus export / import', () => {
  it('moves a bus SQLite → file → PostgreSQL, where it goes on, and back to SQLite', async () => {
    const src = sqliteEnv();
    const busA = await startServe(src);
    const { key, ids, lease } = await populate(busA.api);
    await busA.stop();

    const dir = tempDir();
    const fileA = join(dir, 'a.jsonl');
    const exported = ok(await exportTo(fileA, src));
    expect(exported.stdout).toBe('');
    expect(exported.stderr).toBe(
      `exported 1 key, 10 intents, 1 idempotency record, 1 KV entry, 0 nonces, 0 schedules, 0 run failures, 1 worker, 0 flow controls and 0 rate window claims from SQLite ${src.BUS_DB_PATH}\n`,
    );
    const a = readFileSync(fileA, 'utf8');
    const lines = a
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ format: 'intent-bus-export', version: 1, store: 'sqlite' });
    expect(lastLine(a)).toEqual({
      type: 'end',
      counts: {
        key: 1,
        intent: 10,
        idempotency: 1,
        kv: 1,
        nonce: 0,
        schedule: 0,
        run_failure: 0,
        worker: 1,
        flow: 0,
        flow_claim: 0,
      },
    });
    // The result's big integer is carried as the stored text.
    expect(a).toContain(`"result":"{\\"n\\":${BIG}}"`);
    expect(lines.find((l) => l.id === ids.dies)).toMatchObject({
      status: 'dead',
      dead_reason: 'exploded',
    });
    // The key as the store keeps it: its hash, never the key.
    expect(a).not.toContain(key);
    expect(lines.find((l) => l.type === 'key')).toMatchObject({ owner: 'tester' });

    const dst = await pgEnv();
    const imported = ok(await importFrom(fileA, dst));
    expect(imported.stdout).toBe(
      'imported 1 key, 10 intents, 1 idempotency record, 1 KV entry, 0 nonces, 0 schedules, 0 run failures, 1 worker, 0 flow controls and 0 rate window claims into ' +
        `PostgreSQL (BUS_DATABASE_URL, schema ${dst.BUS_DATABASE_SCHEMA})\n`,
    );
    expect(imported.stdout + imported.stderr).not.toContain(PG_URL);

    // Every record crossed unchanged.
    const fileB = join(dir, 'b.jsonl');
    ok(await exportTo(fileB, dst));
    const b = readFileSync(fileB, 'utf8');
    expect(JSON.parse(b.split('\n')[0]!).store).toBe('postgres');
    expect(recordsOf(b)).toEqual(recordsOf(a));

    // Importing the same file again is refused, and changes nothing.
    const again = await importFrom(fileA, dst);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(
      /^intent-bus import: key kid_[0-9a-f]+ is already in the target store \(or twice in the file\); nothing was imported\n$/,
    );
    const [{ n }] = await pgQuery<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${pg.escapeIdentifier(dst.BUS_DATABASE_SCHEMA!)}.intents`,
    );
    expect(n).toBe(10);

    // The bus on PostgreSQL goes on where the SQLite one stopped.
    const busB = await startServe(dst);
    const api = busB.api;
    expect((await json(api, 'GET', `/status/${ids.open}`, { key })).status).toBe('open');
    const result = await api('GET', `/result/${ids.done}`, { key });
    expect(result.status).toBe(200);
    expect(result.text).toContain(`"result":{"n":${BIG}}`);
    expect((await api('GET', '/get/cfg', { key })).text).toBe(`{"value":{"big":${BIG}}}`);
    // The worker that held the lease fulfils with its token.
    await json(api, 'POST', `/fulfill/${lease.id}`, {
      key,
      body: { claim_token: lease.claim_token, result: 'moved' },
    });
    const dead = await json<Array<{ intent_id: string; reason: string }>>(
      api,
      'GET',
      '/admin/dead',
      {
        admin: true,
      },
    );
    expect(dead.map((r) => [r.intent_id, r.reason]).sort()).toEqual(
      [
        [ids.dies, 'exploded'],
        [ids.cancelled, 'cancelled'],
      ].sort(),
    );
    // A retried publish gets the first answer back, not a second intent.
    const replay = await api('POST', '/intent', {
      key,
      body: { goal: 'idem', payload: { a: 1 } },
      headers: { 'idempotency-key': 'once' },
    });
    expect(replay.status).toBe(201);
    expect((replay.json as { id: string }).id).toBe(ids.idem);
    // Routing crossed: the delayed one is not due, the targeted one waits for its worker.
    expect((await api('POST', '/claim?goal=later', { key })).status).toBe(204);
    expect((await api('POST', '/claim?goal=targeted&worker_id=w-1', { key })).status).toBe(204);
    expect((await api('POST', '/claim?goal=targeted&worker_id=w-2', { key })).status).toBe(200);
    expect((await api('POST', '/claim?goal=gpu&capabilities=gpu', { key })).status).toBe(200);
    expect((await api('POST', '/claim?namespace=ns2&goal=public', {})).status).toBe(200);
    await busB.stop();

    // And back: PostgreSQL → SQLite, every record unchanged.
    const back = sqliteEnv();
    ok(await importFrom(fileB, back));
    const fileC = join(dir, 'c.jsonl');
    ok(await exportTo(fileC, back));
    expect(recordsOf(readFileSync(fileC, 'utf8'))).toEqual(recordsOf(a));
  }, 60_000);

  it('moves through a pipe: export | import -', async () => {
    const src = sqliteEnv();
    const bus = await startServe(src);
    await populate(bus.api);
    await bus.stop();
    const dst = await pgEnv();
    const env = (e: Record<string, string>) =>
      Object.entries(e)
        .map(([k, v]) => `${k}=${q(v)}`)
        .join(' ');
    const node = `${q(process.execPath)} ${q(BIN)}`;
    const f = await settle(
      spawnProc('sh', ['-c', `${env(src)} ${node} export | ${env(dst)} ${node} import - --json`], {
        env: baseEnv(),
      }),
      20_000,
    );
    ok(f);
    expect(JSON.parse(f.stdout)).toEqual({
      imported: {
        key: 1,
        intent: 10,
        idempotency: 1,
        kv: 1,
        nonce: 0,
        schedule: 0,
        run_failure: 0,
        worker: 1,
        flow: 0,
        flow_claim: 0,
      },
      identical: 0,
      store: 'postgres',
    });
  }, 30_000);

  it('exports one namespace with --namespace and -n', async () => {
    const src = sqliteEnv();
    const bus = await startServe(src);
    const { ids } = await populate(bus.api);
    await bus.stop();
    const file = join(tempDir(), 'ns2.jsonl');
    const f = ok(await exportTo(file, src, ['--namespace', 'ns2']));
    expect(f.stderr).toMatch(/^exported 0 keys, 1 intent, .*\(namespace ns2\) from SQLite/);
    const text = readFileSync(file, 'utf8');
    const lines = text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines[0].namespace).toBe('ns2');
    expect(lines.slice(1, -1).map((l) => [l.type, l.id])).toEqual([['intent', ids.public]]);
    const short = join(tempDir(), 'default.jsonl');
    ok(await exportTo(short, src, ['-n', 'default']));
    expect(lastLine(readFileSync(short, 'utf8')).counts).toEqual({
      key: 0,
      intent: 9,
      idempotency: 1,
      kv: 0,
      nonce: 0,
      schedule: 0,
      run_failure: 0,
      worker: 0,
      flow: 0,
      flow_claim: 0,
    });
    // Into a PostgreSQL bus (flags instead of the environment).
    const dst = await pgEnv();
    const imported = ok(
      await cli(
        [
          'import',
          file,
          '--database-url',
          dst.BUS_DATABASE_URL!,
          '--database-schema',
          dst.BUS_DATABASE_SCHEMA!,
          '--json',
        ],
        { env: baseEnv() },
      ),
    );
    expect(JSON.parse(imported.stdout).imported.intent).toBe(1);
    expect(ok(await exportTo(join(tempDir(), 'x'), {}, ['--db', src.BUS_DB_PATH!])).stderr).toMatch(
      /^exported 1 key, 10 intents/,
    );
    const y = join(tempDir(), 'y');
    ok(
      await exportTo(y, {}, [
        '--database-url',
        dst.BUS_DATABASE_URL!,
        '--database-schema',
        dst.BUS_DATABASE_SCHEMA!,
      ]),
    );
    expect(recordsOf(readFileSync(y, 'utf8'))).toEqual(recordsOf(text));
    // And the default namespace into a SQLite file named by --db.
    const db = join(tempDir(), 'ns.db');
    expect(ok(await cli(['import', short, '--db', db], { env: baseEnv() })).stdout).toMatch(
      new RegExp(`^imported 0 keys, 9 intents, 1 idempotency record, .* into SQLite ${db}\n$`),
    );
  }, 30_000);

  it('refuses a truncated file and a corrupted line with exit 1, writing nothing', async () => {
    const src = sqliteEnv();
    const bus = await startServe(src);
    await populate(bus.api);
    await bus.stop();
    const dir = tempDir();
    const file = join(dir, 'full.jsonl');
    ok(await exportTo(file, src));
    const text = readFileSync(file, 'utf8');
    const lines = text.split('\n');

    const truncated = join(dir, 'truncated.jsonl');
    writeFileSync(truncated, text.slice(0, text.lastIndexOf('{"type":"end"')));
    const corrupted = join(dir, 'corrupted.jsonl');
    writeFileSync(
      corrupted,
      [...lines.slice(0, 4), lines[4]!.replace('"status":', '"status";'), ...lines.slice(5)].join(
        '\n',
      ),
    );
    const cut = join(dir, 'cut.jsonl');
    // Cut inside a line, a few characters before its end (half the length may fall exactly
    // on a line's end, which reads as a file without its trailer).
    writeFileSync(cut, text.slice(0, text.indexOf('\n', Math.floor(text.length / 2)) - 3));

    for (const [f, message] of [
      [truncated, /ends at line 15 without its trailer line .*truncated; nothing was imported\n$/],
      [corrupted, /: line 5: not JSON \(.*\); nothing was imported\n$/],
      [cut, /: line \d+: not JSON .*; nothing was imported\n$/],
    ] as const) {
      for (const env of [sqliteEnv(), await pgEnv()]) {
        const r = await importFrom(f, env);
        expect(r.code, r.stderr).toBe(1);
        expect(r.stdout).toBe('');
        expect(r.stderr).toMatch(/^intent-bus import: /);
        expect(r.stderr).toMatch(message);
        const out = join(dir, 'after.jsonl');
        ok(await exportTo(out, env));
        expect(recordsOf(readFileSync(out, 'utf8'))).toEqual([
          '{"type":"end","counts":{"key":0,"intent":0,"idempotency":0,"kv":0,"nonce":0,"schedule":0,"run_failure":0,"worker":0,"flow":0,"flow_claim":0}}',
          '',
        ]);
      }
    }
  }, 60_000);

  it('usage and store errors: exit 2 or 1 with one line, and no database made by mistake', async () => {
    const dir = tempDir();
    const missingDb = join(dir, 'nothing', 'bus.db');
    const e1 = await exportTo(join(dir, 'out'), { BUS_DB_PATH: missingDb });
    expect(e1.code).toBe(1);
    expect(e1.stderr).toBe(
      `intent-bus export: BUS_DB_PATH: there is no SQLite database at ${missingDb} to export\n`,
    );
    expect(existsSync(missingDb)).toBe(false);

    const i1 = await importFrom(join(dir, 'no-such-file.jsonl'), { BUS_DB_PATH: missingDb });
    expect(i1.code).toBe(1);
    expect(i1.stderr).toMatch(/^intent-bus import: cannot read .*no-such-file\.jsonl: ENOENT/);
    expect(existsSync(missingDb)).toBe(false);

    const i2 = await cli(['import'], { env: baseEnv() });
    expect(i2.code).toBe(2);
    expect(i2.stderr).toMatch(/^intent-bus import: expected FILE \(or - for stdin\)\n\nUsage: /);
    const e2 = await exportTo(join(dir, 'out'), sqliteEnv(), ['extra']);
    expect(e2.code).toBe(2);
    // Store commands take no URL or key: they open the database themselves.
    const e3 = await exportTo(join(dir, 'out'), sqliteEnv(), ['--url', 'http://x']);
    expect(e3.code).toBe(2);
    expect(e3.stderr).toMatch(/Unknown option '--url'/);
    const e4 = await exportTo(join(dir, 'out'), { BUS_DATABASE_SCHEMA: 'x' });
    expect(e4.code).toBe(2);
    expect(e4.stderr).toMatch(/^intent-bus export: BUS_DATABASE_SCHEMA: .*BUS_DATABASE_URL/);
    const e5 = await exportTo(join(dir, 'out'), sqliteEnv(), ['--namespace', '']);
    expect(e5.code).toBe(2);
    // An unreachable database: one line, without the URL (it may hold a password).
    const url = `postgres://user:s3cret@127.0.0.1:${await freePort()}/none`;
    const e6 = await exportTo(join(dir, 'out'), { BUS_DATABASE_URL: url });
    expect(e6.code).toBe(1);
    expect(e6.stderr).toMatch(
      /^intent-bus export: cannot prepare PostgreSQL \(BUS_DATABASE_URL\): /,
    );
    expect(e6.stderr).not.toContain('s3cret');
    expect(e6.stderr.trimEnd().split('\n')).toHaveLength(1);
  }, 30_000);

  it('--help names every flag, and this file passes each of them', async () => {
    const main = await cli(['--help']);
    expect(main.stdout).toMatch(/\n {2}export {4}write the store's intents/);
    expect(main.stdout).toMatch(/\n {2}import {4}write the records of an export file/);
    for (const c of ['export', 'import']) {
      const help = await cli([c, '--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^Usage: intent-bus ${c} `));
      expect(help.stdout).not.toContain('Common flags');
      const named = [...new Set(help.stdout.match(/(?<![\w-])--?[a-z][a-z-]*/g))];
      expect((await cli([c, '-h'])).stdout).toBe(help.stdout);
      const used = usedFlags.get(c) ?? new Set<string>();
      expect(named.filter((f) => !used.has(f))).toEqual([]);
    }
  });
});
