/**
 * Load for the reliability runs: publishers and long-poll workers spread over one or more
 * bus nodes, recording a History for the checker. A node that is down (its address null)
 * is skipped for the next live one; everything goes to 127.0.0.1 and stops when told.
 */
import { performance } from 'node:perf_hooks';
import { ADMIN_TOKEN, MAIN_KEY } from '../helpers.js';
import { check, violations, type History, type Verdict } from './history.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const json = { 'content-type': 'application/json', 'x-api-key': MAIN_KEY };

export interface LoadOptions {
  /** The address of node i, or null while it is down. */
  node: (i: number) => string | null;
  nodes: number;
  publishers: number;
  workers: number;
  goal: string;
  /** Publishing stops after this many acknowledged publishes (default: when told). */
  maxPublished?: number;
  /** Publishes per second, all publishers together (default: as fast as answered). */
  ratePerSecond?: number;
}

export class Load {
  readonly history: History = {
    acknowledged: new Set(),
    claims: [],
    fulfils: [],
    finals: new Map(),
  };
  /** Refusals other than 503 (the bus or its database down), which must not happen. */
  readonly refusals: string[] = [];
  /** 503 answers seen (during outages). */
  unavailable = 0;
  /** Round-trip ms of publishes and fulfils answered, bucketed by second of the run. */
  readonly latencyBySecond: number[][] = [];
  private readonly startedAt = performance.now();
  private publishing = true;
  private working = true;
  private seq = 0;
  private readonly running: Promise<void>[];

  constructor(private readonly o: LoadOptions) {
    this.running = [
      ...Array.from({ length: o.publishers }, (_, i) => this.publisher(i)),
      ...Array.from({ length: o.workers }, (_, i) => this.worker(i)),
    ];
  }

  /** Fulfils answered 200 so far. */
  get fulfilled(): number {
    return this.history.fulfils.filter((f) => f.status === 200).length;
  }

  stopPublishing(): void {
    this.publishing = false;
  }

  /** The first live node from `i` on, or null when none is. */
  live(i: number): string | null {
    for (let k = 0; k < this.o.nodes; k++) {
      const url = this.o.node((i + k) % this.o.nodes);
      if (url) return url;
    }
    return null;
  }

  private timed(since: number): void {
    const now = performance.now();
    const second = Math.floor((now - this.startedAt) / 1000);
    (this.latencyBySecond[second] ??= []).push(now - since);
  }

  private async publisher(n: number): Promise<void> {
    const { goal, maxPublished = Infinity, ratePerSecond } = this.o;
    const every = ratePerSecond ? (this.o.publishers * 1000) / ratePerSecond : 0;
    let next = performance.now() + (every * n) / this.o.publishers;
    while (this.publishing && this.history.acknowledged.size < maxPublished) {
      if (every) {
        await sleep(next - performance.now());
        next += every;
      }
      const base = this.live(n);
      if (!base) {
        await sleep(20);
        continue;
      }
      try {
        const sentAt = performance.now();
        const r = await fetch(`${base}/intent`, {
          method: 'POST',
          headers: json,
          body: JSON.stringify({ goal, payload: { seq: this.seq++ }, max_attempts: 20 }),
          signal: AbortSignal.timeout(5000),
        });
        if (r.status === 201) {
          this.history.acknowledged.add(((await r.json()) as { id: string }).id);
          this.timed(sentAt);
        } else {
          this.refused(r.status, await r.text());
          await sleep(50);
        }
      } catch {
        await sleep(50);
      }
    }
  }

  private refused(status: number, text: string): void {
    if (status === 503) this.unavailable++;
    else this.refusals.push(`${status} ${text}`);
  }

  private async worker(n: number): Promise<void> {
    const { goal } = this.o;
    while (this.working) {
      const base = this.live(n);
      if (!base) {
        await sleep(20);
        continue;
      }
      try {
        const r = await fetch(`${base}/claim?goal=${goal}&wait=1`, {
          method: 'POST',
          headers: { ...json, 'x-worker-id': `w${n}` },
          signal: AbortSignal.timeout(5000),
        });
        if (r.status !== 200) {
          if (r.status !== 204) {
            this.refused(r.status, await r.text());
            await sleep(50);
          } else await r.arrayBuffer();
          continue;
        }
        const c = (await r.json()) as { id: string; claim_token: string };
        this.history.claims.push({ id: c.id, token: c.claim_token, at: performance.now() });
        const sentAt = performance.now();
        let status = 0;
        try {
          // The result is the token itself, so the final state says whose fulfil stuck.
          const f = await fetch(`${base}/fulfill/${c.id}`, {
            method: 'POST',
            headers: json,
            body: JSON.stringify({ claim_token: c.claim_token, result: c.claim_token }),
            signal: AbortSignal.timeout(5000),
          });
          status = f.status;
          if (status !== 200 && status !== 404) this.refused(status, await f.text());
          else await f.arrayBuffer();
          if (status === 200) this.timed(sentAt);
        } finally {
          this.history.fulfils.push({ id: c.id, token: c.claim_token, sentAt, status });
        }
      } catch {
        await sleep(50);
      }
    }
  }

  /**
   * Stops publishing, waits until no intent is open or claimed (leases cut by crashes
   * expire and come back), stops the workers, and reads every intent's final state.
   */
  async drain(timeoutMs: number): Promise<Verdict> {
    this.publishing = false;
    const deadline = performance.now() + timeoutMs;
    const count = async (status: string): Promise<number> => {
      const r = await fetch(`${this.live(0)}/admin/intents?status=${status}&limit=1`, {
        headers: { 'x-admin-token': ADMIN_TOKEN },
      });
      if (r.status !== 200) throw new Error(`admin/intents: ${r.status} ${await r.text()}`);
      return ((await r.json()) as { items: unknown[] }).items.length;
    };
    try {
      while ((await count('open')) + (await count('claimed')) > 0) {
        if (performance.now() > deadline) throw new Error('the queue did not drain in time');
        await sleep(200);
      }
    } finally {
      this.working = false;
      await Promise.all(this.running);
    }
    // Every intent seen: a publish whose 201 was lost in a crash may still have been
    // stored, claimed and fulfilled.
    const ids = [
      ...new Set([...this.history.acknowledged, ...this.history.claims.map((c) => c.id)]),
    ];
    // A long soak sees tens of thousands: 32 reads in flight.
    let next = 0;
    const reader = async (): Promise<void> => {
      while (next < ids.length) {
        const id = ids[next++]!;
        const r = await fetch(`${this.live(0)}/result/${id}`, { headers: json });
        if (r.status === 200) this.history.finals.set(id, (await r.json()) as { status: string });
        else await r.arrayBuffer();
      }
    };
    await Promise.all(Array.from({ length: 32 }, reader));
    return check(this.history);
  }

  /** One line for the test output. */
  summary(label: string, v: Verdict): string {
    const h = this.history;
    return (
      `${label}: ${v.checked} acknowledged intents (${v.fulfilled} fulfilled, ${v.dead} dead), ` +
      `${h.claims.length} claims, ${h.fulfils.length} fulfils, ${this.unavailable} answers 503; ` +
      `lost ${v.lost.length}, fulfilled twice ${v.doubleFulfilled.length}, ` +
      `stale successes ${v.staleSuccesses.length}, acknowledged but not kept ${v.undurable.length}`
    );
  }

  /** For each intent in a violation: what the clients saw of it, and how it ended. */
  detail(v: Verdict): string {
    const bad = new Set([
      ...v.lost,
      ...v.doubleFulfilled,
      ...v.staleSuccesses,
      ...v.undurable,
      ...v.unknownTokens,
    ]);
    const h = this.history;
    const detail = [...bad].slice(0, 5).map((id) => ({
      id,
      claims: h.claims.filter((c) => c.id === id),
      fulfils: h.fulfils.filter((f) => f.id === id),
      final: h.finals.get(id),
    }));
    return JSON.stringify({ violations: violations(v), verdict: v, detail }, null, 1);
  }
}
