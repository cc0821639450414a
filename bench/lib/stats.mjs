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

export function formatTable(configs) {
  const head = TABLE_COLUMNS.map(([h]) => h);
  const rows = configs.map((c) => TABLE_COLUMNS.map(([, f]) => f(c)));
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) =>
    cells.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** The same table in Markdown, for bench/README.md and BENCHMARKS.md. */
export function formatMarkdown(configs) {
  const head = TABLE_COLUMNS.map(([h]) => h);
  const rows = configs.map((c) => TABLE_COLUMNS.map(([, f]) => f(c)));
  const sep = head.map((_, i) => (i < 3 ? '---' : '---:'));
  return [head, sep, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}
