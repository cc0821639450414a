/**
 * The SQLite drivers of this Node, for the tests that run once per driver. node:sqlite is
 * built into Node 22.16+; better-sqlite3's addon loads only on the Node it was built for
 * (`npm ci` builds it for the Node that runs it; .ci/run rebuilds it for each Node before
 * the tests run there). node:sqlite of Node 22 is usable but not the default (it reads a
 * text holding a NUL character cut at it: sqlite-drivers.test.ts). A driver that
 * cannot be used here does not run silently: its suite is listed as skipped, with the
 * reason in its name, and `notRunBecause` says it once on standard error.
 */
import { describe } from 'vitest';
import {
  SQLITE_DRIVERS,
  driverUnavailable,
  openConnection,
  resolveDriver,
  type Connection,
  type SqliteDriver,
} from '../../src/store/sqlite/connection.js';

export interface DriverState {
  driver: SqliteDriver;
  /** Null when it can be used on this Node. */
  unavailable: string | null;
}

export const DRIVERS: DriverState[] = SQLITE_DRIVERS.map((driver) => ({
  driver,
  unavailable: driverUnavailable(driver),
}));

export const AVAILABLE: SqliteDriver[] = DRIVERS.filter((d) => d.unavailable === null).map(
  (d) => d.driver,
);

/** The driver `auto` picks on this Node, the bus's default; else why there is none. */
export const DEFAULT: { driver: SqliteDriver } | { none: string } = (() => {
  try {
    return { driver: resolveDriver('auto') };
  } catch (err) {
    return { none: (err as Error).message };
  }
})();
/** The default driver, or else any this Node can use (for a second connection to a file). */
export const DEFAULT_DRIVER: SqliteDriver =
  'driver' in DEFAULT ? DEFAULT.driver : (AVAILABLE[0] ?? 'better-sqlite3');

const told = new Set<string>();
/** Says once per file, on standard error, which driver does not run here and why. */
function notRunBecause(what: string, why: string): void {
  if (told.has(what)) return;
  told.add(what);
  process.stderr.write(`not run on Node ${process.versions.node}: ${what}: ${why}\n`);
}

/**
 * `suite(driver)` inside a describe per driver of this Node; for a driver that cannot be
 * used here, a skipped describe whose name says why.
 */
export function forEachDriver(title: string, suite: (driver: SqliteDriver) => void): void {
  for (const { driver, unavailable } of DRIVERS) {
    const name = `${title} (${driver})`;
    if (unavailable === null) {
      describe(name, () => suite(driver));
    } else {
      notRunBecause(name, unavailable);
      describe.skip(`${name}: not run on Node ${process.versions.node}: ${unavailable}`, () =>
        suite(driver));
    }
  }
}

/**
 * A describe that needs both drivers in this process (a file handed from one to the
 * other): skipped, saying why, where one of them cannot be used.
 */
export function withBothDrivers(title: string, suite: () => void): void {
  const missing = DRIVERS.filter((d) => d.unavailable !== null);
  if (missing.length === 0) {
    describe(title, suite);
    return;
  }
  const why = missing.map((d) => `${d.driver}: ${d.unavailable}`).join('; ');
  notRunBecause(title, `it needs both drivers in one process; ${why}`);
  describe.skip(`${title}: not run on Node ${process.versions.node}: ${why}`, suite);
}

/** A second connection to a store's file (the default driver unless one is named). */
export function openPeer(
  path: string,
  driver: SqliteDriver = DEFAULT_DRIVER,
  busyTimeoutMs = 5000,
): Connection {
  return openConnection(path, driver, { busyTimeoutMs });
}
