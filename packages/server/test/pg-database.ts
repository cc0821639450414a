/**
 * PostgreSQL for the process tests: a database of their own on the shared server
 * (BUS_TEST_DATABASE_URL, default the local cluster's `test`), and a private cluster the
 * test may stop and start (a real database restart that no other test sees). A database
 * that cannot be reached fails the test; it never skips.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export const PG_ADMIN_URL =
  process.env.BUS_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/**
 * Runs one statement on the server at `url` (by default the tests' database) and returns
 * its rows; a server that does not answer fails with what to do about it.
 */
export async function pgQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(
  sql: string,
  values: unknown[] = [],
  url = PG_ADMIN_URL,
): Promise<R[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(
      `PostgreSQL is not reachable at ${url} (${(err as Error).message}): start it ` +
        '(pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) or set ' +
        'BUS_TEST_DATABASE_URL',
      { cause: err },
    );
  }
  try {
    return (await client.query<R>(sql, values)).rows;
  } finally {
    await client.end();
  }
}

/** Runs one statement as the administrator of the server at `url`. */
export async function pgAdmin(sql: string, url = PG_ADMIN_URL): Promise<void> {
  await pgQuery(sql, [], url);
}

export interface TestDatabase {
  /** The database's URL (what BUS_DATABASE_URL gets). */
  url: string;
  drop(): Promise<void>;
}

/** A new, empty database on the server of `adminUrl`; drop() removes it. */
export async function createDatabase(
  prefix: string,
  adminUrl = PG_ADMIN_URL,
): Promise<TestDatabase> {
  const name = `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
  await pgAdmin(`CREATE DATABASE ${name}`, adminUrl);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => pgAdmin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`, adminUrl),
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Debian's PostgreSQL binaries (the newest installed version). */
function pgBin(tool: string): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', tool)))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (!versions[0]) throw new Error(`PostgreSQL's ${tool} is not installed under ${root}`);
  return join(root, versions[0], 'bin', tool);
}

/**
 * A throwaway PostgreSQL cluster on a free 127.0.0.1 port, in a temporary folder (trust
 * auth, no fsync: the tests restart the server, they do not cut the power). As root the
 * server runs as the `postgres` user, which PostgreSQL requires.
 */
export class PrivateCluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'intent-bus-pg-'));
  private readonly data = join(this.dir, 'data');
  port = 0;

  private run(tool: string, args: string[]): void {
    const asRoot = process.getuid?.() === 0;
    const [cmd, argv] = asRoot
      ? ['runuser', ['-u', 'postgres', '--', pgBin(tool), ...args]]
      : [pgBin(tool), args];
    execFileSync(cmd, argv, { stdio: 'pipe', timeout: 60_000 });
  }

  /** Creates the cluster and starts it. */
  async init(): Promise<void> {
    if (process.getuid?.() === 0) {
      const id = (flag: string): number =>
        Number(execFileSync('id', [flag, 'postgres']).toString().trim());
      chownSync(this.dir, id('-u'), id('-g'));
    }
    this.run('initdb', ['-D', this.data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
    this.port = await freePort();
    this.start();
  }

  /** The URL of a database of this cluster. */
  url(database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  start(): void {
    const options = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
    this.run('pg_ctl', [
      '-D',
      this.data,
      '-o',
      options,
      '-l',
      join(this.dir, 'log'),
      '-w',
      'start',
    ]);
  }

  /** Stops the server: `fast` disconnects every client; `immediate` is a crash. */
  stop(mode: 'fast' | 'immediate' = 'fast'): void {
    this.run('pg_ctl', ['-D', this.data, '-m', mode, '-w', 'stop']);
  }

  /** Stops the server if it runs and removes the folder. */
  destroy(): void {
    try {
      this.stop('immediate');
    } catch {
      // not running
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
