import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeApi } from './helpers.js';
import {
  runToExit,
  serverEnv,
  startProcess,
  type ServerProcess,
  claimAll,
  publishMany,
} from './process-helpers.js';

const tempDb = (): string => join(mkdtempSync(join(tmpdir(), 'intent-bus-proc-')), 'bus.db');

/** A start-up failure is one line naming the variable, never a stack trace. */
function expectOneLine(stderr: string, variable: string): void {
  const lines = stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(variable);
  expect(lines[0]).toMatch(/^intent-bus: /);
  expect(stderr).not.toMatch(/\n\s+at /);
}

describe('the serve process', () => {
  const running: ServerProcess[] = [];
  afterEach(() => {
    for (const p of running.splice(0)) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  });

  it('keeps every acknowledged intent across SIGKILL', async () => {
    const db = tempDb();
    const first = await startProcess(serverEnv(db));
    running.push(first);
    const api = makeApi(first.url);
    const published = await publishMany(api, 'durable', 100);
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');

    const second = await startProcess(serverEnv(db));
    running.push(second);
    const api2 = makeApi(second.url);
    const claimed = await claimAll(api2, 'durable');
    expect(claimed).toEqual(published);
  });

  it('ends long polls with 204, finishes and exits 0 on SIGTERM', async () => {
    const p = await startProcess(serverEnv(tempDb()));
    running.push(p);
    const api = makeApi(p.url);
    const waiting = api('POST', '/claim?goal=nothing&wait=20');
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    p.child.kill('SIGTERM');
    const answer = await waiting;
    expect(answer.status).toBe(204);
    expect(Date.now() - started).toBeLessThan(5000);
    expect((await p.exited).code).toBe(0);
  });

  it('generates secrets on first run, mode 600, printed once', async () => {
    const db = tempDb();
    const env = serverEnv(db, {}, false);
    const first = await startProcess(env);
    running.push(first);
    // stdout (the "listening" line) and stderr (the banner) are two pipes: wait for both.
    for (let i = 0; i < 100 && !first.stderr().includes('BUS_SECRET='); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(first.stderr()).toContain('BUS_SECRET=');
    const secretsPath = join(db, '..', 'secrets.json');
    const secrets = JSON.parse(readFileSync(secretsPath, 'utf8')) as Record<string, string>;
    expect(first.stderr()).toContain(secrets.BUS_SECRET);
    expect(statSync(secretsPath).mode & 0o777).toBe(0o600);
    expect(statSync(db).mode & 0o777).toBe(0o600);
    // The generated key works.
    const r = await makeApi(first.url)('GET', '/get/nothing', { key: secrets.BUS_SECRET });
    expect(r.status).toBe(404);
    first.child.kill('SIGTERM');
    await first.exited;

    const second = await startProcess(env);
    running.push(second);
    expect(second.stderr()).not.toContain('BUS_SECRET=');
    const r2 = await makeApi(second.url)('GET', '/get/nothing', { key: secrets.BUS_SECRET! });
    expect(r2.status).toBe(404);
  });

  it('stops with one line for a bad value', async () => {
    const r = await runToExit(serverEnv(tempDb(), { BUS_PORT: 'eighty' }));
    expect(r.code).toBe(2);
    expectOneLine(r.stderr, 'BUS_PORT');
  });

  it('stops with one line for a weak secret', async () => {
    const r = await runToExit(serverEnv(tempDb(), { BUS_SECRET: 'dev_secret' }));
    expect(r.code).toBe(2);
    expectOneLine(r.stderr, 'BUS_SECRET');
  });

  it('stops with one line when the port is in use', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    try {
      const r = await runToExit(serverEnv(tempDb(), { BUS_PORT: String(port) }));
      expect(r.code).toBe(2);
      expectOneLine(r.stderr, 'BUS_PORT');
    } finally {
      blocker.close();
    }
  });

  it('stops with one line when the database path cannot be used', async () => {
    // A folder that cannot exist: its parent is a regular file.
    const file = tempDb();
    writeFileSync(file, 'not a folder');
    const r = await runToExit(serverEnv(join(file, 'sub', 'bus.db')));
    expect(r.code).toBe(2);
    expectOneLine(r.stderr, 'BUS_DB_PATH');
  });

  const modeOf = (path: string): number => statSync(path).mode & 0o777;

  it('refuses a BUS_DB_PATH that is a notes file and leaves it as it was, no secrets.json beside', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intent-bus-proc-'));
    const notes = join(dir, 'notes.txt');
    writeFileSync(notes, 'my notes, not a database\n');
    chmodSync(notes, 0o644);
    // No secrets in the environment: a start that got further would write secrets.json.
    const r = await runToExit(serverEnv(notes, {}, false));
    expect(modeOf(notes)).toBe(0o644);
    expect(readFileSync(notes, 'utf8')).toBe('my notes, not a database\n');
    expect(readdirSync(dir)).toEqual(['notes.txt']);
    expect(r.code).toBe(2);
    expectOneLine(r.stderr, 'BUS_DB_PATH');
    expect(r.stderr).toContain('not a SQLite database');
  });

  it('refuses a BUS_DB_PATH that is a folder and leaves it as it was, no secrets.json beside', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intent-bus-proc-'));
    const folder = join(dir, 'data');
    mkdirSync(folder);
    chmodSync(folder, 0o755);
    const r = await runToExit(serverEnv(folder, {}, false));
    expect(modeOf(folder)).toBe(0o755);
    expect(readdirSync(folder)).toEqual([]);
    expect(readdirSync(dir)).toEqual(['data']);
    expect(r.code).toBe(2);
    expectOneLine(r.stderr, 'BUS_DB_PATH');
    expect(r.stderr).toContain('folder');
  });

  it('creates the database file mode 600 in a new folder mode 700 on a first run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intent-bus-proc-'));
    const db = join(dir, 'new', 'bus.db');
    const p = await startProcess(serverEnv(db));
    running.push(p);
    expect((await makeApi(p.url)('GET', '/health', { key: null })).status).toBe(200);
    expect(modeOf(join(dir, 'new'))).toBe(0o700);
    expect(modeOf(db)).toBe(0o600);
  });

  it("takes an empty file or an existing database as BUS_DB_PATH and keeps the operator's mode", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intent-bus-proc-'));
    const db = join(dir, 'bus.db');
    writeFileSync(db, '');
    chmodSync(db, 0o640);
    for (let run = 0; run < 2; run++) {
      // First an empty file, then the database the first run made in it.
      const p = await startProcess(serverEnv(db));
      running.push(p);
      expect((await makeApi(p.url)('GET', '/health', { key: null })).status).toBe(200);
      p.child.kill('SIGTERM');
      expect((await p.exited).code).toBe(0);
      expect(modeOf(db)).toBe(0o640);
      expect(readFileSync(db).subarray(0, 16).toString('latin1')).toBe('SQLite format 3\0');
    }
    expect(existsSync(join(dir, 'secrets.json'))).toBe(false);
  });

  it('refuses a second bus on the same SQLite file with one line naming the file and the first', async () => {
    const db = tempDb();
    const first = await startProcess(serverEnv(db));
    running.push(first);
    const second = await runToExit(serverEnv(db));
    expect(second.code).toBe(2);
    expectOneLine(second.stderr, 'BUS_DB_PATH');
    expect(second.stderr).toContain(db);
    expect(second.stderr).toContain(`process ${first.child.pid}`);
    expect(second.stderr).toContain('PostgreSQL');
    // The first bus is untouched and serves on.
    expect((await makeApi(first.url)('GET', '/health')).status).toBe(200);
    // Stopped cleanly, it gives the file up; killed, its claim is stale and taken over.
    first.child.kill('SIGTERM');
    await first.exited;
    expect(existsSync(`${db}.pid`)).toBe(false);
    const third = await startProcess(serverEnv(db));
    running.push(third);
    third.child.kill('SIGKILL');
    await third.exited;
    expect(existsSync(`${db}.pid`)).toBe(true);
    const fourth = await startProcess(serverEnv(db));
    running.push(fourth);
    expect((await makeApi(fourth.url)('GET', '/health')).status).toBe(200);
  });

  it('refuses secrets that are equal to each other', async () => {
    for (const [a, b] of [
      ['BUS_SECRET', 'BUS_ADMIN_SECRET'],
      ['BUS_SECRET', 'DASHBOARD_PASSWORD'],
      ['BUS_ADMIN_SECRET', 'DASHBOARD_PASSWORD'],
    ] as const) {
      const same = 'the-same-value-0123456789';
      const r = await runToExit(serverEnv(tempDb(), { [a]: same, [b]: same }));
      expect(r.code, `${a} = ${b}`).toBe(2);
      expectOneLine(r.stderr, b);
      expect(r.stderr).toContain(a);
      expect(r.stderr).not.toContain(same);
    }
  });

  it('gives a data folder it makes a .gitignore of *, and says where everything is on each start', async () => {
    const db = join(mkdtempSync(join(tmpdir(), 'intent-bus-proc-')), 'data', 'bus.db');
    const first = await startProcess(serverEnv(db, {}, false));
    running.push(first);
    expect(readFileSync(join(db, '..', '.gitignore'), 'utf8')).toMatch(/^\*$/m);
    first.child.kill('SIGTERM');
    await first.exited;
    const again = await startProcess(serverEnv(db, {}, false));
    running.push(again);
    for (let i = 0; i < 100 && !again.stderr().includes('BUS_HOST'); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const banner = again.stderr();
    expect(banner).not.toContain('BUS_SECRET=');
    expect(banner).toContain(`running at ${again.url}`);
    expect(banner).toContain(db);
    expect(banner).toContain(join(db, '..', 'secrets.json'));
    expect(banner).toContain(`${again.url}/admin/dashboard`);
    expect(banner).toMatch(/Only this machine can reach it .*BUS_HOST=0\.0\.0\.0/);
    again.child.kill('SIGTERM');
    await again.exited;
    // A folder that exists is left as it is; listening on the network, no loopback line.
    const own = mkdtempSync(join(tmpdir(), 'intent-bus-proc-'));
    const wide = await startProcess(serverEnv(join(own, 'bus.db'), { BUS_HOST: '0.0.0.0' }));
    running.push(wide);
    for (let i = 0; i < 100 && !wide.stderr().includes('dashboard'); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(wide.stderr()).toContain('/admin/dashboard');
    expect(wide.stderr()).not.toContain('Only this machine');
    expect(existsSync(join(own, '.gitignore'))).toBe(false);
  });

  it('refuses an unknown flag as a usage error', async () => {
    const r = await runToExit(serverEnv(tempDb()), ['serve', '--colour', 'blue']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--colour');
  });
});
