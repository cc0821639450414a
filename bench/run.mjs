#!/usr/bin/env node
// The Intent Bus benchmark (issues 6 and 7): starts the bus (on SQLite, or one or more
// nodes on a PostgreSQL database of its own) and a trivial server of the same HTTP stack
// pinned to one core, drives both from this process pinned to another, prints a table and
// writes bench/results/<timestamp>.json. See bench/README.md.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { runCeiling, runJobs } from './lib/load.mjs';
import {
  ROOT,
  allowedCpus,
  hasTaskset,
  killAllSync,
  pinSelf,
  startBus,
  startNoop,
  stopAll,
} from './lib/procs.mjs';
import {
  DEFAULT_ADMIN_URL,
  databaseUrl,
  dropAllSync,
  openAdmin,
  pgDelta,
  pgSnapshot,
  redact,
} from './lib/postgres.mjs';
import {
  POSTGRES_COLUMNS,
  formatActivity,
  TABLE_COLUMNS,
  formatMarkdown,
  formatTable,
  summarize,
} from './lib/stats.mjs';
import {
  clearFlow,
  describeFlow,
  heldClaims,
  parseFlow,
  rateBound,
  registryWrites,
  setFlow,
} from './lib/flow.mjs';
import { PEER_COLUMNS, setUpPeer, peerRun, summarizePeer } from './lib/peer.mjs';

export const PROFILES = {
  light: { workers: 5, jobs: 50 },
  medium: { workers: 15, jobs: 500 },
  heavy: { workers: 40, jobs: 2000 },
  extreme: { workers: 100, jobs: 5000 },
  'heavy-long': { workers: 40, jobs: 20000 },
  'extreme-long': { workers: 100, jobs: 50000 },
};
const MODES = ['concurrent', 'preload'];

const USAGE = `Usage: node bench/run.mjs [options]        (npm run bench -- [options])

  --profiles LIST       ${Object.keys(PROFILES).join(',')} or all (default all)
  --modes LIST          concurrent,preload (default both)
  --store sqlite|postgres
                        the bus's store (default sqlite); postgres: a database of the
                        bench's own per configuration, dropped at the end
  --sqlite-driver auto|node|better-sqlite3
                        the bus's BUS_SQLITE_DRIVER with --store sqlite (default auto:
                        node:sqlite on Node 22.16+, better-sqlite3 on Node 20)
  --nodes N             bus processes on that database, workers and publishes spread
                        over them (default 1; N > 1 needs --store postgres)
  --pg-url URL          admin connection that creates and drops the databases
                        (default $BENCH_PG_URL or ${DEFAULT_ADMIN_URL})
  --pg-options=OPTS     libpq startup options of the nodes' connections, e.g.
                        --pg-options="-c synchronous_commit=off" (their sessions only;
                        default none; the = is needed since OPTS starts with a dash)
  --count-statements    count the statements each node sends PostgreSQL (every query of
                        its pg clients is one round trip), by statement, per job over
                        each configuration (warm-ups and purges included)
  --pg-sample-ms MS     sample what the bench's backends are doing (pg_stat_activity)
                        every MS during each run; 0 = never (default 100)
  --long-poll on|off|both
                        claims with ?wait=S (on), plain 2.1 polling (off), or both (default on)
  --wait S              long-poll seconds, 1-30 (default 10)
  --runs N              counted runs per configuration, median quoted (default 5)
  --warmup N            runs discarded before them (default 2: the JIT is still warming during the first)
  --publishers N        publishes in flight (default 8)
  --next                workers fulfil with ?next=1 [ext]: the fulfil claims their next job
                        (one worker request per job instead of two; issue 21)
  --batch N             [ext] batches of N (1-100): publish N per POST /intents, claim
                        up to N (POST /claim?max=N), fulfil them in one POST /fulfill
                        (default 1: the single requests)
  --ceiling-seconds S   length of each ceiling measurement; 0 = no ceiling (default 2)
  --run-timeout S       a run still going after S seconds stops as timed out (default 300)
  --max-minutes M       no new configuration starts after M minutes (default 180)
  --no-pin              do not pin with taskset
  --server-cpu N        CPU for the servers (default: the first this process may use)
  --gen-cpu N           CPU for this generator (default: the second)
  --log-level L         the bus's BUS_LOG_LEVEL (default warn)
  --cpu-prof            write a V8 CPU profile of each bus (results/<timestamp>-cpuprof/)
  --flow-max-in-flight N
                        put a flow control max_in_flight N on each run's goal before the
                        run (PUT /admin/flow/default/<goal>; default none)
  --flow-rate N/S       the same with a rate control: at most N claims per S seconds
  --peer bullmq         run each configuration on BullMQ too (Redis at --redis-url), its
                        runs alternated with the bus's, the table showing bus/BullMQ
                        (needs \`npm ci --prefix bench\`; skipped when Redis does not answer)
  --redis-url URL       the peer's Redis (default $BENCH_REDIS_URL or redis://127.0.0.1:6379)
  --idle-between S      leave the bus idle S seconds before each counted run that has a
                        run before it, untimed (default 0; issue 21's cold after idle)
  --bus-env LIST        extra environment of the bus processes, NAME=VALUE,... (e.g.
                        --bus-env BUS_WORKER_ONLINE_SECONDS=10; default none)
  --bus-node-args ARGS  extra node/V8 flags for the bus processes, space-separated, e.g.
                        --bus-node-args="--no-flush-bytecode" (default none)
  --out DIR             where the JSON goes (default bench/results)
  --help
`;

function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      profiles: { type: 'string', default: 'all' },
      modes: { type: 'string', default: MODES.join(',') },
      store: { type: 'string', default: 'sqlite' },
      'sqlite-driver': { type: 'string', default: 'auto' },
      nodes: { type: 'string', default: '1' },
      'pg-url': { type: 'string', default: process.env.BENCH_PG_URL || DEFAULT_ADMIN_URL },
      'pg-options': { type: 'string' },
      'pg-sample-ms': { type: 'string', default: '100' },
      'count-statements': { type: 'boolean', default: false },
      'long-poll': { type: 'string', default: 'on' },
      wait: { type: 'string', default: '10' },
      runs: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '2' },
      publishers: { type: 'string', default: '8' },
      next: { type: 'boolean', default: false },
      batch: { type: 'string', default: '1' },
      'ceiling-seconds': { type: 'string', default: '2' },
      'run-timeout': { type: 'string', default: '300' },
      'max-minutes': { type: 'string', default: '180' },
      'no-pin': { type: 'boolean', default: false },
      'server-cpu': { type: 'string' },
      'gen-cpu': { type: 'string' },
      'log-level': { type: 'string', default: 'warn' },
      'cpu-prof': { type: 'boolean', default: false },
      'flow-max-in-flight': { type: 'string' },
      'flow-rate': { type: 'string' },
      peer: { type: 'string' },
      'redis-url': {
        type: 'string',
        default: process.env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379',
      },
      'idle-between': { type: 'string', default: '0' },
      'bus-node-args': { type: 'string', default: '' },
      'bus-env': { type: 'string', default: '' },
      out: { type: 'string', default: join(ROOT, 'bench/results') },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const int = (name, min, max) => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new Error(`--${name}: expected an integer ${min}-${max}, got ${values[name]}`);
    }
    return n;
  };
  const profiles =
    values.profiles === 'all'
      ? Object.keys(PROFILES)
      : values.profiles.split(',').map((s) => s.trim());
  for (const p of profiles) if (!PROFILES[p]) throw new Error(`--profiles: unknown profile ${p}`);
  const modes = values.modes.split(',').map((s) => s.trim());
  for (const m of modes) if (!MODES.includes(m)) throw new Error(`--modes: unknown mode ${m}`);
  const lp = { on: [true], off: [false], both: [true, false] }[values['long-poll']];
  if (!lp) throw new Error('--long-poll: on, off or both');
  if (!['sqlite', 'postgres'].includes(values.store))
    throw new Error('--store: sqlite or postgres');
  if (!['auto', 'node', 'better-sqlite3'].includes(values['sqlite-driver']))
    throw new Error('--sqlite-driver: auto, node or better-sqlite3');
  if (values['sqlite-driver'] !== 'auto' && values.store !== 'sqlite')
    throw new Error('--sqlite-driver: only with --store sqlite');
  const nodes = int('nodes', 1, 16);
  if (nodes > 1 && values.store !== 'postgres') {
    throw new Error('--nodes: more than one node needs --store postgres');
  }
  if (values['count-statements'] && values.store !== 'postgres') {
    throw new Error('--count-statements: only with --store postgres');
  }
  if (values['pg-options'] != null && values.store !== 'postgres') {
    throw new Error('--pg-options: only with --store postgres');
  }
  if (values.next && values.batch !== '1') {
    throw new Error('--next: not with --batch (a batch fulfil claims nothing)');
  }
  if (values.peer != null && values.peer !== 'bullmq') throw new Error('--peer: bullmq');
  return {
    profiles,
    modes,
    store: values.store,
    sqliteDriver: values['sqlite-driver'],
    nodes,
    pgUrl: values['pg-url'],
    pgOptions: values['pg-options'] ?? null,
    pgSampleMs: int('pg-sample-ms', 0, 10_000),
    countStatements: values['count-statements'],
    longPoll: lp,
    wait: int('wait', 1, 30),
    runs: int('runs', 1, 100),
    warmup: int('warmup', 0, 10),
    publishers: int('publishers', 1, 256),
    next: values.next,
    batch: int('batch', 1, 100),
    ceilingSeconds: int('ceiling-seconds', 0, 60),
    runTimeout: int('run-timeout', 1, 3600),
    maxMinutes: int('max-minutes', 1, 24 * 60),
    pin: !values['no-pin'],
    serverCpu: values['server-cpu'] == null ? null : int('server-cpu', 0, 4095),
    genCpu: values['gen-cpu'] == null ? null : int('gen-cpu', 0, 4095),
    logLevel: values['log-level'],
    cpuProf: values['cpu-prof'],
    flow: parseFlow(values['flow-max-in-flight'], values['flow-rate']),
    peer: values.peer ?? null,
    redisUrl: values['redis-url'],
    idleBetween: int('idle-between', 0, 3600),
    busNodeArgs: values['bus-node-args'].split(' ').filter((a) => a !== ''),
    busEnv: Object.fromEntries(
      values['bus-env']
        .split(',')
        .filter((kv) => kv.includes('='))
        .map((kv) => [kv.slice(0, kv.indexOf('=')).trim(), kv.slice(kv.indexOf('=') + 1)]),
    ),
    out: resolve(values.out),
  };
}

function machine() {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    const m = readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m);
    if (m) cpuModel = m[1].trim();
  } catch {
    // Not Linux.
  }
  const git = (...args) => {
    try {
      return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: 'pipe' }).trim();
    } catch {
      return null;
    }
  };
  const porcelain = git('status', '--porcelain');
  return {
    cpuModel,
    cores: cpus().length,
    allowedCpus: allowedCpus(),
    memoryGb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    kernel: release(),
    loadavgAtStart: loadavg(),
    git: { commit: git('rev-parse', 'HEAD'), dirty: porcelain == null ? null : porcelain !== '' },
  };
}

function command(argv) {
  const direct = [
    'node',
    relative(process.cwd(), process.argv[1]) || 'bench/run.mjs',
    ...argv,
  ].join(' ');
  const script = process.env.npm_lifecycle_event;
  return script ? { npm: `npm run ${script}`, node: direct } : { node: direct };
}

const log = (line) => process.stderr.write(`${line}\n`);
const sqliteName = (driver) => (driver === 'node' ? 'node:sqlite' : 'better-sqlite3');
/** The admin connection of --store postgres (creates and drops the databases). */
let admin = null;

/** The counts of pg-count.mjs of each node, summed; null when a node wrote none. */
function statementCounts(files) {
  const sum = {};
  for (const f of files) {
    let counts;
    try {
      counts = JSON.parse(readFileSync(f, 'utf8'));
      rmSync(f);
    } catch {
      log(`note: no statement counts in ${f}`);
      return null;
    }
    for (const [k, v] of Object.entries(counts)) sum[k] = (sum[k] ?? 0) + v;
  }
  return sum;
}

/** Counts per job, the most frequent first (those under 0.005 per job summed as "other"). */
function statementsPerJob(counts, jobs) {
  const byName = {};
  let total = 0;
  let other = 0;
  for (const [k, v] of Object.entries(counts).sort((a, b) => b[1] - a[1])) {
    total += v / jobs;
    if (v / jobs < 0.005) other += v / jobs;
    else byName[k] = v / jobs;
  }
  if (other > 0) byName.other = other;
  return { total, byName, jobs };
}

const fmt = (x, d = 0) => (x == null || !Number.isFinite(x) ? '-' : x.toFixed(d));

async function main() {
  const argv = process.argv.slice(2);
  const opts = parseOptions(argv);
  const started = new Date();
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  const info = machine();

  // Pinning: the servers on one CPU, this generator on another.
  let pinning = { pinned: false, reason: 'disabled (--no-pin)' };
  let serverCpu = null;
  if (opts.pin) {
    const allowed = info.allowedCpus;
    if (!hasTaskset()) pinning = { pinned: false, reason: 'taskset not found' };
    else if (allowed.length < 2) pinning = { pinned: false, reason: 'fewer than 2 CPUs' };
    else {
      serverCpu = opts.serverCpu ?? allowed[0];
      const genCpu = opts.genCpu ?? allowed.find((c) => c !== serverCpu);
      pinSelf(genCpu);
      pinning = { pinned: true, serverCpu, generatorCpu: genCpu };
    }
  }
  log(
    `machine: ${info.cpuModel}, ${info.cores} cores, node ${info.node}, load ${info.loadavgAtStart.map((l) => l.toFixed(2)).join(' ')}; ` +
      (pinning.pinned
        ? `servers on cpu ${pinning.serverCpu}, generator on cpu ${pinning.generatorCpu}`
        : `not pinned: ${pinning.reason}`),
  );

  // SQLite: the driver the setting names on this Node (the bus resolves it the same way).
  let sqlite = null;
  if (opts.store === 'sqlite') {
    const { resolveDriver } = await import(
      pathToFileURL(join(ROOT, 'packages/server/dist/store/sqlite/connection.js')).href
    );
    sqlite = { setting: opts.sqliteDriver, driver: resolveDriver(opts.sqliteDriver) };
    log(`sqlite: BUS_SQLITE_DRIVER=${sqlite.setting}: ${sqliteName(sqlite.driver)}`);
  }

  // PostgreSQL: a system service, left where the scheduler puts it (not pinned).
  let postgres = null;
  if (opts.store === 'postgres') {
    admin = await openAdmin(opts.pgUrl);
    const settings = await admin.settings();
    const postmasterPid = await admin.postmasterPid();
    postgres = { settings, postmasterPid, pinned: false, sessionOptions: opts.pgOptions };
    if (pinning.pinned) pinning.postgres = 'not pinned (a system service: both CPUs)';
    log(
      `postgres: ${settings.server_version}, synchronous_commit ${settings.synchronous_commit}, ` +
        `fsync ${settings.fsync} (${settings.wal_sync_method}), autovacuum ${settings.autovacuum}, ` +
        `postmaster pid ${postmasterPid}, not pinned; ${opts.nodes} bus node(s)` +
        (opts.pgOptions ? `; node sessions with options ${JSON.stringify(opts.pgOptions)}` : ''),
    );
    const stale = await admin.leftovers();
    if (stale.length > 0) {
      log(`note: databases of benches that are gone (drop them by hand): ${stale.join(', ')}`);
    }
  }

  // The peer (--peer bullmq): the same runs on BullMQ over Redis, in this process.
  const peer = opts.peer ? await setUpPeer(opts, log) : null;
  if (opts.flow) log(`flow control on each run's goal: ${describeFlow(opts.flow)}`);

  const report = {
    started: started.toISOString(),
    finished: null,
    command: command(argv),
    machine: info,
    pinning,
    options: {
      ...opts,
      pgUrl: redact(opts.pgUrl),
      redisUrl: redact(opts.redisUrl),
      out: relative(ROOT, opts.out),
    },
    ...(opts.peer ? { peer: peer ? peer.info : { name: opts.peer, skipped: true } } : {}),
    ...(postgres ? { postgres } : {}),
    ...(sqlite ? { sqlite } : {}),
    profiles: PROFILES,
    configurations: [],
  };
  mkdirSync(opts.out, { recursive: true });
  const file = join(opts.out, `${stamp}.json`);
  const save = () => writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  const profDir = opts.cpuProf ? join(opts.out, `${stamp}-cpuprof`) : null;

  const noop = opts.ceilingSeconds > 0 ? await startNoop({ cpu: serverCpu }) : null;
  try {
    if (noop) {
      // Warms the ceiling server (JIT) once; not reported.
      await runCeiling({ url: noop.url, serverPid: noop.pid, concurrency: 48, seconds: 1 });
    }
    const deadline = Date.now() + opts.maxMinutes * 60_000;
    for (const profile of opts.profiles) {
      for (const mode of opts.modes) {
        for (const longPoll of opts.longPoll) {
          if (Date.now() > deadline) {
            log(`--max-minutes ${opts.maxMinutes} reached: skipping the rest`);
            report.truncated = true;
            continue;
          }
          const { workers, jobs } = PROFILES[profile];
          const waitSeconds = longPoll ? opts.wait : 0;
          const name = `${profile} ${mode} long-poll ${longPoll ? `${opts.wait}s` : 'off'}${opts.next ? ' next' : ''}`;
          const cpuProfDir = profDir
            ? join(profDir, `${profile}-${mode}-${longPoll ? 'lp' : 'poll'}`)
            : undefined;
          const config = {
            profile,
            mode,
            workers,
            jobs,
            waitSeconds,
            ...(opts.next ? { next: true } : {}),
            ...(postgres ? { store: 'postgres', nodes: opts.nodes } : {}),
            ...(opts.flow ? { flow: opts.flow } : {}),
            warmupRuns: [],
            runs: [],
            ...(peer ? { peer: { name: peer.info.name, warmupRuns: [], runs: [] } } : {}),
          };
          const nodes = [];
          const configStart = Date.now();
          const countFiles = [];
          let database = null;
          try {
            // One bus: N nodes sharing one database (their main and admin keys too).
            let extraEnv = {
              ...(sqlite ? { BUS_SQLITE_DRIVER: sqlite.setting } : {}),
              ...opts.busEnv,
            };
            if (postgres) {
              database = await admin.createDatabase(report.configurations.length);
              extraEnv = {
                BUS_DATABASE_URL: databaseUrl(opts.pgUrl, database, opts.pgOptions),
                ...opts.busEnv,
              };
            }
            const keys = {
              secret: `ib_bench_${randomBytes(16).toString('hex')}`,
              adminSecret: randomBytes(24).toString('hex'),
            };
            for (let n = 0; n < opts.nodes; n++) {
              const countFile = opts.countStatements
                ? join(opts.out, `${stamp}-statements-${report.configurations.length}-${n}.json`)
                : undefined;
              if (countFile) countFiles.push(countFile);
              nodes.push(
                await startBus({
                  cpu: serverCpu,
                  logLevel: opts.logLevel,
                  cpuProfDir:
                    cpuProfDir && opts.nodes > 1 ? join(cpuProfDir, `node${n}`) : cpuProfDir,
                  countFile,
                  extraEnv,
                  nodeArgs: opts.busNodeArgs,
                  ...keys,
                }),
              );
            }
            // The relay's backends (one LISTEN connection per node) are counted apart.
            const relayPids = postgres ? await admin.relayPids(database) : null;
            if (relayPids) {
              config.relayBackends = relayPids.size;
              if (relayPids.size !== nodes.length) {
                log(
                  `note: ${relayPids.size} wake-relay backend(s) found for ${nodes.length} node(s)`,
                );
              }
            }
            const pg = postgres
              ? {
                  snapshot: () => pgSnapshot(postgres.postmasterPid, database, relayPids),
                  delta: pgDelta,
                  sampler:
                    opts.pgSampleMs > 0
                      ? admin.activitySampler(database, relayPids, opts.pgSampleMs)
                      : null,
                }
              : null;
            for (let i = 0; i < opts.warmup + opts.runs; i++) {
              const counted = i >= opts.warmup;
              if (counted && i > 0 && opts.idleBetween > 0) {
                log(`${name}: idle ${opts.idleBetween} s`);
                await new Promise((r) => setTimeout(r, opts.idleBetween * 1000));
              }
              const goal = `bench.${profile}.${mode}.${i}`;
              // The peer's run comes before the bus's every other run, after it otherwise.
              const peerArgs = { name: `${profile}-${mode}-${i}`, jobs, workers, mode };
              const peerBefore = peer && i % 2 === 1 ? await peerRun(peer, opts, peerArgs) : null;
              if (opts.flow) {
                await setFlow({
                  url: nodes[0].url,
                  adminSecret: keys.adminSecret,
                  goal,
                  control: opts.flow,
                });
              }
              const ceiling = noop
                ? await runCeiling({
                    url: noop.url,
                    serverPid: noop.pid,
                    concurrency: workers + (mode === 'concurrent' ? opts.publishers : 0),
                    seconds: opts.ceilingSeconds,
                    pinned: pinning.pinned ? pinning : null,
                  })
                : null;
              const monoStartUs = Number(process.hrtime.bigint() / 1000n);
              const r = await runJobs({
                urls: nodes.map((b) => b.url),
                key: keys.secret,
                serverPids: nodes.map((b) => b.pid),
                pg,
                goal,
                jobs,
                workers,
                mode,
                waitSeconds,
                publishInFlight: opts.publishers,
                timeoutMs: opts.runTimeout * 1000,
                pinned: pinning.pinned ? pinning : null,
                next: opts.next,
                batch: opts.batch,
              });
              // Monotonic clock (CLOCK_MONOTONIC, as in a V8 .cpuprofile): cpuprofile-top --window.
              r.monotonicUs = [monoStartUs, Number(process.hrtime.bigint() / 1000n)];
              r.requestsPerJob =
                ((mode === 'concurrent' ? 3 : 2) - (opts.next ? 1 : 0)) / opts.batch;
              r.ceiling = ceiling;
              nodes.forEach((bus, n) => {
                if (!bus.alive()) {
                  throw new Error(`bus node ${n} stopped during ${name}:\n${bus.logTail(30)}`);
                }
              });
              if (opts.flow) {
                r.flow = {
                  control: opts.flow,
                  heldClaims: await heldClaims({
                    urls: nodes.map((b) => b.url),
                    adminSecret: keys.adminSecret,
                    goal,
                  }),
                  rateBound: rateBound(opts.flow, jobs),
                };
                await clearFlow({ url: nodes[0].url, adminSecret: keys.adminSecret, goal });
              }
              // Purged through one node: they share the database.
              await nodes[0].purge();
              (counted ? config.runs : config.warmupRuns).push(r);
              const pr = peer ? (peerBefore ?? (await peerRun(peer, opts, peerArgs))) : null;
              if (pr) (counted ? config.peer.runs : config.peer.warmupRuns).push(pr);
              log(
                `${name} ${counted ? `run ${i - opts.warmup + 1}/${opts.runs}` : 'warm-up'}: ` +
                  `${fmt(r.successPct, 1)}% ${fmt(r.jobsPerSec)} jobs/s p99 ${fmt(r.latencyMs.p99, 1)} ms, ` +
                  `errors ${r.errorCount} dup ${r.duplicates}, server cpu ${fmt(r.server.cpuPct)}%` +
                  (nodes.length > 1
                    ? ` (${r.server.nodes.map((x) => fmt(x.cpuPct)).join('+')})`
                    : '') +
                  (r.postgres ? `, postgres cpu ${fmt(r.postgres.cpuPct)}%` : '') +
                  (r.postgres?.activity
                    ? ` (backends: ${Object.entries(r.postgres.activity.meanBackends)
                        .slice(0, 3)
                        .map(([k, v]) => `${fmt(v, 1)} ${k}`)
                        .join(', ')})`
                    : '') +
                  `, gen elu ${fmt(r.generator.elu, 2)}, noise ${fmt(r.cores.noisePct)}%` +
                  (ceiling ? `, ceiling ${fmt(ceiling.reqPerSec)} req/s` : '') +
                  (r.flow ? `, held claims ${r.flow.heldClaims ?? '-'}` : '') +
                  (r.stop === 'done' ? '' : ` [${r.stop}]`) +
                  (pr
                    ? `; ${pr.peer}: ${fmt(pr.successPct, 1)}% ${fmt(pr.jobsPerSec)} jobs/s ` +
                      `p99 ${fmt(pr.latencyMs.p99, 1)} ms, errors ${pr.errorCount} dup ${pr.duplicates}, ` +
                      `redis cpu ${fmt(pr.redis?.cpuPct)}%, gen cpu ${fmt(pr.generator.cpuPct)}%, ` +
                      `bus/${pr.peer} ×${fmt(r.jobsPerSec / pr.jobsPerSec, 2)}` +
                      (pr.stop === 'done' ? '' : ` [${pr.stop}]`)
                    : ''),
              );
            }
            // The fleet's registry (issue 18): what it wrote to the store over the
            // configuration, every node summed (0 on a bus without one).
            config.registryWrites = await registryWrites({
              urls: nodes.map((b) => b.url),
              adminSecret: keys.adminSecret,
              since: configStart,
            });
            log(
              `${name}: worker registry ${config.registryWrites.rows ?? '-'} row(s) written in ` +
                `${config.registryWrites.flushes ?? '-'} flush(es) over ${fmt(config.registryWrites.seconds)} s`,
            );
          } finally {
            await Promise.all(nodes.map((b) => b.stop()));
            const counted = countFiles.length > 0 ? statementCounts(countFiles) : null;
            if (counted) {
              const all = (config.warmupRuns.length + config.runs.length) * jobs;
              if (all > 0) config.statements = statementsPerJob(counted, all);
            }
            if (database) {
              // Over the whole configuration (start-up, warm-ups, purges included).
              const stats = await admin.databaseStats(database).catch(() => null);
              const all = config.warmupRuns.length + config.runs.length;
              if (stats && all > 0) {
                const perJob = (n) => n / (all * jobs);
                config.databaseStats = {
                  ...stats,
                  jobs: all * jobs,
                  commitsPerJob: perJob(stats.xact_commit),
                  tuplesWrittenPerJob: perJob(
                    stats.tup_inserted + stats.tup_updated + stats.tup_deleted,
                  ),
                };
              }
              await admin.dropDatabase(database);
            }
          }
          config.summary = summarize(config.runs);
          if (config.peer) config.peer.summary = summarizePeer(config.runs, config.peer.runs);
          report.configurations.push(config);
          save();
        }
      }
    }
  } finally {
    await noop?.stop();
    await admin?.dropAll();
    await admin?.close();
    admin = null;
  }
  report.finished = new Date().toISOString();
  report.machine.loadavgAtEnd = loadavg();
  save();

  const header =
    `Intent Bus bench, ${report.started}: ${info.cpuModel}, ${info.cores} cores, node ${info.node}, ` +
    (pinning.pinned
      ? `servers on cpu ${pinning.serverCpu}, generator on cpu ${pinning.generatorCpu}`
      : `not pinned (${pinning.reason})`) +
    (postgres
      ? `\nstore: PostgreSQL ${postgres.settings.server_version.split(' ')[0]} (synchronous_commit ${postgres.settings.synchronous_commit}, ` +
        `fsync ${postgres.settings.fsync}${opts.pgOptions ? `, node sessions ${JSON.stringify(opts.pgOptions)}` : ''}; not pinned), ` +
        `${opts.nodes} bus node(s)${pinning.pinned ? ` on cpu ${pinning.serverCpu}` : ''}; ` +
        'noise% = busy time of both CPUs used by none of the nodes, PostgreSQL or the generator'
      : `\nstore: SQLite through ${sqliteName(sqlite.driver)} (BUS_SQLITE_DRIVER=${sqlite.setting})`) +
    `\ncommand: ${report.command.npm ?? report.command.node}; medians of ${opts.runs} counted run(s) after ${opts.warmup} warm-up` +
    (opts.flow ? `\nflow control on each run's goal: ${describeFlow(opts.flow)}` : '') +
    (peer
      ? `\npeer: ${peer.info.describe}, its runs alternated with the bus's; ` +
        'bus/peer = median of the ratios of adjacent runs'
      : '');
  const columns = [...(postgres ? POSTGRES_COLUMNS : TABLE_COLUMNS), ...(peer ? PEER_COLUMNS : [])];
  process.stdout.write(`\n${header}\n\n${formatTable(report.configurations, columns)}\n\n`);
  if (postgres) {
    process.stdout.write(
      'PostgreSQL CPU per job, µs (bench backends + relay backends + shared processes):\n' +
        report.configurations
          .map((c) => {
            const p = c.summary.cpu.postgres;
            const name = `${c.profile} ${c.mode}, ${c.nodes} node(s)`;
            return p
              ? `  ${name}: ${fmt(p.backendsUsPerJob)} + ${fmt(p.relayUsPerJob)} + ${fmt(p.sharedUsPerJob)}`
              : `  ${name}: -`;
          })
          .join('\n') +
        '\n\n',
    );
  }
  const stmts = report.configurations.filter((c) => c.statements);
  if (stmts.length > 0) {
    process.stdout.write(
      'Statements sent to PostgreSQL per job, all nodes (each one round trip):\n' +
        stmts
          .map(
            (c) =>
              `  ${c.profile} ${c.mode}, ${c.nodes} node(s): ${fmt(c.statements.total, 2)} = ` +
              Object.entries(c.statements.byName)
                .map(([k, v]) => `${fmt(v, 2)} ${k}`)
                .join(', '),
          )
          .join('\n') +
        '\n\n',
    );
  }
  const activity = report.configurations.map(formatActivity).filter(Boolean);
  if (activity.length > 0) {
    process.stdout.write(
      `PostgreSQL backends of the bench's database, mean number per pg_stat_activity sample ` +
        `(every ${opts.pgSampleMs} ms; cpu = active, waiting on nothing):\n` +
        `${activity.map((l) => `  ${l}`).join('\n')}\n\n`,
    );
  }
  process.stdout.write(`results: ${relative(process.cwd(), file)}\n`);
  if (process.env.BENCH_MARKDOWN)
    process.stdout.write(`\n${formatMarkdown(report.configurations, columns)}\n`);
  if (profDir) process.stdout.write(`cpu profiles: ${relative(process.cwd(), profDir)}\n`);
  // Speed is never pass/fail here (the machine is shared and noisy); correctness is: a
  // counted run that lost a job, saw an error or a duplicate, or timed out fails the bench.
  const failures = report.configurations.flatMap((c) => {
    const s = c.summary;
    const name =
      `${c.profile} ${c.mode} long-poll ${c.waitSeconds > 0 ? 'on' : 'off'}` +
      (c.store ? ` (${c.store}, ${c.nodes} node(s))` : '');
    const out = [];
    if (s.successPctMin < 100) out.push(`${name}: success ${s.successPctMin.toFixed(1)}%`);
    if (s.errorsTotal > 0) out.push(`${name}: errors ${JSON.stringify(s.errors)}`);
    if (s.duplicatesTotal > 0) out.push(`${name}: ${s.duplicatesTotal} duplicates`);
    if (s.timeouts > 0) out.push(`${name}: ${s.timeouts} run(s) timed out`);
    const ps = c.peer?.summary;
    if (ps) {
      const pn = `${name} on ${c.peer.name}`;
      if (ps.successPctMin < 100) out.push(`${pn}: success ${ps.successPctMin.toFixed(1)}%`);
      if (ps.errorsTotal > 0) out.push(`${pn}: errors ${JSON.stringify(ps.errors)}`);
      if (ps.duplicatesTotal > 0) out.push(`${pn}: ${ps.duplicatesTotal} duplicates`);
      if (ps.timeouts > 0) out.push(`${pn}: ${ps.timeouts} run(s) timed out`);
    }
    return out;
  });
  for (const f of failures) log(`FAILED ${f}`);
  return failures.length > 0 ? 1 : 0;
}

// Last resort (process.exit from anywhere): databases not dropped yet are dropped here.
process.on('exit', dropAllSync);

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (interrupted) {
      killAllSync();
      dropAllSync();
      process.exit(130);
    }
    interrupted = true;
    log(`${signal}: stopping the servers`);
    stopAll()
      .then(() => admin?.dropAll())
      .catch(() => dropAllSync())
      .finally(() => process.exit(130));
  });
}

main().then(
  (code) => process.exit(code),
  async (err) => {
    log(`bench failed: ${err instanceof Error ? err.message : String(err)}`);
    await stopAll();
    await admin?.dropAll().catch(() => dropAllSync());
    process.exit(1);
  },
);
