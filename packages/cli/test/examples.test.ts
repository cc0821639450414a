/**
 * The examples of examples/ work as their header comments say: the bash + curl worker
 * for Termux against a real bus, and the TypeScript worker and publisher type-checked,
 * compiled and run with exactly the commands their headers give.
 */
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestBus, type TestBus } from '../../server/test/helpers.js';
import { splitWords } from '../src/words.js';
import {
  ROOT,
  baseEnv,
  ensureBuilt,
  killAll,
  removeTemps,
  settle,
  sleep,
  spawnProc,
  tempDir,
  type Finished,
} from './cli-helpers.js';

const EXAMPLES = join(ROOT, 'examples');
const TERMUX = join(EXAMPLES, 'termux-worker.sh');
const CANARY = 'PAYLOAD_CANARY';

let bus: TestBus;
let testerKey: string;

beforeAll(async () => {
  ensureBuilt();
  bus = await startTestBus({ env: { BUS_RATE_LIMIT_PER_MINUTE: '100000' } });
  testerKey = (await bus.newKey('examples')).api_key;
});
afterEach(killAll);
afterAll(async () => {
  await killAll();
  await bus?.close();
  removeTemps();
});

/** Publishes as the tester key and returns the id. */
async function publish(goal: string, payload: unknown, extra: Record<string, unknown> = {}) {
  const r = await bus.api('POST', '/intent', {
    key: testerKey,
    body: { goal, payload, ...extra },
  });
  expect(r.status, r.text).toBe(201);
  return r.json.id as string;
}

async function result(id: string) {
  const r = await bus.api('GET', `/result/${id}`);
  expect(r.status).toBe(200);
  return r.json;
}

/** Runs the Termux worker with bash, as its header says. */
function termux(env: Record<string, string>, args: string[] = []) {
  return spawnProc('bash', [TERMUX, ...args], {
    env: baseEnv({ INTENT_BUS_URL: bus.url, INTENT_API_KEY: testerKey, ...env }),
  });
}

describe('examples/termux-worker.sh', () => {
  it('is executable and says how to run it', () => {
    expect(statSync(TERMUX).mode & 0o111).not.toBe(0);
    const text = readFileSync(TERMUX, 'utf8');
    expect(text.startsWith('#!/usr/bin/env bash\n')).toBe(true);
    for (const word of ['INTENT_BUS_URL', 'INTENT_API_KEY', 'GOAL', 'MAX_JOBS', 'bash termux'])
      expect(text).toContain(word);
  });

  it('takes 3 jobs with MAX_JOBS=3, fulfils each with the command output, and stops', async () => {
    const goal = 'termux-three';
    const ids = [];
    for (const n of [1, 2, 3]) ids.push(await publish(goal, { n, note: CANARY }));
    const w = termux({
      GOAL: goal,
      MAX_JOBS: '3',
      // The payload arrives on stdin; the ids in the environment.
      JOB_COMMAND: `printf 'job %s attempt %s: ' "$INTENT_ID" "$INTENT_ATTEMPT"; sed -n 's/.*"n":\\([0-9]*\\).*/n=\\1/p'`,
    });
    const end = await settle(w, 10_000);
    expect(end.code, end.stderr).toBe(0);
    expect(end.stderr).toContain('stopped after 3 jobs');
    for (const [i, id] of ids.entries()) {
      expect(await result(id)).toMatchObject({
        status: 'fulfilled',
        result_type: 'text',
        result: `job ${id} attempt 1: n=${i + 1}`,
      });
    }
  });

  it('waits out empty claims, url-encodes the goal, and sends any output as exact text', async () => {
    const goal = 'photos/resize 2x&more';
    const w = termux(
      { GOAL: goal, MAX_JOBS: '2', WAIT: '1' },
      // The command as the argument (JOB_COMMAND is the other way).
      [String.raw`cat >/dev/null; printf 'say "hi" \\ back\ttab\nline 2 é ✓ {not json\n'`],
    );
    await w.waitFor(/taking jobs of/);
    // Nothing to do yet: the claims answer 204 after a second, and the worker waits.
    await sleep(1500);
    expect(w.child.exitCode).toBeNull();
    const a = await publish(goal, { note: CANARY });
    const b = await publish(goal, { claim_token: 'f'.repeat(32), id: 'e'.repeat(32) });
    const end = await settle(w, 10_000);
    expect(end.code, end.stderr).toBe(0);
    for (const id of [a, b]) {
      expect(await result(id), end.stderr).toMatchObject({
        status: 'fulfilled',
        result_type: 'text',
        result: 'say "hi" \\ back\ttab\nline 2 é ✓ {not json',
      });
    }
  });

  it('hands the command the payload exactly as published, not the claim around it', async () => {
    const text = '{"n":12345678901234567890,"claim_token":"x","s":"a}b \\"payload\\":"}';
    const r = await bus.api('POST', '/intent', {
      key: testerKey,
      raw: `{"goal":"termux-exact","payload":${text}}`,
      headers: { 'content-type': 'application/json' },
    });
    expect(r.status, r.text).toBe(201);
    const w = termux({ GOAL: 'termux-exact', MAX_JOBS: '1', JOB_COMMAND: 'cat' });
    expect((await settle(w)).code).toBe(0);
    expect((await result(r.json.id as string)).result).toBe(text);
  });

  it('fails a job with the exit code and the end of stderr; RESULT_TYPE=json sends JSON', async () => {
    const failing = await publish('termux-fail', { note: CANARY }, { max_attempts: 1 });
    const w1 = termux({ GOAL: 'termux-fail', MAX_JOBS: '1' }, [
      `echo 'some output'; echo 'it went "wrong"' >&2; exit 4`,
    ]);
    const end1 = await settle(w1);
    expect(end1.code).toBe(0);
    expect(await result(failing), end1.stderr).toMatchObject({
      status: 'dead',
      error: 'exit 4: it went "wrong"',
    });

    const json = await publish('termux-json', { n: 2 });
    const notJson = await publish('termux-json', { n: 0 }, { max_attempts: 1 });
    const w2 = termux({
      GOAL: 'termux-json',
      MAX_JOBS: '2',
      RESULT_TYPE: 'json',
      JOB_COMMAND: `if grep -q '"n":2'; then echo '{"double":4,"list":[1,"two"]}'; else echo oops; fi`,
    });
    expect((await settle(w2)).code).toBe(0);
    expect(await result(json)).toMatchObject({
      status: 'fulfilled',
      result_type: 'json',
      result: { double: 4, list: [1, 'two'] },
    });
    const dead = await result(notJson);
    expect(dead.status).toBe('dead');
    expect(dead.error).toMatch(/^stdout is not JSON: .*invalid_json/);
  });

  it('reads ~/.apikey; a refused key is exit 1, a missing setting exit 2', async () => {
    const home = tempDir('intent-bus-home-');
    writeFileSync(join(home, '.apikey'), `${testerKey}\n`);
    chmodSync(join(home, '.apikey'), 0o600);
    const id = await publish('termux-home', { note: CANARY });
    const w = spawnProc('bash', [TERMUX, 'cat >/dev/null; echo from home'], {
      env: baseEnv({ HOME: home, INTENT_BUS_URL: bus.url, GOAL: 'termux-home', MAX_JOBS: '1' }),
    });
    expect((await settle(w)).code).toBe(0);
    expect((await result(id)).result).toBe('from home');

    const refused = await settle(termux({ GOAL: 'x', INTENT_API_KEY: 'tk_wrong' }, ['true']));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/refused the key \(401\)/);
    const missing: Array<[Record<string, string>, string[], RegExp]> = [
      [{}, ['true'], /set GOAL/],
      [{ GOAL: 'x' }, [], /usage:/],
      [{ GOAL: 'x', INTENT_API_KEY: '' }, ['true'], /set INTENT_API_KEY/],
      [{ GOAL: 'x', WAIT: 'long' }, ['true'], /WAIT is a number/],
      [{ GOAL: 'x', RESULT_TYPE: 'xml' }, ['true'], /RESULT_TYPE is text or json/],
    ];
    const runs = await Promise.all(missing.map(([env, args]) => settle(termux(env, args))));
    runs.forEach((r: Finished, i) => {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(missing[i]![2]);
    });
  });

  it('stops on SIGTERM: at once while waiting for a job, after the job while one runs', async () => {
    const idle = termux({ GOAL: 'termux-idle', WAIT: '25' }, ['true']);
    await idle.waitFor(/taking jobs of/);
    await sleep(200);
    idle.child.kill('SIGTERM');
    const stopped = await settle(idle, 3000);
    expect(stopped.code).toBe(0);
    expect(stopped.stderr).toContain('stopped after 0 jobs');

    const id = await publish('termux-busy', { note: CANARY });
    const busy = termux({ GOAL: 'termux-busy' }, ['sleep 1; echo finished anyway']);
    await busy.waitFor(/job [0-9a-f]{32}/);
    busy.child.kill('SIGTERM');
    const end = await settle(busy, 5000);
    expect(end.code).toBe(0);
    expect(end.stderr).toContain('stopped after 1 jobs');
    expect(await result(id)).toMatchObject({ status: 'fulfilled', result: 'finished anyway' });
  });

  it("obeys the bus's admin with a WORKER_ID: quiet takes no job, resume takes it, stop ends it", async () => {
    const admin = (verb: string) =>
      bus.api('POST', `/admin/workers/phone-q/${verb}`, { admin: true });
    const w = termux({ GOAL: 'termux-quiet', WORKER_ID: 'phone-q', WAIT: '25' }, ['echo ran']);
    await w.waitFor(/taking jobs of/);
    // Listed once its first claim is seen.
    for (let i = 0; (await admin('quiet')).status !== 200; i++) {
      if (i > 50) throw new Error('the worker was never listed');
      await sleep(100);
    }
    await w.waitFor(/the bus says quiet/);
    const id = await publish('termux-quiet', { note: CANARY });
    await sleep(1500);
    expect((await result(id)).status).toBe('open');
    expect((await admin('resume')).status).toBe(200);
    await w.waitFor(new RegExp(`job ${id} done`), 10_000);
    expect(w.stderr()).toContain('resumed');
    expect((await admin('stop')).status).toBe(200);
    const end = await settle(w, 5000);
    expect(end.code, end.stderr).toBe(0);
    expect(end.stderr).toContain('the bus says stop');
    expect(end.stderr).toContain('stopped after 1 jobs');
  });
});

describe('examples/worker.ts and examples/publish-and-wait.ts', () => {
  /** The `$ ` command lines of a file's header comment. */
  const commandsOf = (file: string): string[] =>
    [
      ...readFileSync(join(EXAMPLES, file), 'utf8')
        .split('*/')[0]!
        .matchAll(/^ \* +\$ (.+)$/gm),
    ].map((m) => m[1]!);
  const run = (line: string, env: NodeJS.ProcessEnv) => {
    const [file, ...args] = splitWords(line);
    return spawnProc(file!, args, { cwd: ROOT, env });
  };

  it('type-check, compile and run with the commands of their header comments', async () => {
    const worker = commandsOf('worker.ts');
    const publisher = commandsOf('publish-and-wait.ts');
    expect(worker).toEqual(['npx tsc -p examples --noEmit false', 'node examples/dist/worker.js']);
    expect(publisher[0]).toBe(worker[0]);
    expect(publisher[1]).toMatch(/^node examples\/dist\/publish-and-wait\.js /);

    // examples/tsconfig.json only type-checks; the header's command compiles.
    const npmEnv = { ...process.env, npm_config_update_notifier: 'false' };
    const check = await settle(
      spawnProc('npx', ['tsc', '-p', 'examples'], { cwd: ROOT, env: npmEnv }),
      15_000,
    );
    expect(check.code, check.stdout + check.stderr).toBe(0);
    const compiled = await settle(run(worker[0]!, npmEnv), 15_000);
    expect(compiled.code, compiled.stdout + compiled.stderr).toBe(0);

    const env = baseEnv({ INTENT_BUS_URL: bus.url, INTENT_API_KEY: testerKey });
    const w = run(worker[1]!, env);
    await w.waitFor(/listening for word-count/);
    const answer = await settle(run(publisher[1]!, env), 10_000);
    expect(answer.code, answer.stderr).toBe(0);
    expect(JSON.parse(answer.stdout)).toEqual({
      words: 6,
      distinct: 4,
      top: { be: 2, to: 2, not: 1 },
    });
    expect(answer.stderr).toMatch(/published [0-9a-f]{32} \(word-count\)/);

    // A job the handler throws on fails; a goal nobody works on times out with exit 3.
    const bad = await publish('word-count', { note: CANARY }, { max_attempts: 1 });
    const nobody = await settle(
      run(publisher[1]!, { ...env, GOAL: 'nobody-listens', WAIT_SECONDS: '1' }),
      10_000,
    );
    expect(nobody.code).toBe(3);
    expect(nobody.stderr).toContain('no result within 1 s: the job is open');
    for (let i = 0; i < 50 && (await result(bad)).status !== 'dead'; i++) await sleep(100);
    expect(await result(bad)).toMatchObject({
      status: 'dead',
      error: 'payload.text must be a string',
    });

    w.child.kill('SIGTERM');
    const end = await settle(w, 5000);
    expect(end.code, end.stderr).toBe(0);
    expect(end.stderr).toContain('stopped: 1 fulfilled, 1 failed');
    expect(end.stdout).toMatch(/job [0-9a-f]{32} \(attempt 1\): 6 words/);
  }, 15_000);
});
