/**
 * Whether the store can write: what `/health` answers (PROTOCOL.md §5, 503 while the store
 * is unusable), the same for every backend.
 *
 * Every store call of the bus goes through `watch()`, which reports each
 * `StoreUnavailableError` here, whoever made the call (a request, a housekeeping pass, a
 * long poll's due-time load). From the first one the store is degraded: one warn line says
 * so, and the state lasts until a real write succeeds. `/health` makes that write (the
 * probe) while degraded, and so does a timer every second, so that recovery is noticed and
 * logged without traffic. Neither a read nor any successful call can tell: a read-only or
 * full disk still reads, a foreign write lock does not block readers (WAL), and a claim that
 * finds nothing or an empty lease sweep commits an empty transaction, which succeeds on a
 * full disk. A probe that succeeds while other calls still fail does not count either (a
 * full disk lets writes through whenever SQLite finds room in its WAL): after a successful
 * probe the store recovers once QUIET_MS have passed without a failure, waited for if
 * needed (so `/health` may take that long to answer 200), and stays degraded if one comes.
 * While healthy, `/health` only pings (a read), as before.
 */
import type { Log } from '../core/log.js';
import { performance } from 'node:perf_hooks';
import type { Clock } from '../core/clock.js';
import { StoreUnavailableError, type Store } from './store.js';

/** What the tracker logs with (pino's logger, or a test's). */

/**
 * The probe writes one KV row: an owner that no API key has (key ids are `main` and
 * `kid_…`), expired when written so that no read returns it, removed by the cleanup pass.
 * Its value changes at every probe: SQLite skips writing a row whose bytes are unchanged,
 * and an unchanged row would "succeed" on a full disk.
 */
export const PROBE_OWNER = 'bus:health';
export const PROBE_NAME = 'probe';
const PROBE_INTERVAL_MS = 1000;
const QUIET_MS = 500;

/** The fixed reason `/health` gives: the store's own message is for the logs only. */
export const DEGRADED_REASON = 'store unavailable';

export interface StoreHealthOptions {
  store: Store;
  clock: Clock;
  log: Log;
  /** How often a degraded store is probed without being asked (ms). */
  probeIntervalMs?: number;
  /** How long without a failure a successful probe needs to end the degraded state (ms). */
  quietMs?: number;
}

export class StoreHealth {
  /** performance.now() when the store became degraded, or null while it is healthy. */
  private since: number | null = null;
  /** performance.now() of the last failure that counted. */
  private lastFailure = -Infinity;
  private failures = 0;
  /** Counts recoveries: a failure of a call made before the last recovery is old news. */
  private epoch = 0;
  private probing: Promise<boolean> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private seq = 0;
  private stopped = false;

  constructor(private readonly o: StoreHealthOptions) {}

  get degraded(): boolean {
    return this.since !== null;
  }

  /**
   * The store as the bus uses it: the same object, each method's failure reported here.
   * Costs one promise reaction per call.
   */
  watch(): Store {
    const wrapped = new Map<PropertyKey, unknown>();
    return new Proxy(this.o.store, {
      get: (target, prop) => {
        const value: unknown = Reflect.get(target, prop, target);
        if (typeof value !== 'function') return value;
        let fn = wrapped.get(prop);
        if (fn === undefined) {
          const method = value as (...args: unknown[]) => unknown;
          fn = (...args: unknown[]): unknown => {
            const epoch = this.epoch;
            const out = method.apply(target, args);
            if (out instanceof Promise) out.catch((err: unknown) => this.failed(err, epoch));
            return out;
          };
          wrapped.set(prop, fn);
        }
        return fn;
      },
    });
  }

  /** Records a failed store call (made during `epoch`); only store trouble counts. */
  failed(err: unknown, epoch = this.epoch): void {
    if (!(err instanceof StoreUnavailableError) || epoch !== this.epoch || this.stopped) return;
    this.failures++;
    this.lastFailure = performance.now();
    if (this.since !== null) return;
    this.since = this.lastFailure;
    this.o.log.warn(
      { store: this.o.store.kind, cause: err.message },
      'store degraded: writes fail; /health answers 503 until a write succeeds',
    );
    this.timer = setInterval(() => void this.probe(), this.o.probeIntervalMs ?? PROBE_INTERVAL_MS);
    this.timer.unref();
  }

  /**
   * For `/health`: whether the store is usable now. Healthy: a read answers. Degraded: a
   * write succeeds (which ends the degraded state).
   */
  async usable(): Promise<boolean> {
    if (this.since !== null) return this.probe();
    try {
      await this.o.store.ping();
      return true;
    } catch (err) {
      this.failed(err);
      if (!(err instanceof StoreUnavailableError)) {
        this.o.log.warn({ cause: (err as Error).message }, 'health check failed');
      }
      return false;
    }
  }

  /** One probe at a time; a caller during a probe gets its answer. */
  private probe(): Promise<boolean> {
    this.probing ??= this.write().finally(() => (this.probing = null));
    return this.probing;
  }

  private async write(): Promise<boolean> {
    const epoch = this.epoch;
    const now = this.o.clock.now();
    try {
      await this.o.store.kvSet(PROBE_OWNER, PROBE_NAME, `"${now}-${++this.seq}"`, now);
    } catch (err) {
      this.failed(err, epoch);
      return false;
    }
    // The write went through; other calls must have stopped failing too.
    const last = this.lastFailure;
    const wait = last + (this.o.quietMs ?? QUIET_MS) - performance.now();
    if (wait > 0) {
      await new Promise((resolve) => setTimeout(resolve, Math.ceil(wait)));
      if (this.lastFailure !== last) return false;
    }
    this.recovered();
    return true;
  }

  private recovered(): void {
    if (this.since === null || this.stopped) return;
    const degradedMs = Math.round(performance.now() - this.since);
    this.o.log.info(
      { store: this.o.store.kind, degraded_ms: degradedMs, failures: this.failures },
      'store recovered: a write succeeded',
    );
    this.since = null;
    this.failures = 0;
    this.epoch++;
    this.clearTimer();
  }

  private clearTimer(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Stops probing (the bus is closing its store). */
  stop(): void {
    this.stopped = true;
    this.clearTimer();
  }
}
