/**
 * The packages as a user installs them: every workspace packed with `npm pack`, then
 * installed from the tarballs into empty folders, outside the repository.
 *
 * - A worker (a phone, a Pi): the CLI and the SDK alone, `--ignore-scripts --offline`.
 *   Nothing to build and nothing to fetch: no server, no native module. Its
 *   `listen --exec` and `publish --wait` work against a running bus, and `serve` says in
 *   one line what to install.
 * - A bus: all four tarballs (the server's dependencies from the npm cache, better-sqlite3,
 *   an optional dependency, built as npm builds it where it can be), and `intent-bus
 *   serve` runs from the empty folder.
 * - A bus with no native module (Node 24, where the SQLite store is node:sqlite): all four
 *   tarballs `--ignore-scripts --offline`, so nothing is built; no `*.node` file anywhere
 *   in node_modules (better-sqlite3's sources are there, never compiled nor loaded);
 *   `intent-bus serve` runs, a publish → claim → fulfil round trip passes, and 100
 *   acknowledged publishes are all there after a SIGKILL and a restart. On an older Node
 *   (whose default SQLite driver is better-sqlite3) this part says why it does not run.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  DASHBOARD_PASSWORD,
  MAIN_KEY,
  makeApi,
  startTestBus,
  type TestBus,
} from '../../server/test/helpers.js';
import {
  ROOT,
  baseEnv,
  ensureBuilt,
  killAll,
  removeTemps,
  settle,
  spawnProc,
  tempDir,
} from './cli-helpers.js';

const npmEnv = { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false' };
let packs: string;
const tarball = (name: string): string => join(packs, name);

function npm(args: string[], cwd: string, timeout = 120_000): string {
  return execFileSync('npm', args, { cwd, env: npmEnv, encoding: 'utf8', timeout, stdio: 'pipe' });
}

/** An empty project folder, as a user makes one. */
function emptyProject(prefix: string): string {
  const dir = tempDir(prefix);
  writeFileSync(join(dir, 'package.json'), '{"name": "a-box", "private": true}\n');
  return dir;
}

/** Every file under `dir` whose name matches. */
function filesMatching(dir: string, pattern: RegExp, found: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) filesMatching(path, pattern, found);
    else if (pattern.test(name)) found.push(path);
  }
  return found;
}

beforeAll(() => {
  ensureBuilt();
  packs = tempDir('intent-bus-packs-');
  // The build is npm test's (tsc -b); packing runs no script.
  npm(['pack', '--workspaces', '--ignore-scripts', '--pack-destination', packs], ROOT);
});
afterAll(async () => {
  await killAll();
  removeTemps();
});

describe('a worker installed from the tarballs: the CLI and the SDK, nothing else', () => {
  let bus: TestBus;
  let box: string;
  beforeAll(async () => {
    bus = await startTestBus();
    box = emptyProject('intent-bus-worker-box-');
    // --offline: the worker needs nothing from a registry; --ignore-scripts: nothing built.
    npm(
      [
        'install',
        '--ignore-scripts',
        '--offline',
        '--no-audit',
        tarball('intent-bus-0.1.0.tgz'),
        tarball('intent-bus-sdk-0.1.0.tgz'),
      ],
      box,
    );
  }, 180_000);
  afterAll(async () => bus?.close());

  it('holds no server, no native module and no install script to run', () => {
    const modules = join(box, 'node_modules');
    expect(readdirSync(modules).sort()).toEqual([
      '.bin',
      '.package-lock.json',
      '@intent-bus',
      'intent-bus',
    ]);
    expect(readdirSync(join(modules, '@intent-bus'))).toEqual(['sdk']);
    expect(filesMatching(modules, /\.node$/)).toEqual([]);
    expect(existsSync(join(modules, '.bin', 'intent-bus'))).toBe(true);
  });

  it('runs listen --exec and publish --wait against a running bus', async () => {
    const env = baseEnv({
      INTENT_BUS_URL: bus.url,
      INTENT_API_KEY: (await bus.newKey('box')).api_key,
    });
    const bin = join(box, 'node_modules', '.bin', 'intent-bus');
    const worker = spawnProc(bin, ['listen', 'box-echo', '--exec', 'cat'], { cwd: box, env });
    await worker.waitFor(/box-echo/);
    const answer = await settle(
      spawnProc(bin, ['publish', 'box-echo', '{"n":12345678901234567890}', '--wait', '--json'], {
        cwd: box,
        env,
      }),
      15_000,
    );
    worker.child.kill('SIGTERM');
    expect(answer.code, answer.stderr).toBe(0);
    // Exact end to end: a number no double holds, from the argument to the worker and back.
    expect(answer.stdout).toContain('"result":{"n":12345678901234567890}');
  });

  it('says in one line what to install for serve', async () => {
    const bin = join(box, 'node_modules', '.bin', 'intent-bus');
    const r = await settle(spawnProc(bin, ['serve', '--port', '0'], { cwd: box }), 10_000);
    expect(r.code).not.toBe(0);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^intent-bus: .*npm install .*@intent-bus\/server/);
    expect(existsSync(join(box, 'intent-bus-data'))).toBe(false);
  });
});

describe('a bus installed from the tarballs', () => {
  it('runs intent-bus serve from an empty folder', async () => {
    const box = emptyProject('intent-bus-bus-box-');
    npm(
      [
        'install',
        '--prefer-offline',
        '--no-audit',
        ...['protocol', 'sdk', 'server'].map((p) => tarball(`intent-bus-${p}-0.1.0.tgz`)),
        tarball('intent-bus-0.1.0.tgz'),
      ],
      box,
      240_000,
    );
    const bin = join(box, 'node_modules', '.bin', 'intent-bus');
    const serve = spawnProc(bin, ['serve', '--port', '0'], { cwd: box, env: baseEnv() });
    await serve.waitFor(/is running at http:\/\/127\.0\.0\.1:\d+/, 15_000);
    const url = /is running at (http:\/\/127\.0\.0\.1:\d+)/.exec(serve.stderr())![1]!;
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    expect(existsSync(join(box, 'intent-bus-data', 'bus.db'))).toBe(true);
    serve.child.kill('SIGTERM');
    expect((await settle(serve, 10_000)).code).toBe(0);
  }, 300_000);
});

/** node:sqlite reads every text whole from Node 24: there the bus needs no native module. */
const NO_NATIVE = Number(process.versions.node.split('.')[0]) >= 24;
const noNativeTitle = 'a bus with no native module, installed --ignore-scripts';

(NO_NATIVE ? describe : describe.skip)(
  NO_NATIVE
    ? `${noNativeTitle} (Node ${process.versions.node})`
    : `${noNativeTitle}: not run on Node ${process.versions.node}, whose SQLite driver is better-sqlite3 (a native addon); .ci/run runs it on Node 24`,
  () => {
    let box: string;
    let bin: string;
    beforeAll(() => {
      box = emptyProject('intent-bus-no-native-box-');
      // Nothing built, nothing fetched: every dependency from the npm cache.
      npm(
        [
          'install',
          '--ignore-scripts',
          '--offline',
          '--no-audit',
          ...['protocol', 'sdk', 'server'].map((p) => tarball(`intent-bus-${p}-0.1.0.tgz`)),
          tarball('intent-bus-0.1.0.tgz'),
        ],
        box,
        240_000,
      );
      // The command as npm links it, run by this Node (the shebang would take PATH's).
      bin = join(box, 'node_modules', 'intent-bus', 'bin', 'intent-bus.js');
    }, 300_000);

    const env = (): NodeJS.ProcessEnv =>
      baseEnv({
        BUS_SECRET: MAIN_KEY,
        BUS_ADMIN_SECRET: ADMIN_TOKEN,
        DASHBOARD_PASSWORD,
        BUS_LOG_LEVEL: 'warn',
      });
    async function serve(): Promise<{ url: string; proc: ReturnType<typeof spawnProc> }> {
      const proc = spawnProc(process.execPath, [bin, 'serve', '--port', '0'], {
        cwd: box,
        env: env(),
      });
      await proc.waitFor(/is running at http:\/\/127\.0\.0\.1:\d+/, 15_000);
      const url = /is running at (http:\/\/127\.0\.0\.1:\d+)/.exec(proc.stderr())![1]!;
      return { url, proc };
    }

    it('holds no native addon: better-sqlite3 is there as sources only', () => {
      const modules = join(box, 'node_modules');
      expect(filesMatching(modules, /\.node$/)).toEqual([]);
      // The optional dependency came (npm installs it) but nothing of it was built.
      expect(existsSync(join(modules, 'better-sqlite3', 'package.json'))).toBe(true);
      expect(existsSync(join(modules, 'better-sqlite3', 'build'))).toBe(false);
    });

    it('serves: a publish → claim → fulfil round trip, then 100 acknowledged intents survive a SIGKILL', async () => {
      const first = await serve();
      const api = makeApi(first.url);
      expect((await api('GET', '/health')).status).toBe(200);
      const published = await api('POST', '/intent', {
        body: { goal: 'box-job', payload: { n: 1 } },
      });
      expect(published.status, published.text).toBe(201);
      const id = published.json.id as string;
      const claim = await api('POST', '/claim?goal=box-job');
      expect(claim.status, claim.text).toBe(200);
      expect(claim.json).toMatchObject({ id, goal: 'box-job' });
      const done = await api('POST', `/fulfill/${id}`, {
        body: { claim_token: claim.json.claim_token, result: { ok: 1 } },
      });
      expect(done.json).toEqual({ ok: true, id, status: 'fulfilled' });
      expect((await api('GET', `/result/${id}`)).json).toMatchObject({
        status: 'fulfilled',
        result: { ok: 1 },
      });

      // 100 publishes, each answered 201 (acknowledged: committed), then a SIGKILL.
      const ids: string[] = [];
      for (let i = 0; i < 100; i++) {
        const r = await api('POST', '/intent', { body: { goal: 'durable', payload: { i } } });
        expect(r.status, r.text).toBe(201);
        ids.push(r.json.id as string);
      }
      first.proc.child.kill('SIGKILL');
      expect((await settle(first.proc, 10_000)).signal).toBe('SIGKILL');

      // The same folder again (the killed bus's pid file is taken over): every one is there.
      const second = await serve();
      try {
        const again = makeApi(second.url);
        for (const intentId of ids) {
          const r = await again('GET', `/status/${intentId}`);
          expect(r.status, `${intentId}: ${r.text}`).toBe(200);
          expect(r.json).toMatchObject({ id: intentId, status: 'open' });
        }
        const kept = await again('GET', `/result/${id}`);
        expect(kept.json).toMatchObject({ status: 'fulfilled', result: { ok: 1 } });
        // And it was node:sqlite: no addon could have been loaded, none exists.
        expect(filesMatching(join(box, 'node_modules'), /\.node$/)).toEqual([]);
      } finally {
        second.proc.child.kill('SIGTERM');
        expect((await settle(second.proc, 10_000)).code).toBe(0);
      }
    }, 120_000);
  },
);
