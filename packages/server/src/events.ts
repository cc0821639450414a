/**
 * Where every change of an intent's state is reported, once: it wakes the waiting
 * requests (announce) and counts the change for /metrics and /admin/stats. Routes and
 * housekeeping call these after the store made the change. A revoked key is announced
 * the same way, so that every node hears it.
 */
import type { Clock } from './core/clock.js';
import type { BusMetrics } from './metrics.js';
import type { FailureOutcome, IntentRow } from './store/store.js';
import { announce, intentEvent, type IntentEventType } from './wake/announce.js';
import type { ClaimableEvent, WakeBus } from './wake/announce.js';

/** Why an intent changed outside a claim, a fulfil or a failure. */
export type ChangeReason = 'expired' | 'cancelled' | 'retried' | 'released';

const MINUTES_KEPT = 60;

export class BusEvents {
  /** Failed attempts per minute on this node (the store keeps no trace of retried ones). */
  private readonly failures = new Map<number, number>();
  /** Told of every schedule run that dies (ops/schedules.ts runDied records its failure). */
  private runDied: ((row: IntentRow) => void) | null = null;

  constructor(
    private readonly wake: WakeBus,
    private readonly metrics: BusMetrics,
    private readonly clock: Clock,
    /** A namespace's limit in flight (ops/flow-gate.ts): a slot freed there wakes a claim. */
    private readonly inFlightLimit: (namespace: string) => 'namespace' | 'goal' | null = () => null,
  ) {}

  published(row: IntentRow): void {
    this.metrics.count('published', row.namespace, row.goal);
    if (row.schedule !== null) this.metrics.scheduleRun('published', row.publisher, row.schedule);
    announce(this.wake, row);
    this.stream('published', row);
  }

  claimed(row: IntentRow, now: number): void {
    this.metrics.count('claimed', row.namespace, row.goal);
    this.metrics.waitedForClaim(row.namespace, (now - row.runAt) / 1000);
    this.stream('claimed', row);
  }

  /** A worker's progress was written (ops/progress.ts): for the event streams only. */
  progressed(row: IntentRow): void {
    this.stream('progress', row);
  }

  fulfilled(row: IntentRow): void {
    this.metrics.count('fulfilled', row.namespace, row.goal);
    this.metrics.publishToFulfil(
      row.namespace,
      ((row.completedAt ?? row.createdAt) - row.createdAt) / 1000,
    );
    announce(this.wake, row);
    this.slotFreed(row);
    this.stream('fulfilled', row);
  }

  /** A failed attempt (/fail or an expired lease): back to open, or dead. */
  failed(row: IntentRow): void {
    this.metrics.count('failed', row.namespace, row.goal);
    const minute = Math.floor(this.clock.now() / 60_000) * 60_000;
    this.failures.set(minute, (this.failures.get(minute) ?? 0) + 1);
    for (const m of this.failures.keys())
      if (m < minute - MINUTES_KEPT * 60_000) this.failures.delete(m);
    this.settled(row);
    this.stream(row.status === 'dead' ? 'dead' : 'failed', row);
  }

  /** Any other change: TTL expiry, cancel, retry, a claim undone. */
  changed(row: IntentRow, why: ChangeReason): void {
    this.settled(row);
    this.stream(why === 'expired' ? 'dead' : why, row);
  }

  private settled(row: IntentRow): void {
    if (row.status === 'dead') {
      this.metrics.count('dead', row.namespace, row.goal);
      // Only a schedule's run goes further: nothing more for any other intent.
      if (row.schedule !== null) this.runDied?.(row);
    }
    announce(this.wake, row);
    this.slotFreed(row);
  }

  /** Intents were deleted in bulk (an admin purge): every wait, on every node, re-reads. */
  purged(): void {
    this.wake.resync();
  }

  /**
   * A woken claim did not take the intent it was woken for (it took another, failed, or
   * its client left): the next waiting claim that could take it is woken, on this node if
   * one waits here, else on another.
   */
  passOn(event: ClaimableEvent): void {
    this.wake.claimable(event, 0);
  }

  /** A flow control of the namespace changed (ops/flow.ts): every node reads them again. */
  flowChanged(namespace: string): void {
    this.wake.flow(namespace, null);
  }

  /** A claim held back by a flow control (PROTOCOL.md §5.2 [ext]). */
  flowHeld(namespace: string, goal: string, control: string): void {
    this.metrics.flowHeld(namespace, goal, control);
  }

  private slotFreed(row: IntentRow): void {
    if (row.status === 'claimed') return;
    const limit = this.inFlightLimit(row.namespace);
    // The namespace's own limit: the slot is any goal's ('*').
    if (limit) this.wake.flow(row.namespace, limit === 'namespace' ? '*' : row.goal);
  }

  private stream(type: IntentEventType, row: IntentRow): void {
    this.wake.intentEvent(intentEvent(type, row, this.clock.now()));
  }

  /** Who is told when a schedule's run dies (once: server.ts sets it). */
  onRunDied(listener: (row: IntentRow) => void): void {
    this.runDied = listener;
  }

  /** Ticks of a schedule let go by this node (overlap skip or a full quota). */
  scheduleSkipped(owner: string, schedule: string, ticks: number): void {
    this.metrics.scheduleRun('skipped', owner, schedule, ticks);
  }

  /** A run's failure recorded by this node (dead or missed; its alert is published apart). */
  runFailed(out: FailureOutcome): void {
    const event = out.reason === 'dead' ? 'failed' : 'missed';
    this.metrics.scheduleRun(event, out.run.publisher, out.run.schedule!);
    if (out.alert !== null)
      this.metrics.scheduleRun('alerted', out.run.publisher, out.run.schedule!);
  }

  /** An API key was revoked: every node forgets it and ends its waiting requests. */
  keyRevoked(keyId: string): void {
    this.wake.keyRevoked(keyId);
  }

  failuresPerMinute(): ReadonlyMap<number, number> {
    return this.failures;
  }
}
