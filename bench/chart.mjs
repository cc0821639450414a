// Draws jobs/s and publish→fulfil p99 against the number of workers from one bench result
// (concurrent mode; one line per long-poll setting, and one for the peer of a --peer run),
// as an SVG with no dependencies.
//
//   npm run bench:chart -- [results.json] [--out docs/benchmarks.svg]
// Without a file it takes the newest bench/results/*.json.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from './lib/procs.mjs';

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: { out: { type: 'string', default: join(ROOT, 'docs/benchmarks.svg') } },
});

function newestResult() {
  const dir = join(ROOT, 'bench/results');
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort();
  if (files.length === 0) throw new Error('no results in bench/results: run npm run bench first');
  return join(dir, files.at(-1));
}

const file = positionals[0] ?? newestResult();
const result = JSON.parse(readFileSync(file, 'utf8'));

/** Series by long-poll setting: points (workers, jobs/s, p99), fewest workers first. */
const series = new Map();
for (const c of result.configurations) {
  // Concurrent mode, and the seed's four sizes only (the long runs repeat their worker counts).
  if (c.mode !== 'concurrent' || c.profile.endsWith('-long')) continue;
  const name = `the bus, ${c.waitSeconds > 0 ? `long poll ${c.waitSeconds} s` : 'plain polling'}`;
  if (!series.has(name)) series.set(name, []);
  series.get(name).push({
    workers: c.workers,
    jobs: c.summary.jobsPerSec,
    p99: c.summary.latencyMs.p99,
  });
  // A run with --peer: the peer's medians of the same configuration, a line of its own.
  if (c.peer?.summary) {
    const peer = `${c.peer.name}, same definitions`;
    if (!series.has(peer)) series.set(peer, []);
    series.get(peer).push({
      workers: c.workers,
      jobs: c.peer.summary.jobsPerSec,
      p99: c.peer.summary.latencyMs.p99,
    });
  }
}
if (series.size === 0) throw new Error(`${file} has no concurrent-mode results`);
for (const points of series.values()) points.sort((a, b) => a.workers - b.workers);

const all = [...series.values()].flat();
const workers = [...new Set(all.map((p) => p.workers))].sort((a, b) => a - b);
const niceMax = (v) => {
  const step = 10 ** Math.floor(Math.log10(v));
  return Math.ceil(v / step) * step;
};

// Two panels side by side: jobs/s (left) and p99 ms (right), workers on a log scale.
const W = 440;
const H = 300;
const M = { left: 60, right: 20, top: 40, bottom: 50 };
const colors = ['#1f6feb', '#d1242f', '#1a7f37', '#9a6700'];
const xOf = (w) => {
  const [lo, hi] = [Math.log(workers[0]), Math.log(workers.at(-1))];
  const t = hi === lo ? 0.5 : (Math.log(w) - lo) / (hi - lo);
  return M.left + t * (W - M.left - M.right);
};
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');

function panel(offsetX, title, key, unit) {
  const max = niceMax(Math.max(...all.map((p) => p[key])) * 1.05);
  const yOf = (v) => H - M.bottom - (v / max) * (H - M.top - M.bottom);
  const out = [`<g transform="translate(${offsetX},0)">`];
  out.push(
    `<text x="${W / 2}" y="22" text-anchor="middle" font-weight="bold">${esc(title)}</text>`,
  );
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    const y = yOf(v);
    out.push(
      `<line x1="${M.left}" x2="${W - M.right}" y1="${y}" y2="${y}" stroke="#ddd"/>`,
      `<text x="${M.left - 6}" y="${y + 4}" text-anchor="end">${Math.round(v)}</text>`,
    );
  }
  for (const w of workers) {
    out.push(`<text x="${xOf(w)}" y="${H - M.bottom + 18}" text-anchor="middle">${w}</text>`);
  }
  out.push(
    `<text x="${(M.left + W - M.right) / 2}" y="${H - 12}" text-anchor="middle">workers</text>`,
    `<text transform="translate(16,${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">${esc(unit)}</text>`,
  );
  [...series].forEach(([, points], i) => {
    const d = points.map((p, j) => `${j ? 'L' : 'M'}${xOf(p.workers)},${yOf(p[key])}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${colors[i % 4]}" stroke-width="2"/>`);
    for (const p of points) {
      out.push(
        `<circle cx="${xOf(p.workers)}" cy="${yOf(p[key])}" r="3" fill="${colors[i % 4]}"/>`,
      );
    }
  });
  out.push('</g>');
  return out.join('\n');
}

const legend = [...series.keys()]
  .map(
    (name, i) =>
      `<rect x="${70 + i * 170}" y="${H + 8}" width="12" height="12" fill="${colors[i % 4]}"/>` +
      `<text x="${88 + i * 170}" y="${H + 18}">${esc(name)}</text>`,
  )
  .join('\n');
const m = result.machine ?? {};
const caption = `${m.cpuModel ?? 'unknown CPU'}, ${m.cores ?? '?'} cores, Node ${m.node ?? '?'}, commit ${m.git?.commit?.slice(0, 7) ?? '?'}${m.git?.dirty ? '+' : ''}; medians of ${result.options?.runs ?? '?'} runs; ${result.started ?? ''}`;
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${H + 50}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#fff"/>
${panel(0, 'Jobs per second (concurrent mode)', 'jobs', 'jobs/s')}
${panel(W, 'Publish → fulfil p99 (concurrent mode)', 'p99', 'ms')}
${legend}
<text x="${W}" y="${H + 40}" text-anchor="middle" fill="#555">${esc(caption)}</text>
</svg>
`;
writeFileSync(opts.out, svg);
console.log(`${opts.out} (from ${file})`);
