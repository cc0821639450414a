/**
 * Wake-ups for intents that become claimable later (a delay or a backoff coming due).
 * One timer for the soonest. Memory is bounded: the schedule holds a window of future
 * run_ats up to its `horizon`; anything later is left in the store and loaded when the
 * horizon comes due (and on start). So nothing is lost however many intents wait.
 */
import type { Clock } from '../core/clock.js';
import type { ClaimableEvent } from './announce.js';
import { MinHeap } from './min-heap.js';

export interface DueEntry {
  at: number;
  event: ClaimableEvent;
}

/** Loads open intents with run_at > `after`, soonest first, at most `limit`. */
export type LoadDue = (after: number, limit: number) => Promise<DueEntry[]>;

const MAX_TIMER_MS = 2_147_483_647;
const RETRY_MS = 1000;

export class DueSchedule {
  private readonly heap = new MinHeap<DueEntry>((a, b) => a.at - b.at);
  /** Every run_at <= horizon is in the heap (or already fired); later ones may be in the store only. */
  private horizon: number;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private loading = false;
  private reloadPending = false;
  private stopped = false;

  constructor(
    private readonly clock: Clock,
    private readonly fire: (event: ClaimableEvent) => void,
    private readonly capacity: number,
    private readonly load: LoadDue | null,
  ) {
    // Without a store to load from, the schedule is all in memory from the start.
    this.horizon = load ? -Infinity : Infinity;
  }

  get size(): number {
    return this.heap.size;
  }

  /** Loads the first window (on start). */
  start(): void {
    if (this.load) this.arm(this.clock.now());
  }

  add(at: number, event: ClaimableEvent): void {
    // Past the horizon the store has it and a later load brings it (while a load runs, it
    // is kept: the load may have read the store before it was written).
    if (this.stopped || (at > this.horizon && !this.loading)) return;
    this.heap.push({ at, event });
    if (this.heap.size > this.capacity) {
      const dropped = this.heap.dropLargest();
      if (dropped) this.horizon = Math.min(this.horizon, dropped.at - 1);
    }
    this.arm(at);
  }

  /**
   * Loads the window again from the store (announcements may have been missed). Entries
   * already held stay: one that fires twice only wakes a waiter that then finds nothing.
   */
  reload(): void {
    if (!this.load || this.stopped) return;
    if (this.loading) {
      this.reloadPending = true;
      return;
    }
    this.horizon = -Infinity;
    void this.loadWindow();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(at: number): void {
    if (this.stopped) return;
    const next = Math.min(at, this.heap.peek()?.at ?? Infinity, this.horizon);
    if (next >= this.timerAt || next === Infinity) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = next;
    const delay = Math.min(Math.max(0, next - this.clock.now()), MAX_TIMER_MS);
    this.timer = setTimeout(() => this.onTimer(), delay);
  }

  private onTimer(): void {
    this.timer = null;
    this.timerAt = Infinity;
    const now = this.clock.now();
    for (let top = this.heap.peek(); top && top.at <= now; top = this.heap.peek()) {
      this.heap.pop();
      this.fire(top.event);
    }
    if (now >= this.horizon && this.load) void this.loadWindow();
    else this.arm(Infinity);
  }

  private async loadWindow(): Promise<void> {
    if (this.loading || this.stopped || !this.load) return;
    this.loading = true;
    const from = this.horizon === -Infinity ? this.clock.now() : this.horizon;
    const limit = Math.max(1, Math.floor(this.capacity / 2));
    try {
      const rows = await this.load(from, limit);
      const last = rows[rows.length - 1];
      // A full page may stop inside a run of equal run_ats: reload from just before it.
      this.horizon = rows.length < limit || !last ? Infinity : Math.max(last.at - 1, from + 1);
      this.loading = false;
      for (const r of rows) this.add(r.at, r.event);
      this.onTimer();
    } catch {
      this.loading = false;
      this.timerAt = Infinity;
      this.arm(this.clock.now() + RETRY_MS);
    }
    if (this.reloadPending) {
      this.reloadPending = false;
      this.reload();
    }
  }
}
