#!/usr/bin/env node
// N jobs through the SQLite store, without HTTP, for an instruction count: a fresh file,
// migrate(), then N/100 event-loop turns each of 100 publishes, then 100 claims, then 100
// fulfils, each turn's calls awaited together (one group commit per turn, as the bus makes
// them). Run it under valgrind's callgrind at two sizes and divide the difference by the
// difference of the sizes, which cancels the start-up (see bench/README.md):
//   valgrind --tool=callgrind --callgrind-out-file=F node bench/store-jobs.mjs 1000
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from './lib/procs.mjs';
import { storeRows } from './lib/store-rows.mjs';

const jobs = Number(process.argv[2] ?? '1000');
const driver = process.argv[3] ?? 'better-sqlite3';
if (!Number.isInteger(jobs) || jobs <= 0 || jobs % 100 !== 0) {
  process.stderr.write(
    'Usage: node bench/store-jobs.mjs JOBS [driver]   (JOBS: a multiple of 100)\n',
  );
  process.exit(2);
}

const dist = (rel) => pathToFileURL(join(ROOT, 'packages/server/dist', rel)).href;
const { SqliteStore } = await import(dist('store/sqlite/sqlite-store.js'));

const dir = mkdtempSync(join(tmpdir(), 'intent-bus-store-jobs-'));
const store = new SqliteStore({ path: join(dir, 'bus.db'), driver });
const { newIntent, claimReq, fulfilRef } = storeRows('{"n":1}');

let fulfilled = 0;
try {
  await store.migrate();
  for (let i = 0; i < jobs; i += 100) {
    const intents = Array.from({ length: 100 }, newIntent);
    await Promise.all(intents.map((it) => store.intentPublish(it, null, null)));
    const claimed = await Promise.all(intents.map(() => store.intentClaim(claimReq())));
    const outcomes = await Promise.all(
      claimed.map((c) => store.intentFulfill(fulfilRef(c), '"done"', 'json')),
    );
    fulfilled += outcomes.filter((row) => row?.status === 'fulfilled').length;
  }
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(`${fulfilled} jobs published, claimed and fulfilled (${driver})\n`);
