#!/usr/bin/env node
// Summarises a V8 .cpuprofile (from `npm run bench -- --cpu-prof`): self time by function
// and by package or source folder, and total (inclusive) time of the bus's own functions.
//   node bench/cpuprofile-top.mjs FILE.cpuprofile [--top N] [--window FROM_US,TO_US]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '25' }, window: { type: 'string' } },
});
if (positionals.length !== 1) {
  process.stderr.write(
    'usage: node bench/cpuprofile-top.mjs FILE.cpuprofile [--top N] [--window FROM_US,TO_US]\n',
  );
  process.exit(2);
}
const top = Number(values.top);
const profile = JSON.parse(readFileSync(positionals[0], 'utf8'));
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

// Sample counts → microseconds, with the real interval between samples.
// --window FROM,TO: only the samples in that span of the monotonic clock, in µs (a run's
// `monotonicUs` in the bench's JSON).
const [fromUs, toUs] = values.window ? values.window.split(',').map(Number) : [-Infinity, Infinity];
const selfUs = new Map();
let at = profile.startTime;
for (let i = 0; i < profile.samples.length; i++) {
  at += profile.timeDeltas[i];
  if (at < fromUs || at > toUs) continue;
  const dt = profile.timeDeltas[i + 1] ?? 0;
  selfUs.set(profile.samples[i], (selfUs.get(profile.samples[i]) ?? 0) + dt);
}
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);

const where = (cf) => {
  const url = cf.url ?? '';
  if (url === '') return cf.functionName.startsWith('(') ? cf.functionName : '(native)';
  const nm = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (nm) return nm[1];
  const src = url.match(/packages\/([^/]+)\/dist\/(.+)\.js$/);
  if (src) return `${src[1]}/${src[2]}`;
  if (url.startsWith('node:')) return url;
  return url.replace(/^file:\/\//, '');
};
const label = (cf) => `${cf.functionName || '(anonymous)'} ${where(cf)}:${cf.lineNumber + 1}`;

const byFunction = new Map();
const byPlace = new Map();
const inclusive = new Map();
for (const [id, us] of selfUs) {
  const cf = nodes.get(id).callFrame;
  byFunction.set(label(cf), (byFunction.get(label(cf)) ?? 0) + us);
  byPlace.set(where(cf), (byPlace.get(where(cf)) ?? 0) + us);
  // Inclusive time: once per distinct frame on the stack.
  const seen = new Set();
  for (let n = id; n !== undefined; n = parent.get(n)) {
    const l = label(nodes.get(n).callFrame);
    if (seen.has(l)) continue;
    seen.add(l);
    inclusive.set(l, (inclusive.get(l) ?? 0) + us);
  }
}

const show = (title, map, filter = () => true) => {
  process.stdout.write(`\n${title}\n`);
  const rows = [...map]
    .filter(([k]) => filter(k))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top);
  for (const [k, us] of rows) {
    process.stdout.write(`${((100 * us) / total).toFixed(1).padStart(6)}%  ${k}\n`);
  }
};
process.stdout.write(`${positionals[0]}: ${(total / 1e6).toFixed(2)} s sampled\n`);
show('self time by package or source file', byPlace);
show('self time by function', byFunction);
show('inclusive time, the bus and its direct libraries', inclusive, (k) =>
  /server\/|protocol\/|better-sqlite3|fastify|ajv|pino|prom-client/.test(k),
);
