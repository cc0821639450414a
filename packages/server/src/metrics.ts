/**
 * Prometheus metrics (PROTOCOL.md §7, PRODUCT.md "Observability") with prom-client: the
 * 2.1 gauges read from the store at scrape time, counters of what happened by namespace
 * and goal (label sets bounded), latency histograms, HTTP durations and process metrics.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { StatusCount, Store } from './store/store.js';

/** Distinct (namespace, goal) pairs, and namespaces, kept as labels; later ones count as "_other". */
const MAX_LABEL_PAIRS = 500;
const OTHER = '_other';

/** What the schedule counters count: runs published, runs dead, runs missed, alerts. */
export type ScheduleEvent = 'published' | 'failed' | 'missed' | 'alerted' | 'skipped';

/** What the fleet gauges read (ops/workers.ts's registry provides it). */
export interface FleetSource {
  /** Every worker with its status, the namespaces it asked for and what it holds. */
  online(): Promise<
    Array<{
      status: 'online' | 'busy' | 'offline';
      asks: ReadonlyArray<readonly [string, ...unknown[]]>;
      holds: ReadonlyArray<{ namespace: string }>;
    }>
  >;
  /** The registry's store writes so far. */
  writes(): { flushes: number; rows: number };
}

export class BusMetrics {
  readonly registry = new Registry();
  private readonly pairs = new Set<string>();
  private readonly counters: Record<
    'published' | 'claimed' | 'fulfilled' | 'failed' | 'dead',
    Counter<'namespace' | 'goal'>
  >;
  private readonly schedules: Record<ScheduleEvent, Counter<'owner' | 'schedule'>>;
  /** Distinct (owner, schedule) pairs kept as labels; later ones count as "_other". */
  private readonly schedulePairs = new Set<string>();
  private readonly latency: Histogram<'namespace'>;
  private readonly claimWait: Histogram<'namespace'>;
  private readonly http: Histogram<'method' | 'route' | 'status'>;
  private readonly held: Counter<'namespace' | 'goal' | 'control'>;

  /** Intents by namespace and status, counted at the start of each scrape. */
  private counts: StatusCount[] = [];

  constructor(
    private readonly store: Store,
    /** Requests held open on this node (long-poll claims and result waits). */
    waiting: () => number = () => 0,
    fleet: FleetSource | null = null,
    /** Event streams open on this node (GET /events [ext], issue 20). */
    streams: () => number = () => 0,
  ) {
    const registry = this.registry;
    collectDefaultMetrics({ register: registry, prefix: 'intent_bus_' });
    const counter = (name: string, help: string): Counter<'namespace' | 'goal'> =>
      new Counter({ name, help, labelNames: ['namespace', 'goal'], registers: [registry] });
    this.counters = {
      published: counter('intent_bus_published_total', 'Intents published'),
      claimed: counter('intent_bus_claimed_total', 'Claims handed out'),
      fulfilled: counter('intent_bus_fulfilled_total', 'Intents fulfilled'),
      failed: counter('intent_bus_failed_total', 'Failed attempts: /fail or an expired lease'),
      dead: counter('intent_bus_dead_total', 'Intents that became dead letters'),
    };
    // By schedule: its owner's key id ("main" for the main key) and its name, since names
    // are per key. Each is counted by the node that did it, once across nodes (the runs and
    // failures have unique keys): sum the nodes for the bus.
    const scheduleCounter = (name: string, help: string): Counter<'owner' | 'schedule'> =>
      new Counter({ name, help, labelNames: ['owner', 'schedule'], registers: [registry] });
    this.schedules = {
      published: scheduleCounter(
        'intent_bus_schedule_runs_published_total',
        'Runs of a schedule published (ticks and triggers)',
      ),
      failed: scheduleCounter(
        'intent_bus_schedule_runs_failed_total',
        'Runs of a schedule that died (after their attempts, or expired)',
      ),
      missed: scheduleCounter(
        'intent_bus_schedule_runs_missed_total',
        'Runs of a schedule not fulfilled by their deadline',
      ),
      alerted: scheduleCounter(
        'intent_bus_schedule_alerts_total',
        'Alerts published for failed runs (on_failure)',
      ),
      skipped: scheduleCounter(
        'intent_bus_schedule_ticks_skipped_total',
        'Ticks of a schedule let go (overlap skip: its last run still open or claimed; or the quota full)',
      ),
    };
    this.held = new Counter({
      name: 'intent_bus_claims_held_total',
      help: 'Claims that found nothing because a flow control held intents back',
      labelNames: ['namespace', 'goal', 'control'],
      registers: [registry],
    });
    const buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
    this.latency = new Histogram({
      name: 'intent_bus_publish_to_fulfil_seconds',
      help: 'Time from publish to fulfil',
      labelNames: ['namespace'],
      buckets,
      registers: [registry],
    });
    this.claimWait = new Histogram({
      name: 'intent_bus_claim_wait_seconds',
      help: 'Time an intent waited to be claimed after it became claimable',
      labelNames: ['namespace'],
      buckets,
      registers: [registry],
    });
    this.http = new Histogram({
      name: 'intent_bus_http_request_duration_seconds',
      help: 'HTTP request duration by route',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30, 60],
      registers: [registry],
    });

    // The 2.1 gauges: read from the store when scraped, so every node reports the truth
    // (one count per scrape, taken by text(), feeds both intent gauges).
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- prom-client binds `this` in collect()
    const self = this;
    new Gauge({
      name: 'intent_bus_intents_total',
      help: 'Intents by status and namespace',
      labelNames: ['status', 'namespace'],
      registers: [registry],
      collect() {
        this.reset();
        for (const c of self.counts) this.set({ status: c.status, namespace: c.namespace }, c.n);
      },
    });
    new Gauge({
      name: 'intent_bus_dead_letters_total',
      help: 'Dead letters kept',
      registers: [registry],
      collect() {
        this.set(self.counts.filter((c) => c.status === 'dead').reduce((n, c) => n + c.n, 0));
      },
    });
    new Gauge({
      name: 'intent_bus_waiting_requests',
      help: 'Long-poll claims and result waits held open on this node',
      registers: [registry],
      collect() {
        this.set(waiting());
      },
    });
    new Gauge({
      name: 'intent_bus_tester_keys_total',
      help: 'Live tester keys',
      registers: [registry],
      async collect() {
        this.set(await store.keyCount());
      },
    });
    new Gauge({
      name: 'intent_bus_event_streams',
      help: 'Event streams (GET /events) open on this node',
      registers: [registry],
      collect() {
        this.set(streams());
      },
    });
    if (fleet) this.fleetGauges(fleet);
  }

  /**
   * Workers online and busy by namespace (issue 18), from the registry at scrape time: a
   * worker counts in each namespace it asked for (online) and holds an intent of (busy).
   */
  private fleetGauges(fleet: FleetSource): void {
    const registry = this.registry;
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- prom-client binds `this` in collect()
    const self = this;
    new Gauge({
      name: 'intent_bus_workers',
      help: 'Named workers by namespace and status (online: seen or waiting; busy: holds a claim)',
      labelNames: ['namespace', 'status'],
      registers: [registry],
      async collect() {
        this.reset();
        const counts = new Map<string, { online: number; busy: number }>();
        const at = (ns: string): { online: number; busy: number } => {
          const label = self.ns(ns);
          let c = counts.get(label);
          if (!c) counts.set(label, (c = { online: 0, busy: 0 }));
          return c;
        };
        for (const w of await fleet.online()) {
          if (w.status === 'offline') continue;
          for (const ns of new Set(w.asks.map((a) => a[0]))) at(ns).online++;
          for (const ns of new Set(w.holds.map((h) => h.namespace))) at(ns).busy++;
        }
        for (const [namespace, c] of counts) {
          this.set({ namespace, status: 'online' }, c.online);
          this.set({ namespace, status: 'busy' }, c.busy);
        }
      },
    });
    new Gauge({
      name: 'intent_bus_worker_registry_writes',
      help: 'Rows the worker registry of this node has written to the store, and its flushes',
      labelNames: ['kind'],
      registers: [registry],
      collect() {
        const w = fleet.writes();
        this.set({ kind: 'rows' }, w.rows);
        this.set({ kind: 'flushes' }, w.flushes);
      },
    });
  }

  private readonly namespaces = new Set<string>();

  /** A namespace label, new ones past the bound folded into "_other". */
  private ns(namespace: string): string {
    if (this.namespaces.has(namespace)) return namespace;
    if (this.namespaces.size >= MAX_LABEL_PAIRS) return OTHER;
    this.namespaces.add(namespace);
    return namespace;
  }

  /** Label values, with new (namespace, goal) pairs past the bound folded into "_other". */
  private labels(namespace: string, goal: string): { namespace: string; goal: string } {
    const pair = `${namespace}\u0000${goal}`;
    if (this.pairs.has(pair)) return { namespace, goal };
    if (this.pairs.size < MAX_LABEL_PAIRS) {
      this.pairs.add(pair);
      return { namespace, goal };
    }
    return { namespace: OTHER, goal: OTHER };
  }

  /**
   * prom-client hashes a label object on every call; the labelled children are looked up
   * here by one string of the bounded label values instead.
   */
  private readonly children = new Map<string, { inc(): void } | { observe(v: number): void }>();
  private child<C extends { inc(v?: number): void } | { observe(v: number): void }>(
    key: string,
    make: () => C,
  ): C {
    let c = this.children.get(key) as C | undefined;
    if (c === undefined) this.children.set(key, (c = make()));
    return c;
  }

  count(event: keyof BusMetrics['counters'], namespace: string, goal: string): void {
    const l = this.labels(namespace, goal);
    this.child(`${event}\u0000${l.namespace}\u0000${l.goal}`, () =>
      this.counters[event].labels(l),
    ).inc();
  }

  /** A schedule's run event, new (owner, schedule) pairs past the bound as "_other". */
  scheduleRun(event: ScheduleEvent, owner: string, schedule: string, n = 1): void {
    let pair = `${owner}\u0000${schedule}`;
    if (!this.schedulePairs.has(pair)) {
      if (this.schedulePairs.size < MAX_LABEL_PAIRS) this.schedulePairs.add(pair);
      else [owner, schedule, pair] = [OTHER, OTHER, `${OTHER}\u0000${OTHER}`];
    }
    this.child(`schedule\u0000${event}\u0000${pair}`, () =>
      this.schedules[event].labels({ owner, schedule }),
    ).inc(n);
  }

  /** `control`: paused, max_in_flight or rate. */
  flowHeld(namespace: string, goal: string, control: string): void {
    const l = this.labels(namespace, goal);
    this.child(`held\u0000${l.namespace}\u0000${l.goal}\u0000${control}`, () =>
      this.held.labels({ ...l, control }),
    ).inc();
  }

  publishToFulfil(namespace: string, seconds: number): void {
    const l = { namespace: this.ns(namespace) };
    this.child(`latency\u0000${l.namespace}`, () => this.latency.labels(l)).observe(
      Math.max(0, seconds),
    );
  }

  waitedForClaim(namespace: string, seconds: number): void {
    const l = { namespace: this.labels(namespace, '').namespace };
    this.child(`wait\u0000${l.namespace}`, () => this.claimWait.labels(l)).observe(
      Math.max(0, seconds),
    );
  }

  request(method: string, route: string, status: number, seconds: number): void {
    this.child(`http\u0000${method}\u0000${status}\u0000${route}`, () =>
      this.http.labels({ method, route, status: String(status) }),
    ).observe(seconds);
  }

  async text(): Promise<string> {
    this.counts = await this.store.intentsCount();
    return this.registry.metrics();
  }
}
