/**
 * End-to-end tests of the `intent-bus` command as a person types it: the built
 * packages/cli/dist/main.js runs as a child process against a real bus (startTestBus: a
 * real SQLite file, a real HTTP port), and the tests read only what a user sees: stdout,
 * stderr and the exit code (0 ok, 1 error, 2 usage, 3 not found / nothing to do).
 */
import { CLEANUP_COUNTERS } from '@intent-bus/protocol';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IntentClient, RateLimitError, type GoalInfo, type WorkerInfo } from '@intent-bus/sdk';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  DASHBOARD_PASSWORD,
  MAIN_KEY,
  selfSignedCert,
  startTestBus,
  type TestBus,
} from '../../server/test/helpers.js';
import {
  ROOT,
  baseEnv,
  cli,
  ensureBuilt,
  freePort,
  idOf,
  isRunning,
  killAll,
  removeTemps,
  script,
  settle,
  sleep,
  spawnProc,
  startCli,
  tempDir,
  usedFlags,
  type Finished,
  type Proc,
} from './cli-helpers.js';

/**
 * Every flag each command's `--help` names ("common": the flags every client command
 * takes). The last test checks this list against the flags parsed from the help texts,
 * and that a test of this file really passed every flag in it.
 */
const EXERCISED: Record<string, string[]> = {
  common: ['--url', '--key', '--admin-token', '--db', '--json', '--no-sign', '-h', '--help'],
  serve: [
    '--port',
    '--host',
    '--db',
    '--secret',
    '--admin-secret',
    '--dashboard-password',
    '--metrics-token',
    '--db-path',
    '--sqlite-driver',
    '--database-url',
    '--database-schema',
    '--require-signatures',
    '--trust-proxy',
    '--enforce-https',
    '--tls-cert',
    '--tls-key',
    '--maintenance-mode',
    '--claim-timeout-seconds',
    '--max-body-bytes',
    '--max-batch-body-bytes',
    '--rate-limit-per-minute',
    '--max-open-per-key',
    '--cleanup-interval-seconds',
    '--max-waiters-per-key',
    '--max-waiters',
    '--max-streams-per-key',
    '--max-streams',
    '--stream-buffer-bytes',
    '--event-window',
    '--retention-seconds',
    '--schedules',
    '--schedules-file',
    '--worker-online-seconds',
    '--worker-retention-seconds',
    '--log-level',
    '--help',
    '-h',
    '--version',
  ],
  publish: [
    '-n',
    '--priority',
    '--delay',
    '--public',
    '--target',
    '--capability',
    '--max-attempts',
    '--backoff-base',
    '--ttl',
    '--idempotency-key',
    '--wait',
    '--follow',
    '--wait-timeout',
    '--file',
  ],
  listen: [
    '-n',
    '-w',
    '-c',
    '--concurrency',
    '--once',
    '--wait',
    '--publisher',
    '--exec',
    '--shell',
    '--timeout',
    '--no-claim-next',
  ],
  result: ['--wait'],
  status: [],
  kv: ['--ttl'],
  admin: ['-n', '--yes', '--key-id', '--pause', '--resume', '--max-in-flight', '--rate'],
  workers: [],
  watch: ['-n', '--goal', '--id', '--json'],
  schedule: [
    '--cron',
    '--every',
    '--tz',
    '--overlap',
    '--catch-up',
    '--paused',
    '-n',
    '--priority',
    '--public',
    '--target',
    '--capability',
    '--max-attempts',
    '--backoff-base',
    '--ttl',
    '--deadline',
    '--on-failure',
    '--on-failure-namespace',
    '--on-failure-payload',
  ],
};

const HEX32 = /^[0-9a-f]{32}$/;
const CANARY = 'PAYLOAD_CANARY';
let bus: TestBus;
let goals = 0;
/** A goal no other test uses. */
const goal = (name: string): string => `${name}-${++goals}`;
/** The client environment of the shared bus: its URL and the main key. */
const env = (extra: Record<string, string> = {}): NodeJS.ProcessEnv =>
  baseEnv({ INTENT_BUS_URL: bus.url, INTENT_API_KEY: MAIN_KEY, ...extra });
const adminEnv = (): NodeJS.ProcessEnv => env({ INTENT_ADMIN_TOKEN: ADMIN_TOKEN });

/** Publishes with the CLI (--json) and returns the new id. */
async function publishId(args: string[], o: { env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  const r = await cli(['publish', ...args, '--json'], { env: o.env ?? env() });
  expect(r.code, r.stderr).toBe(0);
  return idOf(r);
}

/** GET /status or /result of an intent, as the main key sees it. */
async function read(kind: 'status' | 'result', id: string) {
  const r = await bus.api('GET', `/${kind}/${id}`);
  expect(r.status).toBe(200);
  return r.json;
}

/** Starts a `listen` worker and waits until it is listening. */
async function startWorker(args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const w = startCli(['listen', ...args], { env: o.env ?? env(), cwd: o.cwd });
  await w.waitFor(/listening for /);
  return w;
}

/** Stops a worker as `kill PID` would and expects a clean exit. */
async function stopWorker(w: Proc): Promise<Finished> {
  w.child.kill('SIGTERM');
  const end = await settle(w, 5000);
  expect(end.signal, end.stderr).toBeNull();
  expect(end.code, end.stderr).toBe(0);
  return end;
}

function expectUsage(r: Finished, message: string | RegExp): void {
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(2);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).toContain('Usage:');
}

/** An error that is no typing mistake: exit `code` and one line on stderr, no usage. */
function expectOneLine(r: Finished, code: number, message: RegExp): void {
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(code);
  expect(r.stderr.split('\n'), r.stderr).toHaveLength(2); // one line and its newline
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toContain('Usage:');
}

beforeAll(async () => {
  ensureBuilt();
  bus = await startTestBus({ env: { BUS_RATE_LIMIT_PER_MINUTE: '100000' } });
});
afterEach(killAll);
afterAll(async () => {
  await killAll();
  await bus?.close();
  removeTemps();
});

describe('the two-terminal story', () => {
  it('a worker runs ./job.sh per job; publish --wait prints its stdout; SIGTERM exits 0', async () => {
    const dir = tempDir();
    script(dir, 'job.sh', '#!/bin/sh\npayload=$(cat)\necho "resized $payload for $INTENT_GOAL"\n');
    const e = env();
    // Terminal 1.
    const worker = await startWorker(['resize', '--exec', './job.sh'], { cwd: dir, env: e });
    // Terminal 2.
    const r = await cli(['publish', 'resize', `{"image":"cat.png","note":"${CANARY}"}`, '--wait'], {
      env: e,
    });
    expect(r.stdout).toBe(`resized {"image":"cat.png","note":"${CANARY}"} for resize\n`);
    expect(r.stderr).toMatch(/published [0-9a-f]{32}, waiting for its result/);
    expect(r.code).toBe(0);
    expect(worker.stdout()).toMatch(/job [0-9a-f]{32} \(resize, attempt 1\)/);
    const end = await stopWorker(worker);
    expect(end.stderr).toContain('stopping');
  });

  it('publish --wait --json prints exactly the status object of the result', async () => {
    const g = goal('rpc');
    const worker = await startWorker([g, '--exec', `echo '{"sum":3}'`]);
    const r = await cli(['publish', g, `{"a":1,"b":2,"c":"${CANARY}"}`, '--wait', '--json'], {
      env: env(),
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.endsWith('\n')).toBe(true);
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(1);
    const printed = JSON.parse(r.stdout);
    expect(printed).toEqual(await read('result', printed.id));
    expect(printed).toMatchObject({
      goal: g,
      status: 'fulfilled',
      result_type: 'json',
      result: { sum: 3 },
    });
    // Without --wait, --json is the publish answer itself.
    const p = await cli(['publish', g, '{}', '--json'], { env: env() });
    expect(Object.keys(JSON.parse(p.stdout)).sort()).toEqual(['id', 'namespace', 'status']);
    expect(JSON.parse(p.stdout)).toMatchObject({ status: 'published', namespace: 'default' });
    await stopWorker(worker);
  });

  it('Ctrl-C (SIGINT to the whole terminal group) lets the job in flight finish', async () => {
    const g = goal('drain');
    const id = await publishId([g, `{"n":"${CANARY}"}`]);
    const dir = tempDir();
    const worker = await startWorker(
      [g, '--exec', "sh -c 'touch started; sleep 1; echo finished'"],
      { cwd: dir },
    );
    await worker.waitFor(new RegExp(`job ${id}`));
    for (let i = 0; i < 100 && !existsSync(join(dir, 'started')); i++) await sleep(20);
    process.kill(-worker.child.pid!, 'SIGINT');
    const end = await settle(worker, 8000);
    expect(end.code, end.stderr).toBe(0);
    expect(end.stderr).toContain(`job ${id} done`);
    expect(await read('result', id)).toMatchObject({ status: 'fulfilled', result: 'finished' });
  });
});

describe('listen --exec', () => {
  it('gives the payload on stdin and INTENT_ID, INTENT_GOAL, INTENT_ATTEMPT in the environment', async () => {
    const dir = tempDir();
    script(
      dir,
      'env.sh',
      '#!/bin/sh\npayload=$(cat)\n' +
        'printf \'{"stdin":%s,"id":"%s","goal":"%s","attempt":%s}\\n\' ' +
        '"$payload" "$INTENT_ID" "$INTENT_GOAL" "$INTENT_ATTEMPT"\n',
    );
    const g = goal('env');
    const payload = { n: 1, nested: { list: [1, 'two', null] }, canary: CANARY, text: 'é "q"' };
    const id = await publishId([g, JSON.stringify(payload)]);
    const r = await cli(['listen', g, '--once', '--exec', './env.sh'], { cwd: dir, env: env() });
    expect(r.code, r.stderr).toBe(0);
    expect(await read('result', id)).toMatchObject({
      status: 'fulfilled',
      result_type: 'json',
      result: { stdin: payload, id, goal: g, attempt: 1 },
    });
  });

  it('stdout that parses as JSON is a json result, anything else a text result', async () => {
    const cases: Array<[string, 'json' | 'text', unknown]> = [
      [`echo '{"ok":true}'`, 'json', { ok: true }],
      ['echo 42', 'json', 42],
      ["printf '%s\\n' '[1, 2]'", 'json', [1, 2]],
      [
        'echo {"quotes":"are","removed":"by","splitting":1}',
        'text',
        '{quotes:are,removed:by,splitting:1}',
      ],
      ['echo hello world', 'text', 'hello world'],
      ['printf "two\\nlines\\n"', 'text', 'two\nlines'],
      ['true', 'text', ''],
    ];
    for (const [command, type, value] of cases) {
      const g = goal('stdout');
      const id = await publishId([g, '{}']);
      const r = await cli(['listen', g, '--once', '--exec', command], { env: env() });
      expect(r.code, `${command}: ${r.stderr}`).toBe(0);
      const res = await read('result', id);
      expect(res.result_type, command).toBe(type);
      expect(res.result, command).toEqual(value);
    }
  });

  it('splits CMD into words with quotes respected and expands nothing', async () => {
    const cases: Array<[string, string]> = [
      ["printf '%s' '$HOME *'", '$HOME *'],
      [
        'printf "%s|" a\\ b "c d" \'e f\' ~ $HOME *.ts "$(id)" `id` "x\\"y" \'\' end',
        'a b|c d|e f|~|$HOME|*.ts|$(id)|`id`|x"y||end|',
      ],
      ["printf '%s' a;b", 'a;b'],
    ];
    for (const [command, expected] of cases) {
      const g = goal('words');
      const id = await publishId([g, '{}']);
      const r = await cli(['listen', g, '--once', '--exec', command], { env: env() });
      expect(r.code, `${command}: ${r.stderr}`).toBe(0);
      expect((await read('result', id)).result, command).toBe(expected);
    }
    // A quote left open is a usage error, found before anything is claimed.
    const g = goal('words');
    const id = await publishId([g, '{}']);
    expectUsage(
      await cli(['listen', g, '--once', '--exec', "printf 'oops"], { env: env() }),
      /unterminated single quote/,
    );
    expectUsage(await cli(['listen', g, '--once', '--exec', '  '], { env: env() }), /empty/);
    expect((await read('status', id)).status).toBe('open');
  });

  it('--shell runs CMD with sh -c: pipes and variables work', async () => {
    const g = goal('shell');
    const id = await publishId([g, '"hello"']);
    const r = await cli(
      ['listen', g, '--once', '--shell', '--exec', 'printf "%s:" "$INTENT_GOAL"; cat | tr a-z A-Z'],
      { env: env() },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(await read('result', id)).toMatchObject({
      result_type: 'text',
      result: `${g}:"HELLO"`,
    });
  });

  it('a non-zero exit fails the job with the exit code and the tail of stderr', async () => {
    const g = goal('fail');
    const id = await publishId([g, `{"c":"${CANARY}"}`, '--max-attempts', '1']);
    const command = `sh -c 'echo first words >&2; head -c 2000 /dev/zero | tr "\\0" x >&2; echo last words >&2; exit 7'`;
    const r = await cli(['listen', g, '--once', '--exec', command], { env: env() });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/failed: exit 7/);
    const s = await read('status', id);
    expect(s.status).toBe('dead');
    expect(s.error).toMatch(/^exit 7: x+\s*last words$/);
    expect(s.error).not.toContain('first words');
    expect(s.error.length).toBeLessThanOrEqual(500);
    // A command that cannot be started fails the job too.
    const g2 = goal('fail');
    const id2 = await publishId([g2, '{}', '--max-attempts', '1']);
    const r2 = await cli(['listen', g2, '--once', '--exec', 'no-such-command-here --x'], {
      env: env(),
    });
    expect(r2.code).toBe(1);
    expect((await read('status', id2)).error).toMatch(/cannot run no-such-command-here.*ENOENT/);
  });

  it('--timeout kills a command that runs too long (and what it started) and fails the job', async () => {
    const g = goal('slow');
    const id = await publishId([g, '{}', '--max-attempts', '1']);
    const r = await cli(['listen', g, '--once', '--timeout', '1', '--exec', 'sleep 20'], {
      env: env(),
    });
    expect(r.code).toBe(1);
    expect(r.ms).toBeLessThan(5000);
    expect(await read('status', id)).toMatchObject({
      status: 'dead',
      error: 'timed out after 1 s',
    });

    // Through a shell, with a grandchild holding stdout open: the whole group goes.
    const dir = tempDir();
    const g2 = goal('slow');
    const id2 = await publishId([g2, '{}', '--max-attempts', '1']);
    const r2 = await cli(
      [
        'listen',
        g2,
        '--once',
        '--timeout',
        '1',
        '--shell',
        '--exec',
        'sleep 20 & echo $! > sleep.pid; wait',
      ],
      { cwd: dir, env: env() },
    );
    expect(r2.code).toBe(1);
    expect(r2.ms).toBeLessThan(5000);
    expect((await read('status', id2)).error).toBe('timed out after 1 s');
    const pid = Number(readFileSync(join(dir, 'sleep.pid'), 'utf8'));
    for (let i = 0; i < 20 && isRunning(pid); i++) await sleep(50);
    expect(isRunning(pid)).toBe(false);
  }, 15_000);

  it('a failing command ends in a dead letter after its attempts', async () => {
    const g = goal('doomed');
    const id = await publishId([
      g,
      `{"c":"${CANARY}"}`,
      '--max-attempts',
      '2',
      '--backoff-base',
      '1',
    ]);
    const worker = await startWorker([g, '--exec', "sh -c 'echo no luck >&2; exit 1'"]);
    const r = await cli(['result', id, '--wait', '10'], { env: env(), timeoutMs: 12_000 });
    expect(r.code, r.stdout).toBe(1);
    expect(r.stdout).toMatch(/status: +dead/);
    expect(r.stdout).toMatch(/attempts: +2 of 2/);
    expect(r.stdout).toContain('error:     exit 1: no luck');
    await stopWorker(worker);
    expect(worker.stdout()).toContain(`job ${id} (${g}, attempt 2)`);

    const list = await cli(['admin', 'dead', 'list'], { env: adminEnv() });
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(`${id}  default/${g}  2 attempts  exit 1: no luck`);
    const json = await cli(['admin', 'dead', 'list', '--json'], { env: adminEnv() });
    expect(JSON.parse(json.stdout)).toContainEqual(
      expect.objectContaining({ intent_id: id, goal: g, attempts: 2, reason: 'exit 1: no luck' }),
    );
  }, 15_000);
});

describe('listen', () => {
  it('--once: exit 3 on an empty queue; with jobs, runs exactly one and exits 0', async () => {
    const g = goal('once');
    const empty = await cli(['listen', g, '--once'], { env: env() });
    expect(empty.code).toBe(3);
    expect(empty.stdout).toBe('');
    // --wait: the one claim waits at the bus (here 1 s) before giving up.
    const started = Date.now();
    const waited = await cli(['listen', g, '--once', '--wait', '1'], { env: env() });
    expect(waited.code).toBe(3);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(empty.stderr).toContain('nothing to do');

    const first = await publishId([g, `{"n":1,"c":"${CANARY}"}`]);
    const second = await publishId([g, '{"n":2}']);
    const one = await cli(['listen', g, '--once'], { env: env() });
    expect(one.code, one.stderr).toBe(0);
    // Without --exec the job is printed and fulfilled.
    expect(one.stdout).toBe(`job ${first} (${g}, attempt 1): {"n":1,"c":"${CANARY}"}\n`);
    expect(await read('result', first)).toMatchObject({ status: 'fulfilled', result: null });
    expect((await read('status', second)).status).toBe('open');

    const json = await cli(['listen', g, '--once', '--json'], { env: env() });
    expect(json.code).toBe(0);
    const claimed = JSON.parse(json.stdout);
    expect(claimed).toMatchObject({ id: second, goal: g, payload: { n: 2 }, claim_attempts: 1 });
    expect(claimed.claim_token).toMatch(HEX32);
    expect(json.stderr).toBe('');
  });

  it('claims each next job with the outcome (fulfil?next=1); --no-claim-next claims apart', async () => {
    // Claims the bus answered, from its own /metrics.
    const claims = async (): Promise<number> =>
      (await bus.api('GET', '/metrics', { admin: true })).text
        .split('\n')
        .filter((l) =>
          l.startsWith(
            'intent_bus_http_request_duration_seconds_count{method="POST",route="/claim",',
          ),
        )
        .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    for (const apart of [false, true]) {
      const g = goal(apart ? 'apart' : 'chained');
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) ids.push(await publishId([g, `{"n":${i}}`]));
      const before = await claims();
      const worker = await startWorker(apart ? [g, '--no-claim-next'] : [g]);
      for (const id of ids) {
        const r = await cli(['result', id, '--wait', '8', '--json'], { env: env() });
        expect(JSON.parse(r.stdout).status, r.stderr).toBe('fulfilled');
      }
      await stopWorker(worker);
      const made = (await claims()) - before;
      // Chained: the first claim, the long poll after the last job's 204 (and maybe one
      // more if it ended and began again); apart: one per job at least.
      if (apart) expect(made).toBeGreaterThanOrEqual(6);
      else expect(made).toBeLessThanOrEqual(3);
    }
  });

  it('--concurrency N runs N jobs at the same time', async () => {
    const dir = tempDir();
    script(
      dir,
      'slow.sh',
      '#!/bin/sh\ns=$(date +%s%3N); sleep 1; e=$(date +%s%3N)\necho "{\\"start\\":$s,\\"end\\":$e}"\n',
    );
    const g = goal('parallel');
    const ids = await Promise.all([1, 2, 3].map((n) => publishId([g, `{"n":${n}}`])));
    const worker = await startWorker([g, '--concurrency', '3', '--exec', './slow.sh'], {
      cwd: dir,
    });
    const results = await Promise.all(
      ids.map(async (id) => {
        const r = await cli(['result', id, '--wait', '8', '--json'], { env: env() });
        expect(r.code, r.stderr).toBe(0);
        return JSON.parse(r.stdout).result as { start: number; end: number };
      }),
    );
    await stopWorker(worker);
    const lastStart = Math.max(...results.map((r) => r.start));
    const firstEnd = Math.min(...results.map((r) => r.end));
    expect(lastStart).toBeLessThan(firstEnd);
  });

  it('-w and -c route targeted jobs and jobs that need a capability', async () => {
    const g = goal('routed');
    const id = await publishId([g, '{}', '--target', 'phone-1', '--capability', 'gpu']);
    // Wrong worker id, or lacking the capability: nothing to do.
    expect(
      (await cli(['listen', g, '--once', '-w', 'phone-2', '-c', 'gpu'], { env: env() })).code,
    ).toBe(3);
    expect(
      (await cli(['listen', g, '--once', '-w', 'phone-1', '-c', 'cpu'], { env: env() })).code,
    ).toBe(3);
    const r = await cli(['listen', g, '--once', '-w', 'phone-1', '-c', 'cpu, gpu'], {
      env: env(),
    });
    expect(r.code, r.stderr).toBe(0);
    expect(await read('status', id)).toMatchObject({
      status: 'fulfilled',
      worker_id: 'phone-1',
      target_worker: 'phone-1',
      required_capability: 'gpu',
    });
  });
});

describe('publish', () => {
  it('sends every publish flag', async () => {
    const g = goal('flags');
    const before = Date.now() / 1000;
    const id = await publishId([
      g,
      `{"c":"${CANARY}"}`,
      '-n',
      'cli-ns',
      '--priority',
      '7',
      '--delay',
      '30',
      '--public',
      '--max-attempts',
      '4',
      '--backoff-base',
      '2.5',
      '--ttl',
      '100',
    ]);
    const s = await read('status', id);
    expect(s).toMatchObject({
      namespace: 'cli-ns',
      priority: 7,
      visibility: 'public',
      max_attempts: 4,
      status: 'open',
    });
    expect(s.run_at).toBeGreaterThanOrEqual(before + 29);
    expect(s.expires_at - s.run_at).toBeCloseTo(100, 0);
    const shown = await cli(['admin', 'show', id, '--json'], { env: adminEnv() });
    expect(JSON.parse(shown.stdout)).toMatchObject({ backoff_base: 2.5, payload: { c: CANARY } });
    // Delayed: not claimable yet, even in its namespace.
    expect((await cli(['listen', g, '-n', 'cli-ns', '--once'], { env: env() })).code).toBe(3);

    // Higher priority first; -n on both sides.
    const low = await publishId([g, '{}', '-n', 'cli-ns', '--priority', '1']);
    const high = await publishId([g, '{}', '-n', 'cli-ns', '--priority', '900']);
    expect((await cli(['listen', g, '--once'], { env: env() })).code).toBe(3);
    const r = await cli(['listen', g, '-n', 'cli-ns', '--once', '--json'], { env: env() });
    expect(JSON.parse(r.stdout).id).toBe(high);
    expect((await read('status', low)).status).toBe('open');
  });

  it('--idempotency-key: the same publish again is the same intent; a different body is refused', async () => {
    const g = goal('idem');
    const key = `idem-${Date.now()}`;
    const first = await publishId([g, '{"n":1}', '--idempotency-key', key]);
    const again = await publishId([g, '{"n":1}', '--idempotency-key', key]);
    expect(again).toBe(first);
    const other = await cli(['publish', g, '{"n":2}', '--idempotency-key', key], { env: env() });
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/Key reused with different payload.*idempotency_conflict/);
    // Without a key of mine, each publish is a new intent.
    expect(await publishId([g, '{"n":1}'])).not.toBe(first);
  });

  it('--wait --wait-timeout S gives up with exit 3 while nobody works on it', async () => {
    const g = goal('nobody');
    const r = await cli(['publish', g, '{}', '--wait', '--wait-timeout', '1'], { env: env() });
    expect(r.code).toBe(3);
    expect(r.ms).toBeGreaterThanOrEqual(900);
    expect(r.ms).toBeLessThan(5000);
    expect(r.stdout).toMatch(/status: +open/);
    // A job that dies while we wait: exit 1, and the status says why.
    const g2 = goal('dies');
    const waiting = startCli(['publish', g2, '{}', '--max-attempts', '1', '--wait'], {
      env: env(),
    });
    await waiting.waitFor(/waiting for its result/);
    const worker = await cli(['listen', g2, '--once', '--exec', 'false'], { env: env() });
    expect(worker.code).toBe(1);
    const end = await settle(waiting, 5000);
    expect(end.code).toBe(1);
    expect(end.stdout).toMatch(/status: +dead/);
    expect(end.stdout).toContain('error:     exit 1');
  });
});

describe('publish --file', () => {
  it('publishes every line in batches of 1,000, exactly, and reports bad lines by number', async () => {
    const dir = tempDir();
    const g = goal('file');
    const lines = Array.from(
      { length: 1203 },
      (_, i) => `{"goal":"${g}","namespace":"cli-file","payload":{"i":${i},"n":1.50}}`,
    );
    lines.splice(4, 0, 'not json');
    lines.splice(10, 0, '');
    lines.splice(20, 0, '[1,2]');
    lines.push(`{"goal":"${g}","payload":1,"priority":5000}`);
    const file = join(dir, 'jobs.jsonl');
    writeFileSync(file, lines.join('\n') + '\n');
    const r = await cli(['publish', '--file', file], { env: env() });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toContain('line 5: bad_line: not valid JSON');
    expect(r.stdout).toContain('line 21: bad_line: not a JSON object');
    expect(r.stdout).toMatch(/line 1207: invalid_request: .*priority/);
    expect(r.stdout).toContain('published 1203 of 1206 lines, 3 failed');
    // Each payload as written, every one there once.
    const c = new IntentClient({ baseUrl: bus.url, apiKey: MAIN_KEY });
    const seen = new Set<string>();
    for (;;) {
      const jobs = await c.claimMany(100, { goal: g, namespace: 'cli-file' });
      if (jobs.length === 0) break;
      for (const j of jobs) {
        expect(j.payloadText).toMatch(/^\{"i":\d+,"n":1\.50\}$/);
        seen.add(j.payloadText);
      }
    }
    expect(seen.size).toBe(1203);
    // --json: each line's outcome; a file of good lines exits 0, -n is their namespace.
    const good = join(dir, 'good.jsonl');
    writeFileSync(good, `{"goal":"${g}","payload":1}\n{"goal":"${g}","payload":2}\n`);
    const j = await cli(['publish', '--file', good, '-n', 'cli-file2', '--json'], { env: env() });
    expect(j.code, j.stderr).toBe(0);
    const out = JSON.parse(j.stdout) as Array<{ line: number; status: number; id: string }>;
    expect(out.map((o) => [o.line, o.status])).toEqual([
      [1, 201],
      [2, 201],
    ]);
    expect((await read('status', out[0]!.id)).namespace).toBe('cli-file2');
    expectUsage(
      await cli(['publish', 'g', '--file', good], { env: env() }),
      /--file takes no GOAL/,
    );
  });
});

describe('result and status', () => {
  it('result ID: exit 0 fulfilled (prints the result), 1 dead, 3 unknown or unfinished', async () => {
    const g = goal('result');
    const done = await publishId([g, '{}']);
    await cli(['listen', g, '--once', '--exec', `echo '{"answer":42}'`], { env: env() });
    const ok = await cli(['result', done], { env: env() });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toBe('{\n  "answer": 42\n}\n');
    const json = await cli(['result', done, '--json'], { env: env() });
    expect(JSON.parse(json.stdout)).toEqual(await read('result', done));

    const dead = await publishId([goal('result'), '{}']);
    expect((await cli(['admin', 'cancel', dead], { env: adminEnv() })).code).toBe(0);
    const r1 = await cli(['result', dead], { env: env() });
    expect(r1.code).toBe(1);
    expect(r1.stdout).toMatch(/status: +dead/);
    expect(r1.stdout).toContain('reason:    cancelled');

    const open = await publishId([goal('result'), '{}']);
    expect((await cli(['result', open], { env: env() })).code).toBe(3);
    const unknown = await cli(['result', '0123456789abcdef0123456789abcdef'], { env: env() });
    expect(unknown.code).toBe(3);
    expect(unknown.stdout).toBe('');
    expect(unknown.stderr).toContain('not_found');
  });

  it('result ID --wait S holds until the job ends, or S seconds', async () => {
    const g = goal('hold');
    const id = await publishId([g, '{}']);
    const short = await cli(['result', id, '--wait', '1'], { env: env() });
    expect(short.code).toBe(3);
    expect(short.ms).toBeGreaterThanOrEqual(900);

    const waiting = startCli(['result', id, '--wait', '8'], { env: env() });
    await sleep(300);
    const w = await cli(['listen', g, '--once', '--exec', 'echo late but here'], { env: env() });
    expect(w.code).toBe(0);
    const end = await settle(waiting, 8000);
    expect(end.code).toBe(0);
    expect(end.stdout).toBe('late but here\n');
    expect(end.ms).toBeLessThan(5000);
  });

  it('status ID: for people and with --json; 3 when the id is unknown to the key', async () => {
    const g = goal('status');
    const id = await publishId([g, `{"c":"${CANARY}"}`, '--priority', '5']);
    const human = await cli(['status', id], { env: env() });
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`id:        ${id}`);
    expect(human.stdout).toContain(`goal:      ${g} (namespace default)`);
    expect(human.stdout).toMatch(/status: +open/);
    expect(human.stdout).toMatch(/attempts: +0 of 3/);
    expect(human.stdout).toMatch(/priority: +5, private/);
    expect(human.stdout).not.toContain(CANARY);
    const json = await cli(['status', id, '--json'], { env: env() });
    expect(JSON.parse(json.stdout)).toEqual(await read('status', id));
    expect(JSON.parse(json.stdout)).not.toHaveProperty('result');

    const unknown = await cli(['status', 'ffffffffffffffffffffffffffffffff', '--json'], {
      env: env(),
    });
    expect(unknown.code).toBe(3);
    expect(unknown.stdout).toBe('');
    // Another key's private intent does not exist for this key.
    const { api_key } = await bus.newKey('stranger');
    const stranger = await cli(['status', id, '--key', api_key], {
      env: baseEnv({ INTENT_BUS_URL: bus.url }),
    });
    expect(stranger.code).toBe(3);
  });
});

describe('kv', () => {
  it('kv set NAME VALUE [--ttl S] and kv get NAME: JSON values and plain strings; absent → 3', async () => {
    const e = env();
    const kv = (...args: string[]): Promise<Finished> => cli(['kv', ...args], { env: e });
    // A short-lived value first, so that its second passes while the rest runs.
    expect((await kv('set', 'cli-short', 'soon gone', '--ttl', '1')).code).toBe(0);
    const setAt = Date.now();
    expect((await kv('get', 'cli-short')).stdout).toBe('soon gone\n');

    const sets = await Promise.all([
      kv('set', 'cli-json', '{"n":1,"list":[true]}'),
      kv('set', 'cli-text', 'plain words here'),
      kv('set', 'cli-num', '42'),
      kv('set', 'cli-set', 'x', '--json'),
    ]);
    expect(sets.map((r) => r.code)).toEqual([0, 0, 0, 0]);
    expect(sets[0]!.stdout).toBe('set cli-json\n');
    expect(sets[3]!.stdout).toBe('{"ok":true}\n');

    const [json, jsonJ, text, textJ, num, absent] = await Promise.all([
      kv('get', 'cli-json'),
      kv('get', 'cli-json', '--json'),
      kv('get', 'cli-text'),
      kv('get', 'cli-text', '--json'),
      kv('get', 'cli-num', '--json'),
      kv('get', 'cli-never-set'),
    ]);
    expect(json.code).toBe(0);
    expect(json.stdout).toBe('{\n  "n": 1,\n  "list": [\n    true\n  ]\n}\n');
    expect(jsonJ.stdout).toBe('{"value":{"n":1,"list":[true]}}\n');
    expect(text.stdout).toBe('plain words here\n');
    expect(textJ.stdout).toBe('{"value":"plain words here"}\n');
    expect(num.stdout).toBe('{"value":42}\n');
    expect(absent.code).toBe(3);
    expect(absent.stdout).toBe('');
    expect(absent.stderr).toContain('absent or expired');

    const usage = await Promise.all([
      kv('set', 'only-a-name'),
      kv('drop', 'x'),
      kv('set', 'x', 'y', '--ttl', 'soon'),
    ]);
    expectUsage(usage[0]!, /kv set NAME VALUE/);
    expectUsage(usage[1]!, /kv set NAME VALUE/);
    expectUsage(usage[2]!, /--ttl must be a number/);

    await sleep(Math.max(0, 1300 - (Date.now() - setAt)));
    expect((await kv('get', 'cli-short')).code).toBe(3);
  });
});

describe('exact JSON: numbers as written, from publish to the worker and back', () => {
  /** Numbers JSON.parse rounds or changes (2^53 and beyond, 1.0, 1e400, -0.0, 22 decimals). */
  const PAYLOAD =
    '{"n":12345678901234567890,"m":-98765432109876543210,"d":0.1000000000000000000001,' +
    '"r":1.0,"e":1e400,"list":[1.0,{"x":-0.0}],"empty":{}}';
  /** PAYLOAD as people read it: indented, every number as written. */
  const INDENTED = [
    '{',
    '  "n": 12345678901234567890,',
    '  "m": -98765432109876543210,',
    '  "d": 0.1000000000000000000001,',
    '  "r": 1.0,',
    '  "e": 1e400,',
    '  "list": [',
    '    1.0,',
    '    {',
    '      "x": -0.0',
    '    }',
    '  ],',
    '  "empty": {}',
    '}',
  ].join('\n');
  /** Spaces inside a value are part of its text. */
  const SPACED = '{ "big" : 98765432109876543210 , "f" : [ 2.50 ] }';

  /** Publishes over raw HTTP, the body exactly as written. */
  async function publishRaw(g: string, payload: string): Promise<string> {
    const r = await bus.api('POST', '/intent', {
      raw: `{"goal":"${g}","payload":${payload}}`,
      headers: { 'content-type': 'application/json' },
    });
    expect(r.status, r.text).toBe(201);
    return r.json.id as string;
  }

  it('publish sends PAYLOAD as its own text: a raw claim answers it exactly', async () => {
    for (const payload of [PAYLOAD, SPACED, '-98765432109876543210', '0.1000000000000000000001']) {
      const g = goal('exact-publish');
      // A negative number would be read as a flag: it goes last, after `--`.
      const id = idOf(await cli(['publish', g, '--json', '--', payload], { env: env() }));
      const claim = await bus.api('POST', `/claim?goal=${g}`);
      expect(claim.status).toBe(200);
      expect(claim.json.id).toBe(id);
      expect(claim.text).toContain(`"payload":${payload}`);
    }
  });

  it('listen --exec cat: stdin is the payload as published, the result stdout as written', async () => {
    for (const payload of [PAYLOAD, SPACED, '1e400']) {
      const g = goal('exact-exec');
      const id = await publishRaw(g, payload);
      const r = await cli(['listen', g, '--once', '--exec', 'cat'], { env: env() });
      expect(r.code, r.stderr).toBe(0);
      const res = await bus.api('GET', `/result/${id}`);
      expect(res.json).toMatchObject({ status: 'fulfilled', result_type: 'json' });
      expect(res.text).toContain(`"result":${payload}`);
    }
  });

  it('listen without --exec prints the payload as published; with --json, the claim as answered', async () => {
    const g = goal('exact-print');
    const first = await publishRaw(g, PAYLOAD);
    const one = await cli(['listen', g, '--once'], { env: env() });
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toBe(`job ${first} (${g}, attempt 1): ${PAYLOAD}\n`);
    const second = await publishRaw(g, SPACED);
    const json = await cli(['listen', g, '--once', '--json'], { env: env() });
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ id: second, goal: g, claim_attempts: 1 });
    expect(json.stdout).toMatch(new RegExp(`^\\{"id":"${second}",.*"payload":`));
    expect(json.stdout.endsWith(`,"payload":${SPACED}}\n`)).toBe(true);
  });

  it('publish --wait, result and status print the result as written; --json the answer itself', async () => {
    const g = goal('exact-wait');
    const worker = await startWorker([g, '--exec', 'cat']);
    const human = await cli(['publish', g, PAYLOAD, '--wait'], { env: env() });
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toBe(`${INDENTED}\n`);
    const json = await cli(['publish', g, PAYLOAD, '--wait', '--json'], { env: env() });
    expect(json.code, json.stderr).toBe(0);
    const id = JSON.parse(json.stdout).id as string;
    const answer = await bus.api('GET', `/result/${id}`);
    expect(answer.text).toContain(`"result":${PAYLOAD}`);
    expect(json.stdout).toBe(`${answer.text}\n`);
    await stopWorker(worker);

    expect((await cli(['result', id], { env: env() })).stdout).toBe(`${INDENTED}\n`);
    expect((await cli(['result', id, '--json'], { env: env() })).stdout).toBe(`${answer.text}\n`);
    const status = await bus.api('GET', `/status/${id}`);
    expect((await cli(['status', id, '--json'], { env: env() })).stdout).toBe(`${status.text}\n`);
  });

  it('admin show and admin dead show print the payload and the result as written', async () => {
    const g = goal('exact-admin');
    const id = await publishRaw(g, PAYLOAD);
    expect((await cli(['listen', g, '--once', '--exec', 'cat'], { env: env() })).code).toBe(0);
    const answer = await bus.api('GET', `/admin/intents/${id}`, { admin: true });
    expect(answer.text).toContain(`"payload":${PAYLOAD},"result":${PAYLOAD}}`);
    const json = await cli(['admin', 'show', id, '--json'], { env: adminEnv() });
    expect(json.stdout).toBe(`${answer.text}\n`);
    const human = await cli(['admin', 'show', id], { env: adminEnv() });
    expect(human.stdout).toContain(`  "payload": {\n    "n": 12345678901234567890,\n`);
    expect(human.stdout).toContain(`  "result": {\n    "n": 12345678901234567890,\n`);

    const dead = await publishRaw(g, SPACED);
    expect((await cli(['admin', 'cancel', dead], { env: adminEnv() })).code).toBe(0);
    const letter = await bus.api('GET', `/admin/dead/${dead}`, { admin: true });
    expect(letter.text).toContain(`"payload":${SPACED}`);
    const shown = await cli(['admin', 'dead', 'show', dead, '--json'], { env: adminEnv() });
    expect(shown.stdout).toBe(`${letter.text}\n`);
  });

  it('kv set keeps a JSON VALUE as written; kv get prints it exactly', async () => {
    const e = env();
    const kv = (...args: string[]): Promise<Finished> => cli(['kv', ...args], { env: e });
    expect((await kv('set', 'exact-obj', PAYLOAD)).code).toBe(0);
    expect((await kv('set', 'exact-neg', '--', '-98765432109876543210')).code).toBe(0);
    expect((await kv('set', 'exact-spaced', ` ${SPACED} `)).code).toBe(0);
    expect((await bus.api('GET', '/get/exact-obj')).text).toBe(`{"value":${PAYLOAD}}`);
    expect((await kv('get', 'exact-obj')).stdout).toBe(`${INDENTED}\n`);
    expect((await kv('get', 'exact-obj', '--json')).stdout).toBe(`{"value":${PAYLOAD}}\n`);
    expect((await kv('get', 'exact-neg')).stdout).toBe('-98765432109876543210\n');
    expect((await kv('get', 'exact-neg', '--json')).stdout).toBe(
      '{"value":-98765432109876543210}\n',
    );
    expect((await kv('get', 'exact-spaced', '--json')).stdout).toBe(`{"value":${SPACED}}\n`);
    expect((await kv('get', 'exact-spaced')).stdout).toBe(
      '{\n  "big": 98765432109876543210,\n  "f": [\n    2.50\n  ]\n}\n',
    );
  });
});

describe('admin', () => {
  it('flow set, list and remove', async () => {
    const e = adminEnv();
    const ns = `flow-${++goals}`;
    const set = await cli(['admin', 'flow', 'set', ns, 'g', '--pause', '--rate', '5/2'], {
      env: e,
    });
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toBe(`${ns}/g  paused, at most 5 per 2 s\n`);
    const more = await cli(['admin', 'flow', 'set', ns, '*', '--max-in-flight', '3', '--json'], {
      env: e,
    });
    expect(JSON.parse(more.stdout)).toMatchObject({ namespace: ns, goal: '*', max_in_flight: 3 });
    const list = await cli(['admin', 'flow', 'list'], { env: e });
    expect(list.stdout).toContain(
      `${ns}/*  at most 3 in flight\n${ns}/g  paused, at most 5 per 2 s`,
    );
    const resumed = await cli(['admin', 'flow', 'set', ns, 'g', '--resume', '--rate', 'none'], {
      env: e,
    });
    expect(resumed.stdout).toBe(`${ns}/g  no control (removed)\n`);
    const cleared = await cli(['admin', 'flow', 'set', ns, '*', '--max-in-flight', 'none'], {
      env: e,
    });
    expect(cleared.code).toBe(0);
    const json = JSON.parse((await cli(['admin', 'flow', 'list', '--json'], { env: e })).stdout);
    expect(json.filter((c: { namespace: string }) => c.namespace === ns)).toEqual([]);
    // Typing mistakes are usage errors; a control that is not there is not found (3).
    expectUsage(
      await cli(['admin', 'flow', 'set', ns, 'g', '--rate', '5'], { env: e }),
      /--rate: N\/S/,
    );
    expectUsage(
      await cli(['admin', 'flow', 'set', ns, 'g', '--max-in-flight', '0'], { env: e }),
      /--max-in-flight/,
    );
    expectUsage(
      await cli(['admin', 'flow', 'set', ns, 'g', '--pause', '--resume'], { env: e }),
      /one or the other/,
    );
    expectUsage(await cli(['admin', 'flow', 'set', ns, 'g'], { env: e }), /give --pause/);
    expect((await cli(['admin', 'flow', 'remove', ns, 'g'], { env: e })).code).toBe(3);
  });

  it('keys create, list, revoke by key and by key_id', async () => {
    const e = adminEnv();
    const created = await cli(['admin', 'keys', 'create', 'alice'], { env: e });
    expect(created.code).toBe(0);
    const [apiKey, note] = created.stdout.trimEnd().split('\n');
    expect(apiKey).toMatch(/^tk_[0-9a-f]{32}$/);
    expect(note).toMatch(/key_id kid_\w+, owner alice; the key is shown only now/);
    const bob = JSON.parse(
      (await cli(['admin', 'keys', 'create', 'bob', '--json'], { env: e })).stdout,
    );
    expect(bob).toMatchObject({ owner: 'bob' });
    expect(bob.api_key).toMatch(/^tk_/);
    expect(bob.key_id).toMatch(/^kid_/);

    // The new keys work.
    const viaKey = baseEnv({ INTENT_BUS_URL: bus.url });
    expect((await cli(['kv', 'set', 'mine', '1', '--key', apiKey!], { env: viaKey })).code).toBe(0);
    expect(
      (await cli(['kv', 'set', 'mine', '1', '--key', bob.api_key], { env: viaKey })).code,
    ).toBe(0);

    const list = await cli(['admin', 'keys', 'list'], { env: e });
    expect(list.stdout).toMatch(
      new RegExp(`kid_\\w+  ${apiKey!.slice(0, 8)}…  alice  (1 request|\\d+ requests)$`, 'm'),
    );
    expect(list.stdout).toContain(`${bob.key_id}  ${bob.api_key.slice(0, 8)}…  bob`);
    expect(list.stdout).not.toContain(apiKey);
    const listed = JSON.parse((await cli(['admin', 'keys', 'list', '--json'], { env: e })).stdout);
    expect(listed).toContainEqual(
      expect.objectContaining({
        key_id: bob.key_id,
        owner: 'bob',
        prefix: bob.api_key.slice(0, 8),
      }),
    );
    expect(JSON.stringify(listed)).not.toContain(bob.api_key);

    // Revoke alice by the key itself, bob by his key_id.
    const r1 = await cli(['admin', 'keys', 'revoke', apiKey!], { env: e });
    expect(r1.code).toBe(0);
    expect(r1.stdout).toBe('revoked\n');
    const r2 = await cli(['admin', 'keys', 'revoke', bob.key_id, '--json'], { env: e });
    expect(r2.code).toBe(0);
    expect(JSON.parse(r2.stdout)).toMatchObject({ ok: true });
    const refused = await cli(['kv', 'set', 'mine', '2', '--key', apiKey!], { env: viaKey });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('unauthorized');
    expect((await cli(['kv', 'get', 'mine', '--key', bob.api_key], { env: viaKey })).code).toBe(1);
    const after = await cli(['admin', 'keys', 'list', '--json'], { env: e });
    expect(after.stdout).not.toContain(bob.key_id);
    expect((await cli(['admin', 'keys', 'revoke', bob.key_id], { env: e })).code).toBe(3);
  });

  it('dead show, show, retry, cancel', async () => {
    const e = adminEnv();
    const g = goal('admin');
    const id = await publishId([g, `{"c":"${CANARY}"}`, '--max-attempts', '1']);
    await cli(['listen', g, '--once', '--exec', "sh -c 'echo broken >&2; exit 2'"], { env: env() });

    const dead = await cli(['admin', 'dead', 'show', id], { env: e });
    expect(dead.code).toBe(0);
    expect(JSON.parse(dead.stdout)).toMatchObject({
      intent_id: id,
      goal: g,
      attempts: 1,
      reason: 'exit 2: broken',
      payload: { c: CANARY },
    });
    const deadJson = await cli(['admin', 'dead', 'show', id, '--json'], { env: e });
    expect(JSON.parse(deadJson.stdout)).toEqual(JSON.parse(dead.stdout));
    expect((await cli(['admin', 'dead', 'show', 'f'.repeat(32)], { env: e })).code).toBe(3);

    const shown = await cli(['admin', 'show', id], { env: e });
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({
      id,
      status: 'dead',
      publisher: 'main',
      payload: { c: CANARY },
      error: 'exit 2: broken',
    });
    expect((await cli(['admin', 'show', 'f'.repeat(32)], { env: e })).code).toBe(3);

    const retried = await cli(['admin', 'retry', id], { env: e });
    expect(retried.code).toBe(0);
    expect(retried.stdout).toBe(`${id}: open\n`);
    expect(await read('status', id)).toMatchObject({ status: 'open', claim_attempts: 0 });
    expect((await cli(['admin', 'dead', 'show', id], { env: e })).code).toBe(3);

    const cancelled = await cli(['admin', 'cancel', id, '--json'], { env: e });
    expect(JSON.parse(cancelled.stdout)).toEqual({ ok: true, id, status: 'dead' });
    expect((await read('status', id)).status).toBe('dead');
    expect((await cli(['admin', 'dead', 'list', '-n', 'default'], { env: e })).stdout).toContain(
      `${id}  default/${g}  0 attempts  cancelled`,
    );
    expect((await cli(['admin', 'dead', 'list', '-n', 'elsewhere'], { env: e })).stdout).toBe(
      'no dead letters\n',
    );
    expect((await cli(['admin', 'retry', 'f'.repeat(32)], { env: e })).code).toBe(3);
  });

  it('purge needs --yes; -n limits it to a namespace; cleanup runs housekeeping', async () => {
    const own = await startTestBus();
    try {
      const e = baseEnv({ INTENT_BUS_URL: own.url, INTENT_API_KEY: MAIN_KEY });
      const a = await publishId(['purged', '{}', '-n', 'scratch'], { env: e });
      const b = await publishId(['kept', '{}'], { env: e });
      const withToken = ['--admin-token', ADMIN_TOKEN];

      expectUsage(await cli(['admin', 'purge', ...withToken], { env: e }), /add --yes/);
      expectUsage(
        await cli(['admin', 'purge', '-n', 'scratch', ...withToken], { env: e }),
        /--yes/,
      );
      expect((await cli(['status', a], { env: e })).code).toBe(0);

      const one = await cli(['admin', 'purge', '-n', 'scratch', '--yes', ...withToken], {
        env: e,
      });
      expect(one.code).toBe(0);
      expect(one.stdout).toBe('deleted 1 intent (0 dead letters)\n');
      expect((await cli(['status', a], { env: e })).code).toBe(3);
      expect((await cli(['status', b], { env: e })).code).toBe(0);

      const all = await cli(['admin', 'purge', '--yes', '--json', ...withToken], { env: e });
      expect(JSON.parse(all.stdout)).toMatchObject({ ok: true, intents_deleted: 1 });
      expect((await cli(['status', b], { env: e })).code).toBe(3);

      const clean = await cli(['admin', 'cleanup', ...withToken], { env: e });
      expect(clean.code).toBe(0);
      for (const k of ['expired_open_deleted', 'expired_claims_requeued', 'nonces_deleted'])
        expect(clean.stdout).toMatch(new RegExp(`^${k}: \\d+$`, 'm'));
      const cleanJson = JSON.parse(
        (await cli(['admin', 'cleanup', '--json', ...withToken], { env: e })).stdout,
      );
      for (const k of CLEANUP_COUNTERS) expect(typeof cleanJson[k], k).toBe('number');
    } finally {
      await own.close();
    }
  });

  it('takes the admin token from --admin-token, INTENT_ADMIN_TOKEN or BUS_ADMIN_SECRET', async () => {
    const plain = baseEnv({ INTENT_BUS_URL: bus.url });
    const ok = (r: Finished): void => expect(r.code, r.stderr).toBe(0);
    ok(await cli(['admin', 'keys', 'list', '--admin-token', ADMIN_TOKEN], { env: plain }));
    ok(
      await cli(['admin', 'keys', 'list'], { env: { ...plain, INTENT_ADMIN_TOKEN: ADMIN_TOKEN } }),
    );
    ok(await cli(['admin', 'keys', 'list'], { env: { ...plain, BUS_ADMIN_SECRET: ADMIN_TOKEN } }));
    const wrong = await cli(['admin', 'keys', 'list', '--admin-token', 'not-the-token'], {
      env: plain,
    });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/unauthorized.*HTTP 401/);
    // An API key is never an admin credential, and no token at all says where to put one.
    expectOneLine(
      await cli(['admin', 'keys', 'list', '--key', MAIN_KEY], { env: plain, cwd: tempDir() }),
      1,
      /^intent-bus admin: no admin token: pass --admin-token, set INTENT_ADMIN_TOKEN or write it to ~\/\.admintoken/,
    );
    expectUsage(
      await cli(['admin', 'frobnicate'], { env: adminEnv() }),
      /unknown admin command: frobnicate/,
    );
    expectUsage(await cli(['admin'], { env: adminEnv() }), /unknown admin command/);
    expectUsage(await cli(['admin', 'keys', 'create'], { env: adminEnv() }), /keys create OWNER/);
    expectUsage(await cli(['admin', 'retry'], { env: adminEnv() }), /admin retry ID/);
    expectUsage(await cli(['admin', 'cleanup', 'now'], { env: adminEnv() }), /admin cleanup/);
  });
});

describe('usage errors, keys and URLs', () => {
  it('exit 2 with the usage for every mistake in how a command is typed', async () => {
    const e = env();
    const unknown = await cli(['frobnicate'], { env: e });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
    expect(unknown.stderr).toContain('Usage: intent-bus COMMAND');
    const none = await cli([], { env: e });
    expect(none.code).toBe(2);
    expect(none.stdout).toContain('Usage: intent-bus COMMAND');

    const mistakes: Array<[string[], RegExp]> = [
      [['publish', 'only-a-goal'], /expected GOAL and PAYLOAD/],
      [['publish'], /expected GOAL and PAYLOAD/],
      [['status'], /expected ID/],
      [['status', 'a', 'b'], /expected ID/],
      [['result'], /expected ID/],
      [['listen'], /expected GOAL/],
      [['publish', 'g', '{}', '--frob'], /Unknown option '--frob'/],
      [['listen', 'g', '--exec'], /argument missing/],
      [['publish', 'g', 'not json'], /JSON argument PAYLOAD: .* at position 1/],
      [['publish', 'g', '{"open":'], /JSON argument PAYLOAD: Unexpected end of JSON input/],
      [['publish', 'g', '{}', '--priority', 'high'], /--priority must be a number/],
      [['result', 'x', '--wait', 'long'], /--wait must be a number/],
      [['listen', 'g', '--concurrency', '0'], /--concurrency/],
      [['listen', 'g', '--shell'], /go with --exec/],
      [['listen', 'g', '--timeout', '5'], /go with --exec/],
      [['listen', 'g', '--exec', 'true', '--timeout', 'x'], /--timeout must be a number/],
    ];
    const answers = await Promise.all(mistakes.map(([args]) => cli(args, { env: e })));
    answers.forEach((r, i) => expectUsage(r, mistakes[i]![1]));
    // The bus refuses a value: an error (1), not a usage mistake.
    expectOneLine(
      await cli(['publish', 'g', '{}', '--priority', '5000'], { env: e }),
      1,
      /HTTP 400/,
    );
  });

  it('finds the key in ~/.apikey, warns when others can read it; --key and INTENT_API_KEY come first', async () => {
    const { api_key, key_id } = await bus.newKey('apikey-file');
    const home = tempDir('intent-bus-home-');
    const file = join(home, '.apikey');
    writeFileSync(file, `${api_key}\n`);
    chmodSync(file, 0o600);
    const e = baseEnv({ HOME: home, INTENT_BUS_URL: bus.url });
    const publisherOf = async (r: Finished): Promise<string> =>
      JSON.parse((await cli(['admin', 'show', idOf(r), '--json'], { env: adminEnv() })).stdout)
        .publisher;

    const quiet = await cli(['publish', 'from-file', '{}', '--json'], { env: e });
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stderr).toBe('');
    expect(await publisherOf(quiet)).toBe(key_id);

    chmodSync(file, 0o644);
    const warned = await cli(['publish', 'from-file', '{}', '--json'], { env: e });
    expect(warned.code).toBe(0);
    expect(warned.stderr).toMatch(
      /^warning: .*\.apikey can be read by other users \(mode 644\); run: chmod 600 /,
    );
    expect(await publisherOf(warned)).toBe(key_id);

    const fromEnv = await cli(['publish', 'from-env', '{}', '--json'], {
      env: { ...e, INTENT_API_KEY: MAIN_KEY },
    });
    expect(fromEnv.stderr).toBe('');
    expect(await publisherOf(fromEnv)).toBe('main');
    const fromFlag = await cli(['publish', 'from-flag', '{}', '--json', '--key', api_key], {
      env: { ...e, INTENT_API_KEY: 'tk_not_a_real_key' },
    });
    expect(fromFlag.code, fromFlag.stderr).toBe(0);
    expect(await publisherOf(fromFlag)).toBe(key_id);
    const bad = await cli(['publish', 'bad-key', '{}', '--key', 'tk_not_a_real_key'], { env: e });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/HTTP 401/);
  });

  it('--url wins over INTENT_BUS_URL; an unreachable bus is exit 1 with the reason', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const e = env({ INTENT_BUS_URL: dead });
    const down = await cli(['listen', 'g', '--once'], { env: e });
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/ECONNREFUSED/);
    const up = await cli(['publish', goal('url'), '{}', '--url', bus.url], { env: e });
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toMatch(/^published [0-9a-f]{32} \(namespace default\)\n$/);
  });

  it('signs requests by default; --no-sign sends them unsigned', async () => {
    const strict = await startTestBus({ env: { BUS_REQUIRE_SIGNATURES: 'true' } });
    try {
      const e = baseEnv({ INTENT_BUS_URL: strict.url, INTENT_API_KEY: MAIN_KEY });
      const signed = await cli(['publish', 'signed', '{}'], { env: e });
      expect(signed.code, signed.stderr).toBe(0);
      const unsigned = await cli(['publish', 'unsigned', '{}', '--no-sign'], { env: e });
      expect(unsigned.code).toBe(1);
      expect(unsigned.stderr).toMatch(/Signed request required.*signature_required/);
      // A bus that does not require signatures takes both.
      expect((await cli(['publish', goal('nosign'), '{}', '--no-sign'], { env: env() })).code).toBe(
        0,
      );
    } finally {
      await strict.close();
    }
  });
});

/** `intent-bus serve` with a free port; resolves once /health answers. */
async function startServe(args: string[], extraEnv: Record<string, string> = {}) {
  const port = await freePort();
  const p = startCli(['serve', '--port', String(port), ...args], {
    env: baseEnv(extraEnv),
    logStdout: true,
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (p.child.exitCode !== null) throw new Error(`serve exited: ${p.stderr()}`);
    const ok = await fetch(`${url}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return { p, url };
    if (i > 100) throw new Error(`serve did not answer: ${p.stderr()}`);
    await sleep(50);
  }
}

describe('serve', () => {
  const secrets = [
    '--secret',
    MAIN_KEY,
    '--admin-secret',
    ADMIN_TOKEN,
    '--dashboard-password',
    DASHBOARD_PASSWORD,
  ];

  it('runs the bus from flags alone, and the client commands reach it', async () => {
    const dir = tempDir();
    const db = join(dir, 'data', 'bus.db');
    const metrics = 'metrics_token_0123456789abcdef';
    const { p, url } = await startServe([
      '--host',
      '127.0.0.1',
      '--db',
      db,
      ...secrets,
      '--metrics-token',
      metrics,
      '--require-signatures',
      'true',
      '--claim-timeout-seconds',
      '45',
      '--max-body-bytes',
      '4096',
      '--max-batch-body-bytes',
      '1048576',
      '--rate-limit-per-minute',
      '100000',
      '--cleanup-interval-seconds',
      '30',
      '--max-waiters',
      '100',
      '--retention-seconds',
      '3600',
      '--log-level',
      'warn',
    ]);
    expect(existsSync(db)).toBe(true);
    const e = baseEnv({ INTENT_BUS_URL: url, INTENT_API_KEY: MAIN_KEY });
    const g = goal('served');
    expect((await cli(['publish', g, `{"c":"${CANARY}"}`], { env: e })).code).toBe(0);
    const claimed = await cli(['listen', g, '--once', '--json'], { env: e });
    expect(claimed.code, claimed.stderr).toBe(0);
    expect(JSON.parse(claimed.stdout).claim_timeout).toBe(45);
    const big = await cli(['publish', g, JSON.stringify({ blob: 'x'.repeat(5000) })], { env: e });
    expect(big.code).toBe(1);
    expect(big.stderr).toContain('payload_too_large');
    const unsigned = await cli(['publish', g, '{}', '--no-sign'], { env: e });
    expect(unsigned.stderr).toContain('signature_required');
    const keys = await cli(['admin', 'keys', 'list', '--admin-token', ADMIN_TOKEN], { env: e });
    expect(keys.code).toBe(0);
    const m = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${metrics}` } });
    expect(m.status).toBe(200);
    expect(await m.text()).toContain('intent_bus_intents_total');
    // --log-level warn: no info line for all those requests.
    expect(p.stdout()).not.toContain('"level":30');
    p.child.kill('SIGTERM');
    expect((await settle(p, 5000)).code).toBe(0);
  });

  it('takes --trust-proxy, --enforce-https, --max-open-per-key, --max-waiters-per-key, --db-path', async () => {
    const dir = tempDir();
    const { url } = await startServe([
      '--db-path',
      join(dir, 'bus.db'),
      ...secrets,
      '--trust-proxy',
      'true',
      '--enforce-https',
      'true',
      '--max-open-per-key',
      '2',
      '--max-waiters-per-key',
      '0',
      '--rate-limit-per-minute',
      '100000',
    ]);
    expect(existsSync(join(dir, 'bus.db'))).toBe(true);
    // Through a proxy from afar: plain HTTP is refused, HTTPS at the proxy passes.
    const far = { 'x-forwarded-for': '203.0.113.9', 'x-api-key': MAIN_KEY };
    const plain = await fetch(`${url}/status/${'a'.repeat(32)}`, { headers: far });
    expect(plain.status).toBe(403);
    expect(await plain.text()).toContain('https_required');
    const tls = await fetch(`${url}/status/${'a'.repeat(32)}`, {
      headers: { ...far, 'x-forwarded-proto': 'https' },
    });
    expect(tls.status).toBe(404);

    const created = await cli(['admin', 'keys', 'create', 'quota', '--json'], {
      env: baseEnv({ INTENT_BUS_URL: url, INTENT_ADMIN_TOKEN: ADMIN_TOKEN }),
    });
    const { api_key } = JSON.parse(created.stdout) as { api_key: string };
    const e = baseEnv({ INTENT_BUS_URL: url, INTENT_API_KEY: api_key });
    expect((await cli(['publish', 'q', '{}'], { env: e })).code).toBe(0);
    expect((await cli(['publish', 'q', '{}'], { env: e })).code).toBe(0);
    const client = new IntentClient({ baseUrl: url, apiKey: api_key, retries: 0 });
    const third = await client.publish('q', {}).catch((err: unknown) => err);
    expect(third).toBeInstanceOf(RateLimitError);
    expect((third as RateLimitError).code).toBe('limit_exceeded');
    // No long poll for this key: an empty claim answers at once.
    const started = Date.now();
    expect(await client.claim({ goal: 'none', waitSeconds: 5 })).toBeNull();
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('takes --max-streams-per-key, --max-streams, --stream-buffer-bytes, --event-window', async () => {
    const dir = tempDir();
    const { url } = await startServe([
      '--db',
      join(dir, 'bus.db'),
      ...secrets,
      '--max-streams-per-key',
      '1',
      '--max-streams',
      '2',
      '--stream-buffer-bytes',
      '65536',
      '--event-window',
      '100',
    ]);
    const created = await cli(['admin', 'keys', 'create', 'streams', '--json'], {
      env: baseEnv({ INTENT_BUS_URL: url, INTENT_ADMIN_TOKEN: ADMIN_TOKEN }),
    });
    const { api_key } = JSON.parse(created.stdout) as { api_key: string };
    const open = new AbortController();
    try {
      const first = await fetch(`${url}/events`, {
        headers: { 'x-api-key': api_key },
        signal: open.signal,
      });
      expect(first.status).toBe(200);
      // One stream per key: the second is refused.
      const second = await fetch(`${url}/events`, { headers: { 'x-api-key': api_key } });
      expect(second.status).toBe(429);
      expect(await second.text()).toContain('too_many_streams');
      // Two per node: the main key gets one more, then none.
      const main = await fetch(`${url}/events`, {
        headers: { 'x-api-key': MAIN_KEY },
        signal: open.signal,
      });
      expect(main.status).toBe(200);
      const third = await fetch(`${url}/events`, { headers: { 'x-api-key': MAIN_KEY } });
      expect(third.status).toBe(429);
      await third.text();
    } finally {
      open.abort();
    }
  });

  it('--maintenance-mode true answers 503 maintenance', async () => {
    const { url } = await startServe([
      '--db',
      join(tempDir(), 'bus.db'),
      ...secrets,
      '--maintenance-mode',
      'true',
    ]);
    const r = await cli(['listen', 'g', '--once'], {
      env: baseEnv({ INTENT_BUS_URL: url, INTENT_API_KEY: MAIN_KEY }),
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/maintenance.*HTTP 503/);
  });

  it('serves HTTPS with --tls-cert and --tls-key', async () => {
    const dir = tempDir();
    const { cert, key } = selfSignedCert(dir);
    const port = await freePort();
    const p = startCli(
      [
        'serve',
        '--port',
        String(port),
        '--db',
        join(dir, 'bus.db'),
        ...secrets,
        '--tls-cert',
        cert,
        '--tls-key',
        key,
      ],
      { env: baseEnv(), logStdout: true },
    );
    await p.waitFor(/"url":"https:\/\/127\.0\.0\.1:\d+"/);
    const url = `https://127.0.0.1:${port}`;
    const e = baseEnv({ INTENT_BUS_URL: url, INTENT_API_KEY: MAIN_KEY });
    const trusted = await cli(['publish', 'over-tls', '{}'], {
      env: { ...e, NODE_EXTRA_CA_CERTS: cert },
    });
    expect(trusted.code, trusted.stderr).toBe(0);
    const untrusted = await cli(['listen', 'over-tls', '--once'], { env: e });
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(/certificate/);
  });

  it('--help gives every flag its variable, meaning and default, --db first; --version prints it', async () => {
    const help = await cli(['serve', '--help']);
    expect(help.code).toBe(0);
    const lines = help.stdout.split('\n');
    const flagLines = lines.filter((l) => /^ {2}--/.test(l));
    expect(flagLines.length).toBeGreaterThan(20);
    for (const l of flagLines) {
      expect(l, 'names its variable').toMatch(/ {2,}[A-Z_]+(, [A-Z_]+)*$/);
      const meaning = lines[lines.indexOf(l) + 1]!;
      expect(meaning, l).toMatch(/^ {6}\S.*\. Default: \S/);
    }
    // --db is the flag (as the README writes it); --db-path is its alias, not a line of its own.
    expect(help.stdout).toMatch(/^ {2}--db PATH \(or --db-path\) +BUS_DB_PATH$/m);
    expect(help.stdout).toMatch(/Default: \.\/intent-bus-data\/bus\.db$/m);
    expect(help.stdout).toMatch(/^ {2}--port N +BUS_PORT, PORT\n.*Default: 8080$/m);
    expect(flagLines.filter((l) => l.startsWith('  --db-path'))).toEqual([]);
    const version = await cli(['serve', '--version']);
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout).toBe('0.1.0\n');
  });

  it('refuses a bad value of every setting flag with exit 2, naming it', async () => {
    const dir = tempDir();
    const bad: Array<[string[], RegExp]> = [
      [['--secret', 'dev_secret'], /BUS_SECRET/],
      [['--admin-secret', 'short'], /BUS_ADMIN_SECRET/],
      [['--dashboard-password', 'short'], /DASHBOARD_PASSWORD/],
      [['--port', '70000'], /--port/],
      [['--sqlite-driver', 'sqlite4'], /--sqlite-driver/],
      [['--database-url', 'postgres://db.example/bus'], /BUS_DATABASE_URL/],
      [['--database-schema', 'bus'], /BUS_DATABASE_SCHEMA/],
      [['--require-signatures', 'maybe'], /--require-signatures/],
      [['--trust-proxy', 'maybe'], /--trust-proxy/],
      [['--enforce-https', 'maybe'], /--enforce-https/],
      [['--tls-cert', join(dir, 'none.pem')], /BUS_TLS_CERT and BUS_TLS_KEY/],
      [['--tls-key', join(dir, 'none.pem')], /BUS_TLS_CERT and BUS_TLS_KEY/],
      [['--maintenance-mode', 'maybe'], /--maintenance-mode/],
      [['--claim-timeout-seconds', '0'], /--claim-timeout-seconds/],
      [['--max-body-bytes', '5'], /--max-body-bytes/],
      [['--rate-limit-per-minute', '0'], /--rate-limit-per-minute/],
      [['--max-open-per-key', 'lots'], /--max-open-per-key/],
      [['--cleanup-interval-seconds', '0'], /--cleanup-interval-seconds/],
      [['--max-waiters-per-key', 'x'], /--max-waiters-per-key/],
      [['--max-waiters', 'x'], /--max-waiters/],
      [['--retention-seconds', '1'], /--retention-seconds/],
      // These two open their store before they read the file: each its own (one bus per
      // SQLite file, and they run at the same time).
      [
        ['--schedules', join(dir, 'none.json'), '--db', join(tempDir(), 'bus.db')],
        /BUS_SCHEDULES_FILE: \S+none\.json: cannot read it/,
      ],
      [
        ['--schedules-file', join(dir, 'none.json'), '--db', join(tempDir(), 'bus.db')],
        /BUS_SCHEDULES_FILE: .*\(ENOENT\)/,
      ],
      [['--log-level', 'loud'], /--log-level/],
      [['--metrics-token'], /argument missing/],
      [['--host'], /argument missing/],
      [['--frob', '1'], /Unknown option '--frob'/],
    ];
    const env0 = baseEnv({
      BUS_SECRET: MAIN_KEY,
      BUS_ADMIN_SECRET: ADMIN_TOKEN,
      DASHBOARD_PASSWORD,
      BUS_DB_PATH: join(dir, 'bus.db'),
      BUS_PORT: '0',
    });
    // Each its own data file: starts that get as far as the store would otherwise find the
    // file in use by another of them ("one bus per SQLite file") before their own error.
    const results = await Promise.all(
      bad.map(([args], i) =>
        cli(['serve', ...args], { env: { ...env0, BUS_DB_PATH: join(dir, `bus-${i}.db`) } }),
      ),
    );
    results.forEach((r, i) => {
      const [args, names] = bad[i]!;
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(names);
      expect(r.stderr).toMatch(/^intent-bus: /);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    });
  }, 15_000);
});

describe("a newcomer's first hour", () => {
  it('only a typing mistake prints the usage; any other error is one line saying what to do', async () => {
    // No key anywhere (and no bus data in this folder).
    expectOneLine(
      await cli(['publish', 'g', '{}'], {
        env: baseEnv({ INTENT_BUS_URL: bus.url }),
        cwd: tempDir(),
      }),
      1,
      /^intent-bus publish: no API key: pass --key, set INTENT_API_KEY or write it to ~\/\.apikey; or, for the bus on this machine, pass --db with its database \(.*secrets\.json has no BUS_SECRET\)\n$/,
    );
    // A key the bus refuses: which key it was.
    expectOneLine(
      await cli(['status', 'f'.repeat(32), '--key', 'tk_not_a_real_key'], {
        env: baseEnv({ INTENT_BUS_URL: bus.url }),
      }),
      1,
      /HTTP 401\); check the API key of --key\n$/,
    );
    expectOneLine(
      await cli(['status', 'f'.repeat(32)], {
        env: env({ INTENT_API_KEY: 'tk_not_a_real_key' }),
      }),
      1,
      /check the API key of INTENT_API_KEY\n$/,
    );
    // Unknown here: 3, one line.
    expectOneLine(await cli(['status', 'f'.repeat(32)], { env: env() }), 3, /not_found/);
    // A typing mistake still shows the usage.
    expectUsage(await cli(['status'], { env: env() }), /expected ID/);
  });

  it('a bus that is down: "is the bus running at URL?", one line, exit 1; listen --once too', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const e = env({ INTENT_BUS_URL: dead });
    const down =
      /^intent-bus (publish|listen|admin): is the bus running at http:\/\/127\.0\.0\.1:\d+\? \(connect ECONNREFUSED 127\.0\.0\.1:\d+\)\n$/;
    const results = await Promise.all([
      cli(['publish', 'g', '{}'], { env: e }),
      cli(['listen', 'g', '--once'], { env: e }),
      cli(['admin', 'keys', 'list', '--admin-token', ADMIN_TOKEN], { env: e }),
    ]);
    for (const r of results) expectOneLine(r, 1, down);
    // Not an interruption: no "stopping: no new claims" line.
    expect(results[1]!.stderr).not.toContain('stopping');
    // Empty queue: "nothing to do", alone.
    const empty = await cli(['listen', goal('quiet'), '--once'], { env: env() });
    expect(empty.code).toBe(3);
    expect(empty.stderr).toBe('nothing to do\n');
    // A worker left running says what to check while it retries.
    const w = startCli(['listen', 'g'], { env: e });
    await w.waitFor(/warning: is the bus running at http:\/\/127\.0\.0\.1:\d+\? retrying in \d+ s/);
    await stopWorker(w);
  });

  it('a --url or INTENT_BUS_URL without http:// is a usage error naming the setting', async () => {
    expectOneLine(
      await cli(['status', 'f'.repeat(32), '--url', '127.0.0.1:8080'], { env: env() }),
      2,
      /^intent-bus status: --url: "127\.0\.0\.1:8080" is not an http:\/\/ or https:\/\/ URL; write e\.g\. http:\/\/127\.0\.0\.1:8080\n$/,
    );
    expectOneLine(
      await cli(['publish', 'g', '{}'], { env: env({ INTENT_BUS_URL: 'localhost:8080' }) }),
      2,
      /^intent-bus publish: INTENT_BUS_URL: "localhost:8080" is not an http:\/\/ or https:\/\/ URL; write e\.g\. http:\/\/localhost:8080\n$/,
    );
  });

  it('a bad JSON argument names the argument and the position of the error', async () => {
    const cases: Array<[string, RegExp]> = [
      ['{"a":}', /JSON argument PAYLOAD: Unexpected token '\}' at position 5\n/],
      [
        '{"a":1}x',
        /JSON argument PAYLOAD: Unexpected non-whitespace character after JSON at position 7\n/,
      ],
      ['[1 2]', /JSON argument PAYLOAD: Expected ',' or '\]' after array element at position 3\n/],
      [
        'hello',
        /JSON argument PAYLOAD: Unexpected token 'h' at position 0; a string is written '"hello"'\n/,
      ],
    ];
    const answers = await Promise.all(cases.map(([j]) => cli(['publish', 'g', j], { env: env() })));
    answers.forEach((r, i) => {
      expectUsage(r, cases[i]![1]);
      expect(r.stderr.split('\n')[0]).toMatch(/^intent-bus publish: JSON argument PAYLOAD: /);
    });
  });

  it("on the bus's machine the key and the admin token come from its secrets.json; --help says where each is looked for", async () => {
    // A bus as a newcomer starts it: secrets generated into its data folder.
    const dir = tempDir();
    const db = join(dir, 'intent-bus-data', 'bus.db');
    const { url } = await startServe(['--db', db]);
    const port = new URL(url).port;
    const plain = baseEnv({ INTENT_BUS_URL: url });
    const ok = (r: Finished): Finished => {
      expect(r.code, r.stderr).toBe(0);
      return r;
    };
    // In the folder where it was started: nothing to copy.
    ok(await cli(['publish', goal('local'), '{}'], { env: plain, cwd: dir }));
    ok(await cli(['admin', 'keys', 'list'], { env: plain, cwd: dir }));
    ok(
      await cli(['admin', 'keys', 'list'], {
        env: baseEnv({ INTENT_BUS_URL: `http://localhost:${port}` }),
        cwd: dir,
      }),
    );
    // Elsewhere, beside BUS_DB_PATH or --db.
    const elsewhere = tempDir();
    ok(await cli(['kv', 'set', 'n', '1'], { env: { ...plain, BUS_DB_PATH: db }, cwd: elsewhere }));
    ok(await cli(['admin', 'cleanup', '--db', db], { env: plain, cwd: elsewhere }));
    expectOneLine(
      await cli(['admin', 'keys', 'list'], { env: plain, cwd: elsewhere }),
      1,
      /no admin token: .*\(.*secrets\.json has no BUS_ADMIN_SECRET\)\n$/,
    );
    // A key given wins over the file; a bus on another machine never gets the local secrets.
    expectOneLine(
      await cli(['kv', 'get', 'n', '--key', 'tk_not_a_real_key'], { env: plain, cwd: dir }),
      1,
      /HTTP 401/,
    );
    expectOneLine(
      await cli(['kv', 'get', 'n', '--url', `http://bus.invalid:${port}`], {
        env: plain,
        cwd: dir,
      }),
      1,
      /^intent-bus kv: no API key: pass --key, set INTENT_API_KEY or write it to ~\/\.apikey\n$/,
    );
    // The admin token like the key: ~/.admintoken too, with the same warning.
    const home = tempDir('intent-bus-home-');
    writeFileSync(join(home, '.admintoken'), `${ADMIN_TOKEN}\n`);
    chmodSync(join(home, '.admintoken'), 0o644);
    const fromHome = await cli(['admin', 'keys', 'list'], {
      env: baseEnv({ INTENT_BUS_URL: bus.url, HOME: home }),
      cwd: elsewhere,
    });
    expect(fromHome.code, fromHome.stderr).toBe(0);
    expect(fromHome.stderr).toMatch(/^warning: .*\.admintoken can be read by other users/);

    const help = (await cli(['admin', '--help'])).stdout;
    expect(help).toMatch(
      /--key KEY +the API key; else INTENT_API_KEY, else ~\/\.apikey, else,[\s\S]*BUS_SECRET in its secrets\.json/,
    );
    expect(help).toMatch(
      /--admin-token TOKEN +the admin token of admin commands; else INTENT_ADMIN_TOKEN, else\s+BUS_ADMIN_SECRET, else ~\/\.admintoken, else,[\s\S]*BUS_ADMIN_SECRET in its secrets\.json/,
    );
    expect(help).toMatch(/--db PATH +where that secrets\.json is/);
  });

  it('dead letters say "1 attempt"; a failed job is logged once', async () => {
    const g = goal('once-failed');
    const id = await publishId([g, '{}', '--max-attempts', '1']);
    const r = await cli(['listen', g, '--once', '--exec', "sh -c 'echo nope >&2; exit 4'"], {
      env: env(),
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`job ${id} failed: exit 4: nope\n`);
    const list = await cli(['admin', 'dead', 'list'], { env: adminEnv() });
    expect(list.stdout).toContain(`${id}  default/${g}  1 attempt  exit 4: nope\n`);
  });

  it("listen --publisher KEY_ID takes a tester key's private jobs with the main key; --help says why", async () => {
    const g = goal('owned');
    const { api_key, key_id } = await bus.newKey('tester-publisher');
    const id = await publishId([g, '{"from":"tester"}'], {
      env: baseEnv({ INTENT_BUS_URL: bus.url, INTENT_API_KEY: api_key }),
    });
    // The ownership rule: a main-key worker sees public jobs and its own, not this one.
    expect((await cli(['listen', g, '--once'], { env: env() })).code).toBe(3);
    const r = await cli(['listen', g, '--once', '--publisher', key_id], { env: env() });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`job ${id} (${g}, attempt 1): {"from":"tester"}\n`);
    // Only the main key may name another key.
    const other = await bus.newKey('tester-other');
    expectOneLine(
      await cli(['listen', g, '--once', '--publisher', key_id], {
        env: baseEnv({ INTENT_BUS_URL: bus.url, INTENT_API_KEY: other.api_key }),
      }),
      1,
      /forbidden.*HTTP 403/,
    );
    const help = (await cli(['listen', '--help'])).stdout;
    expect(help).toMatch(/--publisher KEY_ID/);
    expect(help).toMatch(/with the main key does not see what a tester key published/);
  });

  it('admin discard ID deletes a dead letter; not a dead letter is 3', async () => {
    const e = adminEnv();
    const id = await publishId([goal('discard'), `{"c":"${CANARY}"}`]);
    expectOneLine(
      await cli(['admin', 'discard', id], { env: e }),
      3,
      /not a dead letter.*not_found, HTTP 404/,
    );
    expect((await cli(['admin', 'cancel', id], { env: e })).code).toBe(0);
    const done = await cli(['admin', 'discard', id], { env: e });
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toBe(`${id}: discarded\n`);
    expect((await cli(['admin', 'dead', 'show', id], { env: e })).code).toBe(3);
    expectOneLine(await cli(['admin', 'discard', id, '--json'], { env: e }), 3, /not_found/);

    const id2 = await publishId([goal('discard'), '{}']);
    await cli(['admin', 'cancel', id2], { env: e });
    const json = await cli(['admin', 'discard', id2, '--json'], { env: e });
    expect(JSON.parse(json.stdout)).toEqual({ ok: true, id: id2, discarded: true });
    expectUsage(await cli(['admin', 'discard'], { env: e }), /admin discard ID/);
  });
});

describe('the fleet', () => {
  /** `intent-bus workers --json` until `done` holds of the list (or 8 s pass). */
  async function workersUntil(
    e: NodeJS.ProcessEnv,
    done: (ws: WorkerInfo[]) => boolean,
  ): Promise<WorkerInfo[]> {
    const until = Date.now() + 8000;
    for (;;) {
      const r = await cli(['workers', '--json'], { env: e });
      expect(r.code, r.stderr).toBe(0);
      const ws = JSON.parse(r.stdout) as WorkerInfo[];
      if (done(ws) || Date.now() > until) return ws;
      await sleep(200);
    }
  }
  const statusOf = (ws: WorkerInfo[], id: string): string | undefined =>
    ws.find((w) => w.worker_id === id)?.status;

  it('three listen workers appear online with their capabilities; one SIGKILLed goes offline within the window', async () => {
    const dir = tempDir();
    const { p, url } = await startServe([
      '--db',
      join(dir, 'bus.db'),
      '--secret',
      MAIN_KEY,
      '--admin-secret',
      ADMIN_TOKEN,
      '--dashboard-password',
      DASHBOARD_PASSWORD,
      '--worker-online-seconds',
      '2',
      '--worker-retention-seconds',
      '3600',
    ]);
    const e = baseEnv({ INTENT_BUS_URL: url, INTENT_API_KEY: MAIN_KEY });
    const g = goal('fleet');
    const specs: Array<[string, string]> = [
      ['laptop', 'cpu'],
      ['termux-phone-1', 'camera,gps'],
      ['pi', 'gpio'],
    ];
    const procs = await Promise.all(
      specs.map(([id, caps]) => startWorker([g, '-w', id, '-c', caps], { env: e })),
    );
    let ws = await workersUntil(e, (l) => l.filter((w) => w.status === 'online').length === 3);
    expect(ws.map((w) => [w.worker_id, w.status, w.capabilities]).sort()).toEqual(
      [
        ['laptop', 'online', ['cpu']],
        ['pi', 'online', ['gpio']],
        ['termux-phone-1', 'online', ['camera', 'gps']],
      ].sort(),
    );
    expect(ws.every((w) => w.goals[0] === g && w.user_agent?.startsWith('intent-bus'))).toBe(true);

    procs[1]!.child.kill('SIGKILL');
    const killedAt = Date.now();
    ws = await workersUntil(e, (l) => statusOf(l, 'termux-phone-1') === 'offline');
    expect(statusOf(ws, 'termux-phone-1')).toBe('offline');
    // The window is 2 s; the listing is polled every 200 ms.
    expect(Date.now() - killedAt).toBeLessThan(6000);
    expect(statusOf(ws, 'laptop')).toBe('online');
    expect(statusOf(ws, 'pi')).toBe('online');
    // Online first, in words.
    const human = await cli(['workers'], { env: e });
    expect(human.code).toBe(0);
    const lines = human.stdout.trim().split('\n');
    expect(lines[2]).toMatch(/^○ termux-phone-1 {2}offline {2}caps camera,gps/);
    expect(lines.slice(0, 2).every((l) => l.startsWith('● '))).toBe(true);
    expect(lines[3]).toBe('(2 workers online of 3)');
    await stopWorker(procs[0]!);
    await stopWorker(procs[2]!);
    p.child.kill('SIGTERM');
    expect((await settle(p, 5000)).code).toBe(0);
  });

  it('quiet stops claims at once, resume claims again, stop lets listen finish its job and exit 0', async () => {
    const dir = tempDir();
    script(dir, 'slow.sh', '#!/bin/sh\nsleep 1\necho finished\n');
    const g = goal('quiet');
    const w = await startWorker([g, '-w', 'quiet-box', '--exec', './slow.sh'], { cwd: dir });
    await workersUntil(env(), (l) => statusOf(l, 'quiet-box') === 'online');

    const quiet = await cli(['admin', 'workers', 'quiet', 'quiet-box', '--key-id', 'main'], {
      env: adminEnv(),
    });
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stdout).toBe('1 worker quiet-box: quiet\n');
    await w.waitFor(/the bus says quiet/);
    // Told within one claim round trip: a job published now stays open.
    const held = await publishId([g, '{"n":1}']);
    await sleep(1500);
    expect((await read('status', held)).status).toBe('open');
    const listed = await workersUntil(env(), () => true);
    expect(listed.find((x) => x.worker_id === 'quiet-box')?.command).toBe('quiet');

    expect((await cli(['admin', 'workers', 'resume', 'quiet-box'], { env: adminEnv() })).code).toBe(
      0,
    );
    const done = await cli(['result', held, '--wait', '15', '--json'], { env: env() });
    expect(JSON.parse(done.stdout)).toMatchObject({ status: 'fulfilled', result: 'finished' });

    // Stop while a job runs: the job finishes, then listen exits 0.
    const last = await publishId([g, '{"n":2}']);
    await w.waitFor(new RegExp(`job ${last} `));
    expect((await cli(['admin', 'workers', 'stop', 'quiet-box'], { env: adminEnv() })).code).toBe(
      0,
    );
    const end = await settle(w, 10_000);
    expect(end.code, end.stderr).toBe(0);
    expect(end.stderr).toContain('stopped by the bus');
    expect((await read('status', last)).status).toBe('fulfilled');
    // A stopped worker stays listed, told to stop, until an admin forgets it.
    const forget = await cli(['admin', 'workers', 'forget', 'quiet-box'], { env: adminEnv() });
    expect(forget.stdout).toBe('1 worker quiet-box: forgotten\n');
    const all = await cli(['admin', 'workers', 'list', '--json'], { env: adminEnv() });
    expect((JSON.parse(all.stdout) as WorkerInfo[]).map((x) => x.worker_id)).not.toContain(
      'quiet-box',
    );
  });

  it('admin goals says an intent waits for a capability no online worker has', async () => {
    const g = goal('whisper');
    const w = await startWorker([g, '-w', 'cpu-only', '-c', 'cpu']);
    await workersUntil(env(), (l) => statusOf(l, 'cpu-only') === 'online');
    await publishId([g, '{}', '--capability', 'whisper']);
    const r = await cli(['admin', 'goals', '--json'], { env: adminEnv() });
    expect(r.code, r.stderr).toBe(0);
    const info = (JSON.parse(r.stdout) as GoalInfo[]).find((x) => x.goal === g);
    expect(info).toMatchObject({
      open: 1,
      waiting: [{ reason: 'no_capability', capability: 'whisper', intents: 1 }],
    });
    const human = await cli(['admin', 'goals'], { env: adminEnv() });
    expect(human.stdout).toContain(`default/${g}  1 open, 0 claimed, 0 dead`);
    expect(human.stdout).toContain(
      'waiting: 1 open intent: no online worker has capability whisper',
    );
    await stopWorker(w);
  });
});

describe('progress and events (issue 20)', () => {
  it('listen --exec reports lines of fd 3 as progress; publish --wait --follow prints them', async () => {
    const g = goal('follow');
    const worker = await startWorker([
      g,
      '--shell',
      '--exec',
      'sleep 0.5; echo "progress 30 resizing" >&3; sleep 1.2; echo "progress 90 almost" >&3; sleep 1.2; echo done',
    ]);
    const r = await cli(['publish', g, '{}', '--wait', '--follow'], { env: env() });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('done\n');
    expect(r.stderr).toContain('progress 30% resizing');
    expect(r.stderr).toContain('progress 90% almost');
    expect(r.stderr.indexOf('30% resizing')).toBeLessThan(r.stderr.indexOf('90% almost'));
    const id = /published ([0-9a-f]{32})/.exec(r.stderr)![1]!;
    expect((await read('result', id)).progress).toMatchObject({ percent: 90, message: 'almost' });
    await stopWorker(worker);
  });

  it('watch --json tails the changes of a goal, one JSON object per line', async () => {
    const g = goal('watch');
    const w = startCli(['watch', '-n', 'default', '--goal', g, '--json'], { env: env() });
    for (let i = 0; i < 100 && bus.bus.streams.connections === 0; i++) await sleep(50);
    const id = await publishId([g, '{}']);
    await w.waitFor(new RegExp(`"id":"${id}"`));
    const line = w.stdout().trim().split('\n')[0]!;
    expect(JSON.parse(line)).toMatchObject({ type: 'published', id, goal: g, status: 'open' });
    // One intent, in words.
    const one = startCli(['watch', '--id', id], { env: env() });
    for (let i = 0; i < 100 && bus.bus.streams.connections < 2; i++) await sleep(50);
    await bus.api('POST', `/admin/intents/${id}/cancel`, { admin: true });
    await one.waitFor(new RegExp(`cancelled +${id} default/${g} \\(cancelled\\)`));
    for (const p of [w, one]) {
      p.child.kill('SIGTERM');
      const end = await settle(p, 5000);
      expect(end.code, end.stderr).toBe(0);
    }
  });
});

describe('help', () => {
  const commandsOf = (help: string): string[] =>
    [
      ...help
        .split('Commands:')[1]!
        .split('\n\n')[0]!
        .matchAll(/^ {2}(\w+) {2,}/gm),
    ].map((m) => m[1]!);

  it('--help and -h on the command and on every command and subcommand exit 0 with the usage', async () => {
    const main = await cli(['--help']);
    expect(main.code).toBe(0);
    expect(main.stdout).toMatch(/^intent-bus: run code on any device/);
    expect((await cli(['-h'])).stdout).toBe(main.stdout);
    const commands = commandsOf(main.stdout);
    expect(commands).toEqual([
      'serve',
      'publish',
      'listen',
      'result',
      'status',
      'kv',
      'schedule',
      'workers',
      'watch',
      'admin',
    ]);
    const lines: Record<string, string[]> = {
      serve: ['Usage: intent-bus serve [--port N]'],
      publish: ['Usage: intent-bus publish GOAL PAYLOAD'],
      listen: ['Usage: intent-bus listen GOAL'],
      result: ['Usage: intent-bus result ID [--wait S]'],
      status: ['Usage: intent-bus status ID'],
      kv: ['Usage: intent-bus kv set NAME VALUE [--ttl S]', 'intent-bus kv get NAME'],
      schedule: [
        'Usage: intent-bus schedule set NAME (--cron EXPR | --every S)',
        'intent-bus schedule pause NAME | resume NAME | trigger NAME | rm NAME',
      ],
      workers: ['Usage: intent-bus workers'],
      watch: ['Usage: intent-bus watch [-n NS] [--goal G] [--id ID] [--json]'],
      admin: ['Usage: intent-bus admin keys create OWNER', 'intent-bus admin cleanup'],
    };
    await Promise.all(
      commands.flatMap((c) =>
        ['--help', '-h'].map(async (flag) => {
          const r = await cli([c, flag]);
          expect(r.code, `${c} ${flag}: ${r.stderr}`).toBe(0);
          expect(r.stderr).toBe('');
          for (const line of lines[c]!) expect(r.stdout, `${c} ${flag}`).toContain(line);
        }),
      ),
    );
  });

  it('--help after a subcommand shows the usage and does nothing else', async () => {
    const id = await publishId([goal('helped'), '{}']);
    const subcommands: Array<[string[], string]> = [
      [['kv', 'set'], 'intent-bus kv set NAME VALUE'],
      [['kv', 'get'], 'intent-bus kv get NAME'],
      [['admin', 'keys', 'create'], 'intent-bus admin keys create OWNER'],
      [['admin', 'keys', 'list'], 'intent-bus admin keys list'],
      [['admin', 'keys', 'revoke'], 'intent-bus admin keys revoke KEY'],
      [['admin', 'dead', 'list'], 'intent-bus admin dead list [-n NS]'],
      [['admin', 'dead', 'show'], 'intent-bus admin dead show ID'],
      [['admin', 'discard'], 'intent-bus admin discard ID'],
      [['admin', 'show'], 'intent-bus admin show ID'],
      [['admin', 'retry'], 'intent-bus admin retry ID'],
      [['admin', 'cancel', id], 'intent-bus admin cancel ID'],
      [['admin', 'purge', '--yes'], 'intent-bus admin purge [-n NS] --yes'],
      [['admin', 'cleanup'], 'intent-bus admin cleanup'],
    ];
    await Promise.all(
      subcommands.map(async ([words, line]) => {
        const r = await cli([...words, '--help'], { env: adminEnv() });
        expect(r.code, words.join(' ')).toBe(0);
        expect(r.stdout, words.join(' ')).toContain(line);
      }),
    );
    // Neither the cancel nor the purge ran.
    expect((await read('status', id)).status).toBe('open');
  });

  it('npx intent-bus --help works from the repository root', async () => {
    const r = await settle(
      spawnProc('npx', ['--no-install', 'intent-bus', '--help'], {
        cwd: ROOT,
        env: { ...process.env, npm_config_update_notifier: 'false' },
      }),
      15_000,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Usage: intent-bus COMMAND [ARGS] [FLAGS]');
  }, 15_000);

  it('schedule: set with every flag (the same again changes nothing), show, list, trigger, pause, resume, rm', async () => {
    const g = goal('sched');
    const set = [
      'schedule',
      'set',
      'nightly',
      g,
      '{"n":12345678901234567890}',
      '--cron',
      '0 3 * * *',
      '--tz',
      'Europe/Berlin',
      '--overlap',
      'skip',
      '--catch-up',
      'all',
      '--paused',
      '-n',
      'cli-ns',
      '--priority',
      '7',
      '--public',
      '--target',
      'w-1',
      '--capability',
      'gpu',
      '--max-attempts',
      '2',
      '--backoff-base',
      '2',
      '--ttl',
      '600',
    ];
    const made = await cli(set, { env: env() });
    expect(made.code, made.stderr).toBe(0);
    expect(made.stdout).toBe('created schedule nightly: At 03:00 (Europe/Berlin), paused\n');
    const again = await cli([...set, '--json'], { env: env() });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('"payload":{"n":12345678901234567890}');
    expect(JSON.parse(again.stdout)).toMatchObject({
      name: 'nightly',
      paused: true,
      overlap: 'skip',
      catch_up: 'all',
      intent: {
        goal: g,
        namespace: 'cli-ns',
        priority: 7,
        visibility: 'public',
        target_worker: 'w-1',
        required_capability: 'gpu',
        max_attempts: 2,
        backoff_base: 2,
        ttl: 600,
      },
    });
    const shown = await cli(['schedule', 'show', 'nightly'], { env: env() });
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('when:      At 03:00 (Europe/Berlin) (cron 0 3 * * *)');
    expect(shown.stdout).toContain('12345678901234567890');
    expect(shown.stdout).toContain('state:     paused');
    expect(shown.stdout).toContain('runs:      none yet');

    const fast = await cli(['schedule', 'set', 'fast', goal('fast'), '{}', '--every', '3600'], {
      env: env(),
    });
    expect(fast.stdout).toMatch(/^created schedule fast: Every 3600 seconds, next run /);
    const trig = await cli(['schedule', 'trigger', 'fast'], { env: env() });
    expect(trig.stdout).toMatch(/^published [0-9a-f]{32} \(schedule fast, now\)\n$/);
    const history = await cli(['schedule', 'show', 'fast'], { env: env() });
    expect(history.stdout).toMatch(/runs: +\S+Z +open +[0-9a-f]{32}/);
    expect(history.stdout).toMatch(/next runs: \S+Z\n {11}\S+Z/);
    expect((await cli(['schedule', 'pause', 'fast'], { env: env() })).stdout).toBe(
      'fast: paused\n',
    );
    expect((await cli(['schedule', 'resume', 'nightly'], { env: env() })).stdout).toBe(
      'nightly: active\n',
    );
    await cli(['schedule', 'pause', 'nightly'], { env: env() });
    const list = await cli(['schedule', 'list'], { env: env() });
    expect(list.stdout.split('\n').filter(Boolean)).toHaveLength(2);
    expect((await cli(['schedule', 'rm', 'fast'], { env: env() })).stdout).toBe(
      'removed fast (its runs stay)\n',
    );
    expect((await cli(['schedule', 'rm', 'fast'], { env: env() })).code).toBe(3);
    expect((await cli(['schedule', 'show', 'fast'], { env: env() })).code).toBe(3);
    const neither = await cli(['schedule', 'set', 'x', g, '{}'], { env: env() });
    expect(neither.code).toBe(2);
    expect(neither.stderr).toContain('give --cron EXPR or --every S');
    const bad = await cli(['schedule', 'set', 'x', g, '{}', '--cron', '61 * * * *'], {
      env: env(),
    });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('cron');
  });

  it('schedule: --deadline and --on-failure; show prints each run outcome, missed and dead, and its alert', async () => {
    const g = goal('sched-alert');
    const alertGoal = goal('sched-alert-phone');
    const made = await cli(
      [
        'schedule',
        'set',
        'watched',
        g,
        '{}',
        '--every',
        '3600',
        '--paused',
        '--max-attempts',
        '1',
        '--deadline',
        '1',
        '--on-failure',
        alertGoal,
        '--on-failure-namespace',
        'cli-ops',
        '--on-failure-payload',
        '{"to":12345678901234567890}',
        '--json',
      ],
      { env: env() },
    );
    expect(made.code, made.stderr).toBe(0);
    expect(JSON.parse(made.stdout)).toMatchObject({
      deadline: 1,
      on_failure: { goal: alertGoal, namespace: 'cli-ops' },
    });
    expect(made.stdout).toContain('"payload":{"to":12345678901234567890}');
    // One run missed (nobody takes it), one that dies (a worker fails it).
    const missed = JSON.parse(
      (await cli(['schedule', 'trigger', 'watched', '--json'], { env: env() })).stdout,
    ).id as string;
    await new Promise((r) => setTimeout(r, 2500));
    const c = await bus.api('POST', `/claim?goal=${g}`);
    expect(c.json.id).toBe(missed);
    await bus.api('POST', `/fulfill/${missed}`, { body: { claim_token: c.json.claim_token } });
    await new Promise((r) => setTimeout(r, 5));
    const dies = JSON.parse(
      (await cli(['schedule', 'trigger', 'watched', '--json'], { env: env() })).stdout,
    ).id as string;
    const d = await bus.api('POST', `/claim?goal=${g}`);
    expect(d.json.id).toBe(dies);
    await bus.api('POST', `/fail/${dies}`, {
      body: { claim_token: d.json.claim_token, error: 'broken' },
    });
    await new Promise((r) => setTimeout(r, 1500));
    const shown = await cli(['schedule', 'show', 'watched'], { env: env() });
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('deadline:  1 s after each tick');
    expect(shown.stdout).toContain(`on failure: alert ${alertGoal} (namespace cli-ops)`);
    expect(shown.stdout).toMatch(
      new RegExp(
        `\\S+Z +dead +${dies}  alert [0-9a-f]{32}\\n +\\S+Z +missed +${missed}  \\(fulfilled\\)  alert [0-9a-f]{32}`,
      ),
    );
    const orphan = await cli(
      ['schedule', 'set', 'x', g, '{}', '--every', '60', '--on-failure-namespace', 'n'],
      {
        env: env(),
      },
    );
    expect(orphan.code).toBe(2);
    expect(orphan.stderr).toContain('need --on-failure GOAL');
    await cli(['schedule', 'rm', 'watched'], { env: env() });
  });

  // Last: it reads what the tests above passed.
  it('every flag named in every usage is in EXERCISED, and every flag there was passed', async () => {
    const flagsIn = (text: string): string[] => [
      ...new Set([...text.matchAll(/(?<![\w-])(--?[a-z][a-z-]*)/g)].map((m) => m[1]!)),
    ];
    const main = await cli(['--help']);
    const common = new Set(flagsIn(main.stdout.split('Common flags:')[1]!));
    const named: Record<string, string[]> = {};
    for (const c of commandsOf(main.stdout)) {
      const help = (await cli([c, '--help'])).stdout;
      const [own, shared] = help.split('Common flags:');
      if (shared !== undefined) flagsIn(shared).forEach((f) => common.add(f));
      named[c] = flagsIn(own!);
      expect(EXERCISED[c], `${c}: flags in --help missing from EXERCISED`).toEqual(
        expect.arrayContaining(named[c]),
      );
    }
    // The parsing found what it should.
    expect(named.publish).toContain('--wait-timeout');
    expect(named.listen).toEqual(expect.arrayContaining(['-w', '-c', '--exec']));
    expect(named.serve).toEqual(expect.arrayContaining(['--db', '--log-level']));
    expect([...common]).toEqual(expect.arrayContaining(['--url', '--no-sign', '-h']));
    expect(EXERCISED.common).toEqual(expect.arrayContaining([...common]));

    const allUsed = new Set([...usedFlags.values()].flatMap((s) => [...s]));
    const missing: string[] = [];
    for (const [c, flags] of Object.entries(EXERCISED)) {
      const used = c === 'common' ? allUsed : (usedFlags.get(c) ?? new Set<string>());
      for (const f of flags) if (!used.has(f)) missing.push(`${c} ${f}`);
    }
    expect(missing, 'flags no test passed (run the whole file)').toEqual([]);
  });
});
