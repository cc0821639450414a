// Preloaded (`node --import`) into a bus node by `bench/run.mjs --count-statements`: counts
// every statement the node sends PostgreSQL (each `query` of a pg client is one round trip:
// the store's pool, the wake relay's connection), by the name of its statement in
// store/postgres/queries.ts where it is one, by its first words otherwise (BEGIN, COMMIT,
// the relay's pg_notify), and writes the counts to $BENCH_PG_COUNT_FILE (JSON) when the
// node exits. Nothing of the bus is changed but the count.
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const file = process.env.BENCH_PG_COUNT_FILE;
if (file) {
  const root = join(import.meta.dirname, '../..');
  const pg = createRequire(join(root, 'packages/server/package.json'))('pg');
  const dist = (p) => pathToFileURL(join(root, 'packages/server/dist', p)).href;
  const queries = await import(dist('store/postgres/queries.js'));
  const { positional } = await import(dist('store/postgres/pg-store.js'));
  const names = new Map();
  for (const [name, sql] of Object.entries(queries)) {
    if (typeof sql === 'string') names.set(positional(sql).text, name);
  }
  const counts = {};
  const label = (text) => {
    if (typeof text !== 'string') return '?';
    const known = names.get(text);
    if (known) return known;
    const head = text
      .trim()
      .split(/[\s(]+/, 2)
      .join(' ');
    return head.startsWith('SELECT pg_notify') ? 'pg_notify' : head;
  };
  const query = pg.Client.prototype.query;
  pg.Client.prototype.query = function (config, ...rest) {
    const key = label(typeof config === 'string' ? config : config?.text);
    counts[key] = (counts[key] ?? 0) + 1;
    return query.call(this, config, ...rest);
  };
  process.on('exit', () => writeFileSync(file, `${JSON.stringify(counts)}\n`));
}
