// The processes the bench starts (the bus, the ceiling server), where they run, what they
// cost (/proc), and how they are always stopped.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BUS_MAIN = join(ROOT, 'packages/server/dist/main.js');
const NOOP_MAIN = join(ROOT, 'bench/noop-server.mjs');
const WATCH = join(ROOT, 'bench/lib/die-with-parent.mjs');
const PG_COUNT = join(ROOT, 'bench/lib/pg-count.mjs');

let clockTicks = 100;
try {
  clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // Linux's usual value.
}

/** Every child still running: stopped on exit, on Ctrl-C and on failure. */
const children = new Set();

export function killAllSync() {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      // Already gone.
    }
  }
  children.clear();
}

export async function stopAll() {
  await Promise.all([...children].map((c) => stopChild(c)));
}

process.on('exit', killAllSync);

/** The CPUs this process may use, from /proc/self/status (Linux), else 0..n-1. */
export function allowedCpus() {
  try {
    const line = readFileSync('/proc/self/status', 'utf8').match(/^Cpus_allowed_list:\s*(.+)$/m);
    if (line) {
      const out = [];
      for (const part of line[1].trim().split(',')) {
        const [a, b] = part.split('-').map(Number);
        for (let c = a; c <= (b ?? a); c++) out.push(c);
      }
      return out;
    }
  } catch {
    // Not Linux.
  }
  return cpus().map((_, i) => i);
}

export function hasTaskset() {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * The simple pinning of bench:routes and bench:idle: this process to the second allowed
 * CPU, the servers to the first, when taskset and two CPUs are there and `noPin` is not
 * set. Returns the server's CPU (undefined: not pinned) and a line describing it.
 */
export function pinGeneratorBesideServer(noPin) {
  const cpus = allowedCpus();
  if (noPin || !hasTaskset() || cpus.length < 2)
    return { serverCpu: undefined, note: 'not pinned' };
  pinSelf(cpus[1]);
  return { serverCpu: cpus[0], note: `servers on cpu ${cpus[0]}, generator on cpu ${cpus[1]}` };
}

/** Moves this process (all its threads) to one CPU; its later threads inherit it. */
export function pinSelf(cpu) {
  execFileSync('taskset', ['-a', '-cp', String(cpu), String(process.pid)], { stdio: 'ignore' });
}

/** CPU time of a process in seconds, its threads included: { user, system }, or null. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at field 3.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(f[11]) / clockTicks, system: Number(f[12]) / clockTicks };
  } catch {
    return null;
  }
}

/**
 * The scheduler's figures for a process's main thread (its event loop, for node) from
 * /proc/<pid>/schedstat: seconds on a CPU and seconds runnable but waiting for one (the
 * run queue), or null (no CONFIG_SCHED_INFO, not Linux, gone).
 */
export function schedSeconds(pid) {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ').map(Number);
    return Number.isFinite(wait) ? { run: run / 1e9, wait: wait / 1e9 } : null;
  } catch {
    return null;
  }
}

/** Per-CPU times in ticks from /proc/stat: cpu number → { busy, iowait, steal, total }. */
export function cpuTimes() {
  const out = new Map();
  try {
    for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = line.match(/^cpu(\d+)\s+(.+)$/);
      if (!m) continue;
      const [user, nice, system, idle, iowait, irq, softirq, steal] = m[2].split(' ').map(Number);
      out.set(Number(m[1]), {
        busy: user + nice + system + irq + softirq,
        iowait,
        steal,
        total: user + nice + system + idle + iowait + irq + softirq + steal,
      });
    }
  } catch {
    // Not Linux.
  }
  return out;
}

/** How busy one CPU was between two cpuTimes() readings, in % of that CPU. */
export function cpuLoad(before, after, cpu) {
  const a = before.get(cpu);
  const b = after.get(cpu);
  if (!a || !b || b.total === a.total) return null;
  const pct = (k) => (100 * (b[k] - a[k])) / (b.total - a.total);
  return { busyPct: pct('busy'), iowaitPct: pct('iowait'), stealPct: pct('steal') };
}

/** /proc/<pid>/io: bytes written (all write syscalls, sockets included), write syscalls, bytes sent to storage. */
export function io(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/io`, 'utf8');
    const n = (name) => Number(text.match(new RegExp(`^${name}:\\s*(\\d+)`, 'm'))?.[1] ?? NaN);
    return { wchar: n('wchar'), syscw: n('syscw'), writeBytes: n('write_bytes') };
  } catch {
    return null;
  }
}

/** VmHWM (peak RSS) and VmRSS in MB, or nulls. */
export function memory(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name) => {
      const m = status.match(new RegExp(`^${name}:\\s*(\\d+) kB`, 'm'));
      return m ? Number(m[1]) / 1024 : null;
    };
    return { peakRssMb: kb('VmHWM'), rssMb: kb('VmRSS') };
  } catch {
    return { peakRssMb: null, rssMb: null };
  }
}

/** Resets VmHWM to the current RSS (Linux ≥ 4.0), so the next peak is one run's. */
export function resetPeakRss(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function tail(file, lines = 20) {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * Starts a node script pinned to `cpu` (when given), its output in `logFile`, its
 * standard input a pipe that ends when the bench goes (see die-with-parent.mjs).
 */
function spawnNode({ script, args = [], nodeArgs = [], env, cpu, dir, logFile }) {
  const argv = [...nodeArgs, '--import', WATCH, script, ...args];
  const [cmd, cmdArgs] =
    cpu == null
      ? [process.execPath, argv]
      : ['taskset', ['-c', String(cpu), process.execPath, ...argv]];
  const log = openSync(logFile, 'a');
  // taskset execs node in place: the child's pid is the server's.
  const child = spawn(cmd, cmdArgs, { env, stdio: ['pipe', log, log], cwd: ROOT });
  closeSync(log);
  children.add(child);
  child.exitPromise = new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      children.delete(child);
      // Its temporary folder (database, log) goes with it; the log's end is kept.
      child.lastLog = tail(logFile, 30);
      rmSync(dir, { recursive: true, force: true });
      resolve({ code, signal });
    }),
  );
  return child;
}

async function stopChild(child, graceMs = 10_000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await child.exitPromise;
  clearTimeout(timer);
}

async function waitHealthy(url, child, logFile, what, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${what} exited during start-up:\n${child.lastLog ?? tail(logFile)}`);
    }
    try {
      const res = await request(`${url}/health`, { headersTimeout: 2000, bodyTimeout: 2000 });
      await res.body.dump();
      if (res.statusCode === 200) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not answer /health within ${timeoutMs} ms:\n${tail(logFile)}`);
}

/** Waits for a server to answer /health; if it never does, stops it and removes its folder. */
async function waitStarted(url, child, dir, logFile, what) {
  try {
    await waitHealthy(url, child, logFile, what);
  } catch (err) {
    await stopChild(child, 2000);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** An environment without the caller's bus settings, so only ours apply. */
function cleanEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(BUS_|INTENT_|DASHBOARD_PASSWORD$|PORT$|NODE_OPTIONS$)/.test(k)) continue;
    env[k] = v;
  }
  return env;
}

/**
 * Starts the bus (`packages/server/dist/main.js`) on 127.0.0.1, a fresh SQLite file in a
 * temporary folder (unless `extraEnv` sets BUS_DATABASE_URL), the main key chosen here or
 * given (`secret`, `adminSecret`: the nodes of one bus share them). `cpuProfDir`: write a
 * V8 CPU profile there when it stops. `countFile`: count the statements it sends PostgreSQL
 * and write them there when it stops (pg-count.mjs).
 */
export async function startBus({
  cpu,
  logLevel,
  cpuProfDir,
  countFile,
  nodeArgs: extraNodeArgs = [],
  extraEnv = {},
  secret = `ib_bench_${randomBytes(16).toString('hex')}`,
  adminSecret = randomBytes(24).toString('hex'),
}) {
  if (!existsSync(BUS_MAIN)) {
    throw new Error(`${BUS_MAIN} is missing: build first (npx tsc -b)`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'intent-bus-bench-'));
  const port = await freePort();
  const logFile = join(dir, 'bus.log');
  const env = {
    ...cleanEnv(),
    BUS_HOST: '127.0.0.1',
    BUS_PORT: String(port),
    BUS_DB_PATH: join(dir, 'bus.db'),
    BUS_SECRET: secret,
    BUS_ADMIN_SECRET: adminSecret,
    DASHBOARD_PASSWORD: randomBytes(15).toString('base64url'),
    BUS_LOG_LEVEL: logLevel,
    ...extraEnv,
  };
  const nodeArgs = [
    ...extraNodeArgs,
    ...(cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', cpuProfDir] : []),
  ];
  if (countFile) {
    // Counts the statements the node sends PostgreSQL (pg-count.mjs).
    nodeArgs.push('--import', PG_COUNT);
    env.BENCH_PG_COUNT_FILE = countFile;
  }
  const child = spawnNode({ script: BUS_MAIN, nodeArgs, env, cpu, dir, logFile });
  const url = `http://127.0.0.1:${port}`;
  await waitStarted(url, child, dir, logFile, 'the bus');
  return {
    url,
    pid: child.pid,
    secret,
    adminSecret,
    logFile,
    /** Deletes every intent, between runs (admin purge, not timed). */
    async purge() {
      const res = await request(`${url}/admin/purge`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-admin-token': adminSecret },
        body: '{"confirm":true}',
        headersTimeout: 120_000,
        bodyTimeout: 120_000,
      });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`purge: ${res.statusCode} ${text}`);
    },
    alive: () => child.exitCode === null && child.signalCode === null,
    logTail: (n) => child.lastLog ?? tail(logFile, n),
    async stop() {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts the ceiling server (noop-server.mjs), pinned like the bus. */
export async function startNoop({ cpu }) {
  const dir = mkdtempSync(join(tmpdir(), 'intent-bus-bench-noop-'));
  const port = await freePort();
  const logFile = join(dir, 'noop.log');
  const child = spawnNode({
    script: NOOP_MAIN,
    args: [String(port)],
    env: cleanEnv(),
    cpu,
    dir,
    logFile,
  });
  const url = `http://127.0.0.1:${port}`;
  await waitStarted(url, child, dir, logFile, 'the ceiling server');
  return {
    url,
    pid: child.pid,
    async stop() {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
