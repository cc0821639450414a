// PostgreSQL for the bench (--store postgres): a database of its own per configuration,
// created and dropped through an admin connection (the `pg` package of the server's
// workspace), the cluster's settings as SHOW gives them, and what the cluster's processes
// cost (/proc), told apart: the backends serving the bench's database, the cluster's shared
// processes (postmaster, WAL writer, checkpointer, …) and the backends of other databases.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ROOT, cpuSeconds, io, schedSeconds } from './procs.mjs';

const SERVER_PKG = join(ROOT, 'packages/server/package.json');
const pg = () => createRequire(SERVER_PKG)('pg');

export const DEFAULT_ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

/** The settings quoted beside the figures (SHOW), none of them changed by the bench. */
const SETTINGS = [
  'server_version',
  'synchronous_commit',
  'fsync',
  'wal_sync_method',
  'full_page_writes',
  'commit_delay',
  'wal_writer_delay',
  'wal_buffers',
  'shared_buffers',
  'max_wal_size',
  'checkpoint_timeout',
  'autovacuum',
  'max_connections',
];

/** Databases created and not dropped yet: dropped at the end, on failure and on Ctrl-C. */
const created = new Set();
let adminUrlInUse = null;

/** `url` with its database replaced by `database` and `options` (libpq startup options) set. */
export function databaseUrl(adminUrl, database, options) {
  const u = new URL(adminUrl);
  u.pathname = `/${encodeURIComponent(database)}`;
  if (options) u.searchParams.set('options', options);
  return u.toString();
}

/** Connects to the admin database; throws a message that says what to pass when it fails. */
export async function openAdmin(adminUrl) {
  const { Client } = pg();
  const client = new Client({ connectionString: adminUrl, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(
      `--store postgres: cannot connect to ${redact(adminUrl)} (${err.message}); ` +
        'pass --pg-url postgres://USER@HOST:PORT/postgres (a role that may CREATE DATABASE)',
      { cause: err },
    );
  }
  client.on('error', () => {});
  adminUrlInUse = adminUrl;
  const one = async (sql, values) => (await client.query(sql, values)).rows[0];
  return {
    /** SHOW of each quoted setting, and the server's version string. */
    async settings() {
      const out = {};
      for (const name of SETTINGS) out[name] = (await one(`SHOW ${name}`))[name];
      out.version = (await one('SELECT version() AS v')).v;
      return out;
    },
    /** The postmaster's pid: the parent of this connection's backend (same machine only). */
    async postmasterPid() {
      const { pid } = await one('SELECT pg_backend_pid() AS pid');
      return parentPid(pid);
    },
    /** Creates a database of the bench's own; remembered until dropped. */
    async createDatabase(tag) {
      const name = `ib_bench_${process.pid}_${randomBytes(4).toString('hex')}_${tag}`;
      await client.query(`CREATE DATABASE ${name}`);
      created.add(name);
      return name;
    },
    /** Drops it, ending its connections (a node that did not stop in time). */
    async dropDatabase(name) {
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      created.delete(name);
    },
    /** Drops every database this process created and has not dropped yet. */
    async dropAll() {
      for (const name of [...created]) await this.dropDatabase(name);
    },
    /**
     * The backends of the wake relay (LISTEN/NOTIFY) of the nodes on `database`: the one
     * connection per node whose last statement was its LISTEN or a pg_notify.
     */
    async relayPids(database) {
      const { rows } = await client.query(
        `SELECT pid FROM pg_stat_activity WHERE datname = $1
           AND (query LIKE 'LISTEN %' OR query LIKE 'SELECT pg_notify(%')`,
        [database],
      );
      return new Set(rows.map((r) => r.pid));
    },
    /**
     * The counters of pg_stat_database for `database` once no backend is connected to it
     * any more (a backend flushes its counters when it ends; before that they may lag by
     * up to 10 s). Call after the nodes stopped. Null if backends are still there after
     * `timeoutMs`.
     */
    async databaseStats(database, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const { n } = await one(
          'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1',
          [database],
        );
        if (n === 0) break;
        if (Date.now() > deadline) return null;
        await new Promise((r) => setTimeout(r, 100));
      }
      const row = await one(
        `SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted,
                tup_returned, tup_fetched, blks_hit, blks_read
           FROM pg_stat_database WHERE datname = $1`,
        [database],
      );
      return row ? Object.fromEntries(Object.entries(row).map(([k, v]) => [k, Number(v)])) : null;
    },
    /**
     * Samples pg_stat_activity every `everyMs` between start() and stop(): what the
     * backends of `database` were doing (state and wait event), the relay's apart. stop()
     * returns the mean number of backends in each state per sample.
     */
    activitySampler(database, relayPids, everyMs) {
      let timer = null;
      let busy = false;
      let samples = 0;
      let counts = {};
      const sample = async () => {
        if (busy) return;
        busy = true;
        try {
          const { rows } = await client.query(
            `SELECT pid, state, wait_event_type, wait_event FROM pg_stat_activity
              WHERE datname = $1 AND backend_type = 'client backend'`,
            [database],
          );
          if (timer == null) return;
          samples++;
          for (const r of rows) {
            const k = activityKey(r, relayPids.has(r.pid));
            counts[k] = (counts[k] ?? 0) + 1;
          }
        } catch {
          // A sample lost: the next one counts.
        } finally {
          busy = false;
        }
      };
      return {
        start() {
          samples = 0;
          counts = {};
          timer = setInterval(sample, everyMs);
        },
        stop() {
          clearInterval(timer);
          timer = null;
          const mean = {};
          for (const [k, n] of Object.entries(counts).sort((a, b) => b[1] - a[1])) {
            mean[k] = samples > 0 ? n / samples : null;
          }
          return { everyMs, samples, meanBackends: mean };
        },
      };
    },
    /** `ib_bench_*` databases whose bench process is gone (a bench killed with SIGKILL). */
    async leftovers() {
      const { rows } = await client.query(
        "SELECT datname FROM pg_database WHERE datname LIKE 'ib\\_bench\\_%'",
      );
      return rows
        .map((r) => r.datname)
        .filter((name) => {
          const pid = Number(name.split('_')[2]);
          return !created.has(name) && !(Number.isInteger(pid) && alive(pid));
        });
    },
    async close() {
      await client.end().catch(() => {});
      adminUrlInUse = null;
    },
  };
}

/**
 * Drops what is left without waiting for the event loop (a second Ctrl-C, process exit):
 * one short child process per call. Best effort.
 */
export function dropAllSync() {
  if (created.size === 0 || adminUrlInUse == null) return;
  const code = `
    const { Client } = require(process.env.PG_MODULE);
    const c = new Client({ connectionString: process.env.PG_URL, connectionTimeoutMillis: 5000 });
    (async () => {
      await c.connect();
      for (const n of JSON.parse(process.env.PG_NAMES)) {
        await c.query('DROP DATABASE IF EXISTS ' + n + ' WITH (FORCE)');
      }
      await c.end();
    })().catch(() => process.exit(1));`;
  spawnSync(process.execPath, ['-e', code], {
    env: {
      ...process.env,
      PG_MODULE: createRequire(SERVER_PKG).resolve('pg'),
      PG_URL: adminUrlInUse,
      PG_NAMES: JSON.stringify([...created]),
    },
    stdio: 'ignore',
    timeout: 15_000,
  });
  created.clear();
}

export function pendingDatabases() {
  return [...created];
}

/**
 * One backend's state in a sample: `relay …` for a relay's backend; `cpu` when active and
 * waiting on nothing (running, or runnable and waiting for a CPU); `active <type>:<event>`
 * when active and waiting (IO:WALSync is its commit's WAL flush, LWLock:WALWrite waiting
 * for another backend's flush, Lock:… a row or advisory lock); `idle`, `idle in
 * transaction` (waiting for the node's next statement) otherwise.
 */
function activityKey(r, relay) {
  const wait = r.wait_event_type ? `${r.wait_event_type}:${r.wait_event}` : null;
  let k;
  if (r.state === 'active') k = wait ? `active ${wait}` : 'cpu';
  else k = r.state ?? 'unknown';
  return relay ? `relay ${k}` : k;
}

/** The URL with its password masked, for messages and results. */
export function redact(url) {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

function parentPid(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

function childrenOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    // No CONFIG_PROC_CHILDREN: scan /proc.
    const out = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        if (parentPid(Number(entry)) === pid) out.push(Number(entry));
      } catch {
        // Gone meanwhile.
      }
    }
    return out;
  }
}

/**
 * The postmaster's children as postgres names them in their process title:
 * `postgres: [cluster: ]user database host(port) state` for a backend, `postgres:
 * [cluster: ]walwriter` and so on for the shared processes.
 */
function kindOf(pid, database) {
  let title;
  try {
    title = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return null;
  }
  const words = title.trim().split(/\s+/);
  if (words.includes(database)) return 'bench';
  if (/\d+\.\d+\.\d+\.\d+\(\d+\)|\[local\]|\S+\(\d+\)/.test(title)) return 'other';
  return 'shared';
}

/**
 * CPU seconds (user, system) and storage writes of the cluster's processes now, by pid:
 * the postmaster, and each child with its kind (`bench`: a backend of `database`, `relay`:
 * one of those that serves a node's wake relay, `shared`: checkpointer, WAL writer, …,
 * `other`: backends of other databases).
 */
export function pgSnapshot(postmasterPid, database, relayPids = new Set()) {
  const procs = new Map();
  const add = (pid, kind) => {
    const cpu = cpuSeconds(pid);
    if (cpu == null || kind == null) return;
    const sched = schedSeconds(pid);
    procs.set(pid, {
      kind,
      cpu: cpu.user + cpu.system,
      system: cpu.system,
      wait: sched?.wait ?? null,
      io: io(pid),
    });
  };
  add(postmasterPid, 'shared');
  for (const pid of childrenOf(postmasterPid)) {
    add(pid, relayPids.has(pid) ? 'relay' : kindOf(pid, database));
  }
  return procs;
}

/**
 * What the cluster's processes used between two snapshots: CPU seconds by kind (the total
 * counts the bench's backends, its relay backends and the shared processes, not other
 * databases' backends), storage bytes written by kind, and how many of the counted
 * processes started and ended in between (the CPU of one that ended is missing).
 */
export function pgDelta(before, after) {
  const zero = () => ({ bench: 0, relay: 0, shared: 0, other: 0 });
  const cpu = zero();
  const system = zero();
  const storage = zero();
  let started = 0;
  let ended = 0;
  let wait = 0;
  let waitKnown = true;
  for (const [pid, b] of after) {
    const a = before.get(pid);
    if (a == null && b.kind !== 'other') started++;
    if (b.kind !== 'other') {
      if (b.wait == null || (a != null && a.wait == null)) waitKnown = false;
      else wait += b.wait - (a?.wait ?? 0);
    }
    cpu[b.kind] += b.cpu - (a?.cpu ?? 0);
    system[b.kind] += b.system - (a?.system ?? 0);
    if (b.io) storage[b.kind] += b.io.writeBytes - (a?.io?.writeBytes ?? 0);
  }
  for (const [pid, a] of before) if (!after.has(pid) && a.kind !== 'other') ended++;
  const counted = (o) => o.bench + o.relay + o.shared;
  return {
    cpuSeconds: counted(cpu),
    systemSeconds: counted(system),
    byKind: cpu,
    // Summed over the counted processes: backend-seconds spent runnable, waiting for a CPU.
    runQueueSeconds: waitKnown ? wait : null,
    // Storage writes: a backend's are mostly its own commits' WAL flushes; the shared
    // processes' (WAL writer, checkpointer) serve every database of the cluster.
    storageMbByKind: Object.fromEntries(Object.entries(storage).map(([k, v]) => [k, v / 2 ** 20])),
    processesStarted: started,
    processesEnded: ended,
  };
}
