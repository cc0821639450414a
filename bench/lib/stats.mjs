// Percentiles, medians over repetitions, and the table.

/** Nearest-rank percentile (p in 0..100) of a list of numbers; null when empty. */
export function percentile(values, p) {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}

export function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x));
  if (v.length === 0) return null;
  return medianOfSorted(Float64Array.from(v).sort());
}

function medianOfSorted(s) {
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const get = (obj, path) => path.split('.').reduce((o, k) => (o == null ? o : o[k]), obj);

/**
 * The summary of one configuration's counted runs: the median of every figure, except
 * success (the worst run), errors and duplicates (summed over the runs) and the peak RSS
 * (the highest).
 */
export function summarize(runs) {
  const med = (path) => median(runs.map((r) => get(r, path)));
  const sum = (path) => runs.reduce((a, r) => a + (get(r, path) ?? 0), 0);
  const errors = {};
  for (const r of runs) {
    for (const [k, n] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + n;
  }
  const ceilingFraction = median(
    runs.map((r) =>
      r.ceiling && r.jobsPerSec != null
        ? (r.jobsPerSec * r.requestsPerJob) / r.ceiling.reqPerSec
        : null,
    ),
  );
  return {
    runs: runs.length,
    successPctMin: Math.min(...runs.map((r) => r.successPct)),
    jobsPerSec: med('jobsPerSec'),
    reqPerSec: med('reqPerSec'),
    latencyMs: { p50: med('latencyMs.p50'), p99: med('latencyMs.p99'), max: med('latencyMs.max') },
    claimP99Ms: med('claimP99Ms'),
    fulfilP99Ms: med('fulfilP99Ms'),
    publishP50Ms: med('publishP50Ms'),
    publishP99Ms: med('publishP99Ms'),
    claims204: med('claims204'),
    errorsTotal: sum('errorCount'),
    errors,
    duplicatesTotal: sum('duplicates'),
    reclaimsTotal: sum('reclaims'),
    timeouts: runs.filter((r) => r.stop !== 'done').length,
    server: {
      cpuPct: med('server.cpuPct'),
      systemPct: med('server.systemPct'),
      cpuUsPerRequest: median(
        runs.map((r) =>
          r.server.cpuSeconds != null && r.requests > 0
            ? (1e6 * r.server.cpuSeconds) / r.requests
            : null,
        ),
      ),
      cpuSecondsPerKJobs: median(
        runs.map((r) =>
          r.server.cpuSeconds != null && r.fulfilled > 0
            ? (1000 * r.server.cpuSeconds) / r.fulfilled
            : null,
        ),
      ),
      peakRssMbMax: Math.max(...runs.map((r) => r.server.peakRssMb ?? 0)) || null,
      storageKbPerJob: median(
        runs.map((r) =>
          r.server.io && r.fulfilled > 0 ? (1024 * r.server.io.storageMb) / r.fulfilled : null,
        ),
      ),
      writeSyscallsPerJob: median(
        runs.map((r) =>
          r.server.io && r.fulfilled > 0 ? r.server.io.writeSyscalls / r.fulfilled : null,
        ),
      ),
    },
    generator: { elu: med('generator.elu'), cpuPct: med('generator.cpuPct') },
    cpu: cpuSplit(runs),
    noisePct: med('cores.noisePct'),
    ceiling: runs[0]?.ceiling
      ? {
          concurrency: runs[0].ceiling.concurrency,
          reqPerSec: med('ceiling.reqPerSec'),
          serverCpuPct: med('ceiling.server.cpuPct'),
          serverCpuUsPerRequest: median(
            runs.map((r) =>
              r.ceiling.server.cpuPct != null
                ? (1e4 * r.ceiling.server.cpuPct) / r.ceiling.reqPerSec
                : null,
            ),
          ),
          generatorElu: med('ceiling.generator.elu'),
          noisePct: med('ceiling.cores.noisePct'),
        }
      : null,
    ceilingFraction,
  };
}

/**
 * Where the CPU went, per configuration (medians over the runs): each bus node, PostgreSQL
 * (when there), the generator, as % of one core and as µs per job fulfilled.
 */
function cpuSplit(runs) {
  const perJob = (seconds, r) =>
    seconds != null && r.fulfilled > 0 ? (1e6 * seconds) / r.fulfilled : null;
  const nodeCount = Math.max(...runs.map((r) => r.server.nodes?.length ?? 0));
  const nodes = Array.from({ length: nodeCount }, (_, i) => ({
    cpuPct: median(runs.map((r) => r.server.nodes?.[i]?.cpuPct)),
    runQueuePct: median(runs.map((r) => r.server.nodes?.[i]?.runQueuePct)),
    usPerJob: median(runs.map((r) => perJob(r.server.nodes?.[i]?.cpuSeconds, r))),
    requests: median(runs.map((r) => r.requestsByNode?.[i] ?? (i === 0 ? r.requests : null))),
  }));
  const pgRuns = runs.filter((r) => r.postgres);
  const pgMed = (f) => median(pgRuns.map(f));
  return {
    nodes,
    nodesCpuPct: median(runs.map((r) => r.server.cpuPct)),
    nodesUsPerJob: median(runs.map((r) => perJob(r.server.cpuSeconds, r))),
    generator: {
      cpuPct: median(runs.map((r) => r.generator.cpuPct)),
      runQueuePct: median(runs.map((r) => r.generator.runQueuePct)),
      usPerJob: median(runs.map((r) => perJob(r.generator.cpuSeconds, r))),
    },
    postgres: pgRuns.length
      ? {
          cpuPct: pgMed((r) => r.postgres.cpuPct),
          runQueuePct: pgMed((r) => r.postgres.runQueuePct),
          usPerJob: pgMed((r) => perJob(r.postgres.cpuSeconds, r)),
          systemPct: pgMed((r) =>
            r.postgres.cpuSeconds > 0
              ? (100 * r.postgres.systemSeconds) / r.postgres.cpuSeconds
              : null,
          ),
          backendsPct: pgMed((r) => r.postgres.byKindPct.bench),
          relayBackendsPct: pgMed((r) => r.postgres.byKindPct.relay),
          sharedProcessesPct: pgMed((r) => r.postgres.byKindPct.shared),
          otherDatabasesPct: pgMed((r) => r.postgres.byKindPct.other),
          backendsUsPerJob: pgMed((r) => perJob(r.postgres.byKind.bench, r)),
          relayUsPerJob: pgMed((r) => perJob(r.postgres.byKind.relay, r)),
          sharedUsPerJob: pgMed((r) => perJob(r.postgres.byKind.shared, r)),
          // The bench's backends' own writes (their commits' WAL flushes).
          storageKbPerJob: pgMed((r) =>
            r.fulfilled > 0
              ? (1024 * (r.postgres.storageMbByKind.bench + r.postgres.storageMbByKind.relay)) /
                r.fulfilled
              : null,
          ),
          sharedStorageKbPerJob: pgMed((r) =>
            r.fulfilled > 0 ? (1024 * r.postgres.storageMbByKind.shared) / r.fulfilled : null,
          ),
          processesEndedInWindow: pgRuns.reduce((a, r) => a + r.postgres.processesEnded, 0),
          activity: meanActivity(pgRuns),
        }
      : null,
    accountedPct: median(runs.map((r) => r.cores.accountedPct)),
  };
}

/** The mean over the runs of the backends in each state per pg_stat_activity sample. */
function meanActivity(runs) {
  const sampled = runs.filter((r) => r.postgres.activity?.samples > 0);
  if (sampled.length === 0) return null;
  const sum = {};
  for (const r of sampled) {
    for (const [k, v] of Object.entries(r.postgres.activity.meanBackends)) {
      sum[k] = (sum[k] ?? 0) + v;
    }
  }
  return Object.fromEntries(
    Object.entries(sum)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => [k, v / sampled.length]),
  );
}

/** One line: what the bench's backends were doing, in mean backends per sample. */
export function formatActivity(c) {
  const a = c.summary.cpu.postgres?.activity;
  if (!a) return null;
  const parts = Object.entries(a)
    .filter(([, v]) => v >= 0.05)
    .map(([k, v]) => `${v.toFixed(1)} ${k}`);
  return `${c.profile} ${c.mode}: ${parts.join(', ')}`;
}

const fmt = (x, digits = 0) => (x == null || !Number.isFinite(x) ? '-' : x.toFixed(digits));

export const TABLE_COLUMNS = [
  ['profile', (c) => c.profile],
  ['mode', (c) => c.mode],
  ['lp', (c) => (c.waitSeconds > 0 ? `${c.waitSeconds}s` : 'off')],
  ['ok%', (c) => fmt(c.summary.successPctMin, c.summary.successPctMin === 100 ? 0 : 1)],
  ['jobs/s', (c) => fmt(c.summary.jobsPerSec)],
  ['p50 ms', (c) => fmt(c.summary.latencyMs.p50, 1)],
  ['p99 ms', (c) => fmt(c.summary.latencyMs.p99, 1)],
  ['max ms', (c) => fmt(c.summary.latencyMs.max, 0)],
  ['claim p99', (c) => fmt(c.summary.claimP99Ms, 1)],
  ['fulfil p99', (c) => fmt(c.summary.fulfilP99Ms, 1)],
  ['err', (c) => String(c.summary.errorsTotal)],
  ['dup', (c) => String(c.summary.duplicatesTotal)],
  ['srv cpu%', (c) => fmt(c.summary.server.cpuPct)],
  ['srv sys%', (c) => fmt(c.summary.server.systemPct)],
  ['srv µs/req', (c) => fmt(c.summary.server.cpuUsPerRequest)],
  ['srv MB', (c) => fmt(c.summary.server.peakRssMbMax)],
  ['disk KB/job', (c) => fmt(c.summary.server.storageKbPerJob)],
  ['gen elu', (c) => fmt(c.summary.generator.elu, 2)],
  ['noise%', (c) => fmt(c.summary.noisePct)],
  ['ceil req/s', (c) => fmt(c.summary.ceiling?.reqPerSec)],
  ['ceil µs/req', (c) => fmt(c.summary.ceiling?.serverCpuUsPerRequest)],
  [
    'of ceil',
    (c) =>
      c.summary.ceilingFraction == null ? '-' : `${fmt(100 * c.summary.ceilingFraction, 1)}%`,
  ],
];

/**
 * The columns of a PostgreSQL run: those above with PostgreSQL's storage writes in place
 * of the bus's, then where the CPU went (each node, PostgreSQL, the generator).
 */
export const POSTGRES_COLUMNS = [
  ...TABLE_COLUMNS.map((col) =>
    col[0] === 'disk KB/job'
      ? ['pg KB/job', (c) => fmt(c.summary.cpu.postgres?.storageKbPerJob)]
      : col,
  ),
  ['node cpu%', (c) => c.summary.cpu.nodes.map((n) => fmt(n.cpuPct)).join('+')],
  ['pg cpu%', (c) => fmt(c.summary.cpu.postgres?.cpuPct)],
  ['gen cpu%', (c) => fmt(c.summary.cpu.generator.cpuPct)],
  ['node µs/job', (c) => c.summary.cpu.nodes.map((n) => fmt(n.usPerJob)).join('+')],
  ['pg µs/job', (c) => fmt(c.summary.cpu.postgres?.usPerJob)],
  ['gen µs/job', (c) => fmt(c.summary.cpu.generator.usPerJob)],
  ['node runq%', (c) => c.summary.cpu.nodes.map((n) => fmt(n.runQueuePct)).join('+')],
  ['pg runq%', (c) => fmt(c.summary.cpu.postgres?.runQueuePct)],
  ['pg tx/job', (c) => fmt(c.databaseStats?.commitsPerJob, 1)],
];

export function formatTable(configs, columns = TABLE_COLUMNS) {
  const head = columns.map(([h]) => h);
  const rows = configs.map((c) => columns.map(([, f]) => f(c)));
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) =>
    cells.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** The same table in Markdown, for bench/README.md and BENCHMARKS.md. */
export function formatMarkdown(configs, columns = TABLE_COLUMNS) {
  const head = columns.map(([h]) => h);
  const rows = configs.map((c) => columns.map(([, f]) => f(c)));
  const sep = head.map((_, i) => (i < 3 ? '---' : '---:'));
  return [head, sep, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}
