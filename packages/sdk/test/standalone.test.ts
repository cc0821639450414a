/**
 * The built SDK on its own: copied into a fresh folder as node_modules/@intent-bus/sdk with
 * nothing else installed, imported by a plain .mjs script run with `node` against a real
 * bus. Proves zero runtime dependencies and a working `exports` map.
 */
import { execFile } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN_KEY, closeBus, startTestBus, type TestBus } from './support.js';

const run = promisify(execFile);
const SDK_DIR = fileURLToPath(new URL('..', import.meta.url));
const REPO = fileURLToPath(new URL('../../..', import.meta.url));

const SCRIPT = `
import { IntentClient, WorkerRuntime, text, NotFoundError } from '@intent-bus/sdk';
import { resolveApiKey } from '@intent-bus/sdk/node';

const key = resolveApiKey(undefined, process.cwd());
if (!key || key.source !== 'INTENT_API_KEY') throw new Error('INTENT_API_KEY not found');
const client = new IntentClient({ baseUrl: process.env.BUS_URL });

const health = await client.health();
if (!health.ok) throw new Error('bus not healthy');

const goal = 'standalone_job';
const { id } = await client.publish(goal, { PAYLOAD_CANARY: 'standalone', n: 20 }, { priority: 500 });
const job = await client.claim({ goal, workerId: 'standalone-worker' });
if (!job || job.id !== id) throw new Error('claimed the wrong job');
await client.fulfill(job.id, job.claim_token, { doubled: job.payload.n * 2 });
const result = await client.getResult(id, { waitSeconds: 5 });

await client.publish(goal, { n: 1 });
const summary = await new WorkerRuntime({ client }).listen({
  goal,
  once: true,
  handleSignals: false,
  handler: (j) => text('ran ' + j.payload.n),
});

let notFound = false;
try {
  await client.getStatus('0'.repeat(32));
} catch (err) {
  notFound = err instanceof NotFoundError;
}

console.log(JSON.stringify({ status: result.status, result: result.result, summary, notFound }));
`;

describe('the SDK standalone in Node', () => {
  let t: TestBus;
  let dir: string;
  beforeAll(async () => {
    // Build (incremental: fast when dist is current) so that dist matches the sources.
    await run('npx', ['tsc', '-b', 'packages/sdk'], { cwd: REPO, timeout: 60_000 });
    t = await startTestBus({ env: { BUS_RATE_LIMIT_PER_MINUTE: '100000' } });
    dir = mkdtempSync(join(tmpdir(), 'sdk-standalone-'));
  }, 60_000);
  afterAll(async () => {
    await closeBus(t);
    rmSync(dir, { recursive: true, force: true });
  });

  it('declares no runtime dependency', () => {
    const pkg = JSON.parse(readFileSync(join(SDK_DIR, 'package.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(pkg).not.toHaveProperty('dependencies');
    expect(pkg).not.toHaveProperty('peerDependencies');
    expect(pkg).not.toHaveProperty('optionalDependencies');
  });

  it('has build output where its exports point', () => {
    const pkg = JSON.parse(readFileSync(join(SDK_DIR, 'package.json'), 'utf8')) as {
      exports: Record<string, { default: string; types: string }>;
    };
    for (const entry of Object.values(pkg.exports)) {
      expect(existsSync(join(SDK_DIR, entry.default)), entry.default).toBe(true);
      expect(existsSync(join(SDK_DIR, entry.types)), entry.types).toBe(true);
    }
  });

  it('publishes, claims, fulfils and reads the result from a plain node script', async () => {
    const pkgDir = join(dir, 'node_modules', '@intent-bus', 'sdk');
    mkdirSync(pkgDir, { recursive: true });
    cpSync(join(SDK_DIR, 'package.json'), join(pkgDir, 'package.json'));
    cpSync(join(SDK_DIR, 'dist'), join(pkgDir, 'dist'), { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }));
    writeFileSync(join(dir, 'main.mjs'), SCRIPT);
    // nothing but the SDK is installed there
    expect(readdirSync(join(dir, 'node_modules'))).toEqual(['@intent-bus']);
    expect(readdirSync(join(dir, 'node_modules', '@intent-bus'))).toEqual(['sdk']);

    const out = await run(process.execPath, ['main.mjs'], {
      cwd: dir,
      timeout: 15_000,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: dir,
        BUS_URL: t.url,
        INTENT_API_KEY: MAIN_KEY,
      },
    });
    expect(out.stderr).toBe('');
    const printed = JSON.parse(out.stdout.trim()) as unknown;
    expect(printed).toEqual({
      status: 'fulfilled',
      result: { doubled: 40 },
      summary: { claimed: 1, fulfilled: 1, failed: 0, leaseLost: 0 },
      notFound: true,
    });
    const list = await t.api('GET', '/admin/intents?goal=standalone_job', { admin: true });
    expect(list.json.items).toHaveLength(2);
    expect(list.json.items.map((i: { status: string }) => i.status)).toEqual([
      'fulfilled',
      'fulfilled',
    ]);
  });
});
