// The bench's peer (`--peer bullmq`, issue 21): set up once, one run beside each of the
// bus's, the figures side by side. See bullmq.mjs for the run itself.
import { redact } from './postgres.mjs';
import { loadBullmq, probeRedis, runBullmqJobs } from './bullmq.mjs';
import { median } from './stats.mjs';

/**
 * Loads BullMQ (throws, saying what to run, when bench/node_modules lacks it) and checks
 * Redis. Redis not answering is not a failure: the peer is skipped with a line saying so
 * (null), the bus's runs go on.
 */
export async function setUpPeer(opts, log) {
  const lib = await loadBullmq();
  const redis = await probeRedis(lib, opts.redisUrl);
  if (!redis.ok) {
    log(
      `peer ${opts.peer} skipped: Redis at ${redact(opts.redisUrl)} does not answer (${redis.reason}); ` +
        'the bus runs alone',
    );
    return null;
  }
  const { createRequire } = await import('node:module');
  const version = createRequire(import.meta.url)('bullmq/package.json').version;
  const describe =
    `BullMQ ${version} on Redis ${redis.version} at ${redact(opts.redisUrl)} ` +
    `(appendonly ${redis.appendonly ?? '?'}, save "${redis.save ?? '?'}"; not pinned), ` +
    'one Worker of concurrency = workers, in the generator';
  log(
    `peer: ${describe}` +
      (redis.pid ? `, redis pid ${redis.pid}` : ', redis pid unknown: no redis cpu figure'),
  );
  return {
    lib,
    url: opts.redisUrl,
    redisPid: redis.pid,
    info: {
      name: opts.peer,
      bullmq: version,
      redis: { ...redis, url: redact(opts.redisUrl) },
      workersAs: 'one Worker, concurrency = the profile workers',
      describe,
    },
  };
}

/** One run of the peer: the profile's jobs, workers, mode and publishes in flight. */
export function peerRun(peer, opts, { name, jobs, workers, mode }) {
  return runBullmqJobs({
    lib: peer.lib,
    url: peer.url,
    redisPid: peer.redisPid,
    name,
    jobs,
    workers,
    mode,
    publishInFlight: opts.publishers,
    timeoutMs: opts.runTimeout * 1000,
  });
}

/**
 * The peer's summary: medians of its runs, and the ratios bus/peer, each the median of the
 * ratios of a bus run and the peer run beside it (adjacent in time, so under the same
 * noise), with the ratio of the medians too.
 */
export function summarizePeer(busRuns, peerRuns) {
  const med = (f) => median(peerRuns.map(f));
  const pairs = busRuns.map((b, i) => [b, peerRuns[i]]).filter(([, p]) => p);
  const ratio = (f) => median(pairs.map(([b, p]) => (f(b) != null && f(p) ? f(b) / f(p) : null)));
  const errors = {};
  for (const r of peerRuns) {
    for (const [k, n] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + n;
  }
  // CPU per job, both sides of each: the bus's server(s) and generator (its HTTP workers
  // and publisher), Redis and the generator (BullMQ's Worker and adds). The figure the
  // noise of other processes moves least.
  const perJob = (s, r) => (s != null && r.fulfilled > 0 ? (1e6 * s) / r.fulfilled : null);
  const busCpu = (r) =>
    r.server.cpuSeconds != null ? perJob(r.server.cpuSeconds + r.generator.cpuSeconds, r) : null;
  const peerCpu = (r) =>
    r.redis?.cpuSeconds != null ? perJob(r.redis.cpuSeconds + r.generator.cpuSeconds, r) : null;
  const busJobs = median(busRuns.map((r) => r.jobsPerSec));
  const busP99 = median(busRuns.map((r) => r.latencyMs.p99));
  const jobsPerSec = med((r) => r.jobsPerSec);
  const p99 = med((r) => r.latencyMs.p99);
  return {
    runs: peerRuns.length,
    successPctMin: peerRuns.length ? Math.min(...peerRuns.map((r) => r.successPct)) : null,
    jobsPerSec,
    latencyMs: { p50: med((r) => r.latencyMs.p50), p99, max: med((r) => r.latencyMs.max) },
    errorsTotal: peerRuns.reduce((a, r) => a + r.errorCount, 0),
    errors,
    duplicatesTotal: peerRuns.reduce((a, r) => a + r.duplicates, 0),
    timeouts: peerRuns.filter((r) => r.stop !== 'done').length,
    redis: {
      cpuPct: med((r) => r.redis?.cpuPct),
      usPerJob: med((r) => r.redis?.usPerJob),
    },
    generator: {
      cpuPct: med((r) => r.generator.cpuPct),
      elu: med((r) => r.generator.elu),
      usPerJob: med((r) => perJob(r.generator.cpuSeconds, r)),
    },
    cpuUsPerJob: med(peerCpu),
    busCpuUsPerJob: median(busRuns.map(busCpu)),
    ratio: {
      cpuPerJob: ratio((r) => (r.peer ? peerCpu(r) : busCpu(r))),
      jobsPerSec: ratio((r) => r.jobsPerSec),
      p99: ratio((r) => r.latencyMs.p99),
      jobsPerSecOfMedians: busJobs != null && jobsPerSec ? busJobs / jobsPerSec : null,
      p99OfMedians: busP99 != null && p99 ? busP99 / p99 : null,
    },
  };
}

const fmt = (x, d = 0) => (x == null || !Number.isFinite(x) ? '-' : x.toFixed(d));

/** The columns added to the table with a peer. */
export const PEER_COLUMNS = [
  [
    'peer ok%',
    (c) => fmt(c.peer?.summary?.successPctMin, c.peer?.summary?.successPctMin === 100 ? 0 : 1),
  ],
  ['peer jobs/s', (c) => fmt(c.peer?.summary?.jobsPerSec)],
  ['peer p99 ms', (c) => fmt(c.peer?.summary?.latencyMs.p99, 1)],
  ['peer err', (c) => (c.peer?.summary ? String(c.peer.summary.errorsTotal) : '-')],
  ['peer dup', (c) => (c.peer?.summary ? String(c.peer.summary.duplicatesTotal) : '-')],
  ['redis cpu%', (c) => fmt(c.peer?.summary?.redis.cpuPct)],
  ['redis µs/job', (c) => fmt(c.peer?.summary?.redis.usPerJob)],
  ['peer gen cpu%', (c) => fmt(c.peer?.summary?.generator.cpuPct)],
  ['bus cpu µs/job', (c) => fmt(c.peer?.summary?.busCpuUsPerJob)],
  ['peer cpu µs/job', (c) => fmt(c.peer?.summary?.cpuUsPerJob)],
  ['bus/peer cpu/job', (c) => fmt(c.peer?.summary?.ratio.cpuPerJob, 2)],
  ['bus/peer jobs/s', (c) => fmt(c.peer?.summary?.ratio.jobsPerSec, 2)],
  ['bus/peer p99', (c) => fmt(c.peer?.summary?.ratio.p99, 2)],
];
