/**
 * `intent-bus export` and `intent-bus import`: the store commands. Unlike the client
 * commands they do not talk to a bus over HTTP; they open the store `serve` would open
 * (BUS_DB_PATH, or BUS_DATABASE_URL and BUS_DATABASE_SCHEMA, read through the server's
 * configuration) and read or write its rows. The file format and every decision about
 * what crosses are in packages/server/src/store/transfer/ (format.ts, transfer.ts).
 *
 * Exit codes: 0 done; 1 an error (no database to export, an unreachable database, a bad or
 * truncated file, a record the target already holds: nothing was imported); 2 usage or bad
 * configuration.
 */
import type { Readable } from 'node:stream';
import { open } from 'node:fs/promises';
import type * as ServerModule from '@intent-bus/server';
import type { Command, Context } from './commands.js';
import { UsageError } from './output.js';
import { loadServer } from './server-package.js';

type Server = typeof ServerModule;

const STORE_OPTIONS = {
  db: { type: 'string' },
  'database-url': { type: 'string' },
  'database-schema': { type: 'string' },
} as const;

const STORE_HELP = `The store is the one \`intent-bus serve\` would use, from the same environment:
BUS_DB_PATH (SQLite, default ./intent-bus-data/bus.db), or BUS_DATABASE_URL (PostgreSQL)
with BUS_DATABASE_SCHEMA. These flags win over the environment:
  --db PATH              the SQLite file (BUS_DB_PATH)
  --database-url URL     PostgreSQL (BUS_DATABASE_URL)
  --database-schema S    its schema (BUS_DATABASE_SCHEMA)
  -h, --help             this help`;

/** Loads the server package (only these commands need it) and resolves the configuration. */
async function configure(
  ctx: Context,
): Promise<{ server: Server; config: ReturnType<Server['resolveConfig']> }> {
  const server = await loadServer();
  const flags: Record<string, string> = {};
  for (const name of Object.keys(STORE_OPTIONS)) {
    const v = ctx.values[name];
    if (typeof v === 'string') flags[name] = v;
  }
  try {
    return { server, config: server.resolveConfig(process.env, flags) };
  } catch (err) {
    if (err instanceof server.ConfigError) throw new UsageError(err.message);
    throw err;
  }
}

const NOUNS: Record<string, [string, string]> = {
  key: ['key', 'keys'],
  intent: ['intent', 'intents'],
  idempotency: ['idempotency record', 'idempotency records'],
  kv: ['KV entry', 'KV entries'],
  nonce: ['nonce', 'nonces'],
  schedule: ['schedule', 'schedules'],
  run_failure: ['run failure', 'run failures'],
  worker: ['worker', 'workers'],
  flow: ['flow control', 'flow controls'],
  flow_claim: ['rate window claim', 'rate window claims'],
};

/** "2 keys, 1 intent, 0 idempotency records, 3 KV entries, 0 nonces, 1 schedule and 0 run failures" */
function describeCounts(counts: Record<string, number>): string {
  const parts = Object.entries(counts).map(([t, n]) => `${n} ${NOUNS[t]?.[n === 1 ? 0 : 1] ?? t}`);
  return parts.length > 1 ? `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}` : parts[0]!;
}

export const exportCommand: Command = {
  name: 'export',
  summary: "write the store's intents, dead letters, keys and KV entries to stdout (JSON lines)",
  usage: `intent-bus export [--namespace NS] [--db PATH | --database-url URL] > FILE

Writes every intent (dead letters included), API key (its hash, as stored), KV entry,
idempotency record and signature nonce of the store as JSON lines: a header line, one line
per record, and a trailer line with the counts. Read from one consistent snapshot; a bus
may keep running, but stop it first when moving to another store.

  -n, --namespace NS     only this namespace's intents and the idempotency records of their
                         publishes (keys, KV entries and nonces are left out)

${STORE_HELP}`,
  options: { namespace: { type: 'string', short: 'n' }, ...STORE_OPTIONS },
  async run(ctx) {
    if (ctx.positionals.length > 0) {
      throw new UsageError(`unexpected argument "${ctx.positionals[0]}"`);
    }
    const namespace = ctx.values.namespace as string | undefined;
    if (namespace !== undefined && namespace.trim() === '') {
      throw new UsageError('--namespace must not be empty');
    }
    if (process.stdout.isTTY) {
      throw new UsageError('export writes JSON lines to stdout: redirect it, e.g. > bus.jsonl');
    }
    const { server, config } = await configure(ctx);
    const backend = await server.openTransfer(config, 'export');
    try {
      const counts = await server.writeExport(backend, process.stdout, {
        namespace: namespace ?? null,
      });
      const scope = namespace === undefined ? '' : ` (namespace ${namespace})`;
      ctx.out.note(`exported ${describeCounts(counts)}${scope} from ${server.storeName(config)}`);
    } finally {
      await backend.close();
    }
  },
};

export const importCommand: Command = {
  name: 'import',
  summary: 'write the records of an export file into the store (all of them or nothing)',
  usage: `intent-bus import FILE [--json] [--db PATH | --database-url URL]

Reads a file written by \`intent-bus export\` (FILE "-" reads stdin) into the store, after
preparing it as serve does. Every line is checked, and everything is written in one
transaction, committed only once the trailer line has matched: a bad line, a truncated
file, or a record the store already holds (an intent id, a key id or hash, a KV name, …)
stops the import with exit 1 and nothing written. Import into a stopped bus.

  --json                 print the counts as JSON

${STORE_HELP}`,
  options: { json: { type: 'boolean' }, ...STORE_OPTIONS },
  async run(ctx) {
    if (ctx.positionals.length !== 1) throw new UsageError('expected FILE (or - for stdin)');
    const file = ctx.positionals[0]!;
    const { server, config } = await configure(ctx);
    // The file first: a missing file must not create an empty database.
    let input: Readable;
    if (file === '-') input = process.stdin;
    else {
      try {
        input = (await open(file, 'r')).createReadStream({ encoding: 'utf8' });
      } catch (err) {
        throw new Error(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
      }
    }
    try {
      const backend = await server.openTransfer(config, 'import');
      try {
        const s = await server.runImport(backend, input);
        const skipped =
          s.identical > 0
            ? ` (${s.identical} idempotency records already there, identical, left as they were)`
            : '';
        ctx.out.result(
          { imported: s.imported, identical: s.identical, store: backend.kind },
          () => `imported ${describeCounts(s.imported)} into ${server.storeName(config)}${skipped}`,
        );
      } catch (err) {
        // One transaction: whatever went wrong, it was rolled back.
        throw new Error(`${(err as Error).message}; nothing was imported`, { cause: err });
      } finally {
        await backend.close();
      }
    } finally {
      input.destroy();
    }
  },
};
