/**
 * Work the bus does on timers, never on request traffic: the lease sweeper (every second,
 * through the lease-expiry index) and the slower cleanup pass (TTL expiry to dead,
 * retention, expired KV and idempotency rows, key usage). `/admin/cleanup` runs both now.
 * When several nodes share one PostgreSQL database, one node at a time runs the passes
 * over the store (Store.exclusive); each node still saves its own key usage counts.
 */
import type { CleanupCounts } from '@intent-bus/protocol';
import { LIMITS } from '@intent-bus/protocol';
import type { Log } from '../core/log.js';
import type { Clock, Random } from '../core/clock.js';
import type { KeyUsage, Store } from '../store/store.js';
import type { BusEvents } from '../events.js';
import type { SlidingWindowLimiter } from '../core/rate-limit.js';
import { RunWatch, tickSchedules } from '../ops/schedules.js';
import { COMMAND_RECHECK_MS, type WorkerRegistry } from '../ops/workers.js';

const BATCH = 500;

/** Lets waiting requests run between two batches of a long pass. */
const yieldToRequests = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const SWEEP_INTERVAL_MS = 1000;

export interface HousekeeperOptions {
  store: Store;
  events: BusEvents;
  clock: Clock;
  random: Random;
  /** Key usage counted since the last call (see Authenticator.takeUsage). */
  takeUsage: () => ReadonlyMap<string, KeyUsage>;
  limiter: SlidingWindowLimiter;
  log: Log;
  cleanupIntervalSeconds: number;
  retentionSeconds: number;
  /** A tester key's quota of open and claimed intents, which its schedules' runs count in. */
  maxOpenPerKey: number;
  /** The workers seen (ops/workers.ts): written in batches, commands read again. */
  workers: WorkerRegistry;
  /** A worker not seen for this long is forgotten. */
  workerRetentionSeconds: number;
}

export class Housekeeper {
  private timers: NodeJS.Timeout[] = [];
  private running: Promise<unknown> = Promise.resolve();
  /** The schedule ticker: its next timer, and the pass in progress. */
  private ticker: NodeJS.Timeout | null = null;
  private ticking: Promise<unknown> = Promise.resolve();
  private stopped = false;
  /** The deadline and failed-run pass that follows each tick (ops/schedules.ts). */
  private readonly runWatch: RunWatch;

  constructor(private readonly o: HousekeeperOptions) {
    this.runWatch = new RunWatch(o.retentionSeconds);
  }

  start(): void {
    const every = (ms: number, task: () => Promise<unknown>, name: string): void => {
      let busy = false;
      const t = setInterval(() => {
        if (busy) return; // the last pass is still running (a slow store): skip this tick
        busy = true;
        this.serial(task)
          .catch((err: unknown) => this.o.log.warn({ err, task: name }, 'housekeeping failed'))
          .finally(() => (busy = false));
      }, ms);
      t.unref();
      this.timers.push(t);
    };
    // Several nodes on one database: whichever holds the lock does the pass, the others
    // skip it (a node that dies mid-pass releases the lock with its connection).
    every(SWEEP_INTERVAL_MS, () => this.exclusive(false, () => this.sweepLeases()), 'lease sweep');
    every(this.o.cleanupIntervalSeconds * 1000, () => this.cleanupPass(false), 'cleanup');
    // The worker registry: its own timers, outside the serial passes, so that a long
    // cleanup never holds back a worker's sightings or a command to it.
    const { workers } = this.o;
    this.alongside(workers.flushIntervalMs, () => workers.flush(this.o.clock.now()), 'workers');
    if (workers.sharedByNodes) {
      this.alongside(COMMAND_RECHECK_MS, () => workers.refreshCommands(), 'worker commands');
    }
    this.stopped = false;
    this.nextTick();
  }

  /** A periodic task of its own: a tick is skipped while the last one runs. */
  private alongside(ms: number, task: () => Promise<unknown>, name: string): void {
    let busy = false;
    const t = setInterval(() => {
      if (busy) return;
      busy = true;
      task()
        .catch((err: unknown) => this.o.log.warn({ err, task: name }, 'housekeeping failed'))
        .finally(() => (busy = false));
    }, ms);
    t.unref();
    this.timers.push(t);
  }

  /**
   * The schedule ticker: every second, just after the second begins (cron and `every`
   * ticks fall on whole seconds), so that a run is published within a few milliseconds of
   * its tick on an idle bus. Its own lock, not the housekeeping one, so that a long cleanup
   * pass never holds ticks back; one node at a time publishes, the others skip the pass.
   */
  private nextTick(): void {
    if (this.stopped) return;
    const t = setTimeout(
      () => {
        this.ticking = this.o.store
          .exclusive('schedules', false, async () => {
            await tickSchedules({ ...this.o, maxOpenPerKey: this.o.maxOpenPerKey });
            // Then the runs' deadlines and deaths, after the ticks that published runs.
            await this.runWatch.pass(this.o);
          })
          .catch((err: unknown) =>
            this.o.log.warn({ err, task: 'schedules' }, 'housekeeping failed'),
          )
          .finally(() => this.nextTick());
      },
      SWEEP_INTERVAL_MS - (Date.now() % SWEEP_INTERVAL_MS) + 5,
    );
    t.unref();
    this.ticker = t;
  }

  /** Stops the timers, waits for the pass in progress and keeps the last usage counts. */
  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.stopped = true;
    if (this.ticker) clearTimeout(this.ticker);
    await this.ticking;
    await this.flushUsage().catch(() => undefined);
    await this.o.workers.flush(this.o.clock.now()).catch(() => undefined);
  }

  /** One pass at a time (admin cleanup waits for a timer's pass and the other way round). */
  private serial<T>(task: () => Promise<T>): Promise<T> {
    const next = this.running.catch(() => undefined).then(task);
    this.running = next;
    return next;
  }

  /** Expired leases back to open (with backoff) or dead; wakes whoever waits for them. */
  private async sweepLeases(): Promise<{ requeued: number; dead: number }> {
    let requeued = 0;
    let dead = 0;
    for (;;) {
      const rows = await this.o.store.leasesSweep(this.o.clock.now(), this.o.random, BATCH);
      for (const row of rows) {
        if (row.status === 'open') requeued++;
        else dead++;
        this.o.events.failed(row);
      }
      if (rows.length < BATCH) return { requeued, dead };
      await yieldToRequests();
    }
  }

  private async expireOpen(): Promise<number> {
    let n = 0;
    for (;;) {
      const rows = await this.o.store.intentsExpire(this.o.clock.now(), BATCH);
      for (const row of rows) this.o.events.changed(row, 'expired');
      n += rows.length;
      if (rows.length < BATCH) return n;
      await yieldToRequests();
    }
  }

  /** The store-wide passes, by one node at a time (see start). */
  private exclusive<T>(wait: boolean, task: () => Promise<T>): Promise<T | null> {
    return this.o.store.exclusive('housekeeping', wait, task);
  }

  /**
   * The cleanup pass; the parts kept per node (usage counts, rate-limit windows) always
   * run, the store-wide ones only with the lock (`wait`: for it, else skip them).
   */
  private async cleanupPass(wait: boolean): Promise<CleanupCounts> {
    const { store, clock } = this.o;
    const shared = await this.exclusive(wait, async () => {
      const leases = await this.sweepLeases();
      const expired = await this.expireOpen();
      const now = clock.now();
      return {
        leases,
        expired,
        finished: await store.intentsDeleteFinished(now - this.o.retentionSeconds * 1000),
        kv: await store.kvDeleteExpired(now),
        idem: await store.idempotencyDeleteBefore(now - LIMITS.idempotencyWindowSeconds * 1000),
        nonces: await store.noncesDeleteExpired(now),
        // A run's failure outlives the run by the retention time, then goes.
        failures: await store.runFailuresDelete(now - this.o.retentionSeconds * 1000),
        workers: await store.workersDeleteSeenBefore(now - this.o.workerRetentionSeconds * 1000),
      };
    });
    await store.keyUsageAdd(this.o.takeUsage());
    const finished = shared?.finished ?? { fulfilled: 0, dead: 0 };
    return {
      expired_open_deleted: shared?.expired ?? 0,
      expired_claims_requeued: shared?.leases.requeued ?? 0,
      expired_claims_dead: shared?.leases.dead ?? 0,
      fulfilled_deleted: finished.fulfilled,
      dead_deleted: finished.dead,
      // A dead letter is the dead intent itself (its reason is kept on the row).
      dead_letters_deleted: finished.dead,
      store_deleted: shared?.kv ?? 0,
      rate_limits_deleted: this.o.limiter.prune(clock.now()),
      idempotency_deleted: shared?.idem ?? 0,
      nonces_deleted: shared?.nonces ?? 0,
    };
  }

  /** Every pass, now (admin cleanup); waits for another node's pass to end. */
  runCleanup(): Promise<CleanupCounts> {
    return this.serial(() => this.cleanupPass(true));
  }

  /** Flushes key usage counters (also done by each cleanup pass). */
  flushUsage(): Promise<void> {
    return this.serial(() => this.o.store.keyUsageAdd(this.o.takeUsage()));
  }
}
