#!/usr/bin/env node
// The SQLite store alone, without HTTP: what each call costs on each SQLite driver this Node
// can load (node:sqlite, better-sqlite3), in this process, on a fresh file per driver. The
// calls go as the bus makes them: `--batch` calls in one event-loop turn (one group commit),
// then the next turn. Each operation is timed over `--calls` calls, `--rounds` times per
// driver, the drivers taking turns; the best round is quoted (the least disturbed by the
// machine's noise), with the median beside it. See bench/README.md.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ROOT, allowedCpus, hasTaskset, pinSelf } from './lib/procs.mjs';
import { storeRows } from './lib/store-rows.mjs';

const USAGE = `Usage: node bench/store-cost.mjs [options]   (npm run bench:store -- [options])

  --drivers LIST   node,better-sqlite3 (default: every driver this Node can load)
  --calls N        calls per operation and round (default 10000)
  --batch N        calls per event-loop turn, as concurrent requests make them (default 16)
  --rounds N       rounds per driver, the drivers taking turns (default 5)
  --no-pin         do not pin this process to one CPU (default: the first allowed)
  --help
`;

const { values } = parseArgs({
  options: {
    drivers: { type: 'string' },
    calls: { type: 'string', default: '10000' },
    batch: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '5' },
    'no-pin': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const calls = Number(values.calls);
const batch = Number(values.batch);
const rounds = Number(values.rounds);

const dist = (rel) => pathToFileURL(join(ROOT, 'packages/server/dist', rel)).href;
const { SQLITE_DRIVERS, driverUnavailable } = await import(dist('store/sqlite/connection.js'));
const { SqliteStore } = await import(dist('store/sqlite/sqlite-store.js'));

const wanted = values.drivers ? values.drivers.split(',') : SQLITE_DRIVERS;
const drivers = [];
for (const d of wanted) {
  const why = driverUnavailable(d);
  if (why === null) drivers.push(d);
  else process.stderr.write(`${d}: not measured: ${why}\n`);
}
if (drivers.length === 0) throw new Error('no SQLite driver to measure');
if (!values['no-pin'] && hasTaskset()) pinSelf(allowedCpus()[0]);

const { newIntent, claimReq, fulfilRef } = storeRows(
  '{"n":1,"text":"a payload of a few dozen bytes, as jobs have"}',
);

/** `calls` calls of `op(i)`, `batch` per turn; microseconds per call. */
async function timed(op) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < calls; i += batch) {
    const turn = [];
    for (let j = i; j < Math.min(i + batch, calls); j++) turn.push(op(j));
    await Promise.all(turn);
  }
  return Number(process.hrtime.bigint() - start) / 1000 / calls;
}

/** One round on one store: publish, read, claim, fulfil, claim with nothing left, ping. */
async function round(store) {
  const out = {};
  const intents = Array.from({ length: calls }, newIntent);
  out.publish = await timed((i) => store.intentPublish(intents[i], null, null));
  out.get = await timed((i) => store.intentGet(intents[i].id));
  const claimed = new Array(calls);
  out['claim (a job)'] = await timed(
    async (i) => (claimed[i] = await store.intentClaim(claimReq())),
  );
  out.fulfil = await timed((i) => {
    const c = claimed[i];
    return store.intentFulfill(fulfilRef(c), '"done"', 'json');
  });
  out['claim (none)'] = await timed(() => store.intentClaim(claimReq()));
  out.ping = await timed(() => store.ping());
  await store.intentsPurge(null);
  return out;
}

const dirs = [];
const stores = {};
for (const driver of drivers) {
  const dir = mkdtempSync(join(tmpdir(), 'intent-bus-store-cost-'));
  dirs.push(dir);
  stores[driver] = new SqliteStore({ path: join(dir, 'bus.db'), driver });
  await stores[driver].migrate();
}
const results = Object.fromEntries(drivers.map((d) => [d, []]));
try {
  // A warm-up round each (the JIT), then the rounds, the drivers taking turns.
  for (const d of drivers) await round(stores[d]);
  for (let r = 0; r < rounds; r++) for (const d of drivers) results[d].push(await round(stores[d]));
} finally {
  for (const d of drivers) await stores[d].close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}

const ops = Object.keys(results[drivers[0]][0]);
const best = (xs) => Math.min(...xs);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const name = (d) => (d === 'node' ? 'node:sqlite' : d);
const cols = drivers.flatMap((d) => [`${name(d)} best`, 'median']);
if (drivers.length === 2) cols.push(`${name(drivers[0])} ÷ ${name(drivers[1])}`);
const rows = ops.map((op) => {
  const cells = drivers.flatMap((d) => {
    const xs = results[d].map((r) => r[op]);
    return [best(xs).toFixed(2), median(xs).toFixed(2)];
  });
  if (drivers.length === 2) {
    const [a, b] = drivers.map((d) => best(results[d].map((r) => r[op])));
    cells.push((a / b).toFixed(2));
  }
  return [op, ...cells];
});
const widths = ['operation', ...cols].map((c, i) =>
  Math.max(c.length, ...rows.map((r) => r[i].length)),
);
const line = (cells) =>
  cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
process.stdout.write(
  `SQLite store, µs per call (${calls} calls per operation, ${batch} per turn, best and median of ${rounds} rounds), ` +
    `node ${process.version}\n${line(['operation', ...cols])}\n${rows.map(line).join('\n')}\n`,
);
