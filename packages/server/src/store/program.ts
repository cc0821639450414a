/**
 * A store operation as a program: a generator that yields the statements it runs, one step
 * at a time, and is handed back each step's answer. Operations are written once, over these
 * steps (bus-store.ts); each backend has a runner that drives them: SQLite synchronously,
 * inside the event-loop turn's group commit; PostgreSQL asynchronously, on its pool or in
 * one pooled transaction. What a step means on each backend:
 *
 *   get   the first row, or null          all   every row
 *   run   the number of rows it changed   lock  a lock held until the operation ends
 *                                               (PostgreSQL: pg_advisory_xact_lock; SQLite,
 *                                               one writer at a time: nothing)
 *
 * Operations use the wrappers below with `yield*`, which give each answer its type from
 * statements.ts.
 */
import type { Params, ReadName, Row, StatementName } from './statements.js';

/** What a `lock` step serialises: the same name and key wait for one another. */
export type LockName = 'idempotency' | 'quota' | 'schedule' | 'flow';

export type Step =
  | { op: 'get' | 'all' | 'run'; name: StatementName; params: object }
  | { op: 'lock'; lock: LockName; key: string };

export type Program<T> = Generator<Step, T, unknown>;

/** The first row of a statement, or null when it returns none. */
export function* get<N extends ReadName>(name: N, params: Params<N>): Program<Row<N> | null> {
  // The runner answers a `get` with the row the statement named returns.
  return ((yield { op: 'get', name, params }) as Row<N> | undefined) ?? null;
}

/** The row of a statement that always returns one (an aggregate). */
export function* one<N extends ReadName>(name: N, params: Params<N>): Program<Row<N>> {
  const row = yield* get(name, params);
  if (row === null) throw new Error(`statement ${name} returned no row`);
  return row;
}

export function* all<N extends ReadName>(name: N, params: Params<N>): Program<Row<N>[]> {
  return (yield { op: 'all', name, params }) as Row<N>[];
}

/** Runs a statement; the number of rows it inserted, changed or deleted. */
export function* run<N extends StatementName>(name: N, params: Params<N>): Program<number> {
  return (yield { op: 'run', name, params }) as number;
}

/** Holds `lock` for `key` until the end of the operation (an `atomic` one). */
export function* lock(name: LockName, key: string): Program<void> {
  yield { op: 'lock', lock: name, key };
}

/** Drives a program synchronously: `exec` answers each step. */
export function drive<T>(p: Program<T>, exec: (step: Step) => unknown): T {
  let r = p.next();
  while (!r.done) r = p.next(exec(r.value));
  return r.value;
}

/** Drives a program whose steps are answered asynchronously, one after the other. */
export async function driveAsync<T>(
  p: Program<T>,
  exec: (step: Step) => Promise<unknown>,
): Promise<T> {
  let r = p.next();
  while (!r.done) r = p.next(await exec(r.value));
  return r.value;
}

/**
 * What a backend provides to run the store's operations. Three ways to run a program:
 * - `read`: its statements only read;
 * - `write`: each statement is atomic on its own and they need nothing more (one
 *   statement, or a write and a read of what it left): no transaction around them;
 * - `atomic`: all or nothing, its locks held to the end (SQLite: a savepoint; PostgreSQL:
 *   one transaction on one pooled connection).
 * On SQLite every write (and every read made while one is pending) joins the turn's group
 * commit and settles once it is committed; a failed COMMIT fails them all.
 */
export interface Runner {
  readonly kind: 'sqlite' | 'postgres';
  /**
   * True when other processes write the same tables (several nodes of one PostgreSQL
   * bus): what a store keeps in memory about them must be read again now and then.
   */
  readonly sharedByNodes: boolean;
  read<T>(p: Program<T>): Promise<T>;
  write<T>(p: Program<T>): Promise<T>;
  atomic<T>(p: Program<T>): Promise<T>;
  migrate(): Promise<void>;
  close(): Promise<void>;
  exclusive<T>(name: string, wait: boolean, task: () => Promise<T>): Promise<T | null>;
}
