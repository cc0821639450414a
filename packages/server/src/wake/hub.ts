/**
 * Waiting requests and the events that wake them, in-process. Routes and housekeeping
 * announce "this intent is claimable (now or at time t)" and "this intent finished";
 * the hub hands each claimable event to one matching waiting claimer and wakes every
 * result waiter of a finished intent. No polling: direct wake-ups, plus one timer for
 * the soonest future run_at. With PostgreSQL the same announcements arrive through
 * LISTEN/NOTIFY from other nodes and are fed into the same hub.
 */
import { performance } from 'node:perf_hooks';
import type { Clock } from '../core/clock.js';
import { matchesClaim, type ClaimFilter } from '../core/routing.js';
import type { ClaimableEvent, NodeWake } from './announce.js';
import { DueSchedule, type LoadDue } from './due-schedule.js';

export type WaitOutcome =
  | { kind: 'woken'; event: ClaimableEvent | null }
  | { kind: 'timeout' }
  | { kind: 'closed' }
  /** The waiting request's key was revoked. */
  | { kind: 'revoked' };

interface Waiter {
  /** The key the request came with, or null. */
  keyId: string | null;
  settle(outcome: WaitOutcome): void;
  release(): void;
  /** See Ticket.foundNothing. */
  foundNothing(epoch: number): void;
}

interface ClaimWaiter extends Waiter {
  filter: ClaimFilter;
  /**
   * The hub's epoch when this claim started the attempt that found nothing (or when the
   * claim that covers it did, see coverOf); null while it has not, or found something.
   */
  emptyAt: number | null;
}

/**
 * Whether every intent `f` may claim, `w` may claim too, targeted intents aside: the same
 * key and publisher filter, any goal or the same, and at least the same capabilities.
 */
function covers(w: ClaimFilter, f: ClaimFilter): boolean {
  return (
    w.keyId === f.keyId &&
    w.publisher === f.publisher &&
    (w.goal === null || w.goal === f.goal) &&
    f.capabilities.every((c) => w.capabilities.includes(c))
  );
}

/**
 * A woken claim on its way to the store: the intent whose wake-up it carries. A claim
 * takes the first intent in the claim order, not necessarily the one it was woken for;
 * when it takes one that another claim under way was woken for, that claim carries the
 * first one's wake-up instead (WaiterHub.carry), so that no third claim is woken for an
 * intent that claim is about to take.
 */
export interface Carrier {
  event: ClaimableEvent | null;
}

/** May an open intent name its worker? (server.ts asks the store once at start.) */
export type LoadTargeted = () => Promise<boolean>;

export interface HubLimits {
  /** Waiting requests on this node (claims and results). */
  maxWaiters: number;
  /** Waiting claims per tester key; the main key is exempt. */
  maxWaitersPerKey: number;
  /** Future wake-ups kept in memory; later ones wait in the store (see DueSchedule). */
  maxScheduled?: number;
}

/**
 * The requester's departure, as an AbortSignal that a wait listens to (an AbortController
 * is one). Read only when a wait starts, so that it can be made on demand.
 */
export interface Leaving {
  readonly signal: AbortSignal;
}

/**
 * A registered wait: `wait()` resolves once, on wake, timeout, abort or hub close. The
 * timeout counts from registration.
 */
export interface Ticket {
  wait(): Promise<WaitOutcome>;
  /**
   * Stop waiting (the request answered by itself). Returns the outcome if one had already
   * arrived, so a wake-up that was not used can be passed on.
   */
  cancel(): WaitOutcome | null;
  /**
   * A waiting claim: its attempt, started at `epoch` (WaiterHub.epoch read before it),
   * found nothing (see coverOf). Nothing for a result wait.
   */
  foundNothing(epoch: number): void;
}

/** The waiters of NodeWake's announcements; the event streams are wake/streams.ts's. */
export class WaiterHub implements Omit<NodeWake, 'intentEvent'> {
  private readonly claimWaiters = new Map<string, Set<ClaimWaiter>>();
  private readonly resultWaiters = new Map<string, Set<Waiter>>();
  private readonly perKey = new Map<string, number>();
  private readonly allWaiters = new Set<Waiter>();
  private total = 0;
  private closed = false;
  private readonly due: DueSchedule;
  /**
   * Moves on whenever a claimable intent may have been left without a claim that takes it
   * (no waiting claim matched it, a resync, a flow control's change): a claim that found
   * nothing before then proves nothing about now.
   */
  private epochNow = 0;
  /** Whether an open intent may name its worker: true until the store said none does. */
  private targeted = true;
  /** Targeted events seen, so that the start-up check does not clear a newer one. */
  private targetedSeen = 0;
  /** Checks of the store for such intents, so that only the latest one's answer counts. */
  private checks = 0;
  /** Whether this node hears the others' announcements (always, on one node). */
  private heard = true;
  /** The woken claims under way, by the intent whose wake-up each carries. */
  private readonly carriers = new Map<string, Carrier>();

  constructor(
    private readonly clock: Clock,
    private readonly limits: HubLimits,
    loadDue: LoadDue | null = null,
    private readonly loadTargeted: LoadTargeted | null = null,
  ) {
    this.due = new DueSchedule(
      clock,
      (e) => this.dispatch(e),
      limits.maxScheduled ?? 100_000,
      loadDue,
    );
  }

  /** Arms the wake-ups of intents already waiting in the store for their run_at. */
  start(): void {
    this.due.start();
    this.checkTargeted();
  }

  /** Asks the store whether an open intent names its worker (see coverOf). */
  private checkTargeted(): void {
    this.targeted = true;
    const seen = this.targetedSeen;
    const check = ++this.checks;
    this.loadTargeted?.().then(
      (may) => {
        // Only the latest check's answer, and none if such an intent was seen meanwhile.
        if (!may && this.targetedSeen === seen && this.checks === check) this.targeted = false;
      },
      () => {}, // unknown: they may exist
    );
  }

  /**
   * The wake relay lost (false) or has (true) its connection: what other nodes announced
   * meanwhile was not heard, so no claim is covered until it hears them again.
   */
  hearing(on: boolean): void {
    this.heard = on;
    this.epochNow++;
  }

  /** `c` now carries the wake-up of `event` (null: none). */
  carry(c: Carrier, event: ClaimableEvent | null): void {
    if (c.event && this.carriers.get(c.event.id) === c) this.carriers.delete(c.event.id);
    c.event = event;
    if (event) this.carriers.set(event.id, c);
  }

  /** The woken claim under way that carries the wake-up of intent `id`, if any. */
  carrierOf(id: string): Carrier | undefined {
    return this.carriers.get(id);
  }

  /** Read before a claim attempt, handed to Ticket.foundNothing after (see coverOf). */
  get epoch(): number {
    return this.epochNow;
  }

  /**
   * Whether a new claim `f` may wait without trying the store first, and the epoch it is
   * covered at: when a claim waiting here that covers it (every intent `f` could take, it
   * could take too) found nothing, and nothing claimable has been left untaken since. Each
   * intent announced since then was handed to a waiting claim (that one, or one before
   * it), which claims it or passes it on; so the attempt would find nothing but what those
   * are about to take. An intent that names its worker is not covered by another worker's
   * claim: a claim naming a worker is never covered while such intents may exist.
   */
  coverOf(f: ClaimFilter): number | null {
    if (this.closed || !this.heard || (f.workerId !== null && this.targeted)) return null;
    const set = this.claimWaiters.get(f.namespace);
    if (!set) return null;
    for (const w of set) if (w.emptyAt === this.epochNow && covers(w.filter, f)) return w.emptyAt;
    return null;
  }

  get waiting(): number {
    return this.total;
  }

  /** True when a waiting claim of this node was handed the event now. */
  claimable(event: ClaimableEvent, at: number): boolean {
    if (this.closed) return false;
    this.noteTarget(event);
    if (at <= this.clock.now()) return this.dispatch(event);
    this.due.add(at, event);
    return false;
  }

  finished(id: string): void {
    const set = this.resultWaiters.get(id);
    if (!set) return;
    for (const w of [...set]) w.settle({ kind: 'woken', event: null });
  }

  /** Ends every wait of the key: the request answers 401 instead of what it waited for. */
  keyRevoked(keyId: string): void {
    for (const w of [...this.allWaiters]) if (w.keyId === keyId) w.settle({ kind: 'revoked' });
  }

  /**
   * Wakes every waiting claim of one worker (an admin told it something): each runs its
   * claim again, which first reads the worker's command (ops/claim.ts).
   */
  wakeWorker(keyId: string, workerId: string): void {
    for (const set of [...this.claimWaiters.values()])
      for (const w of [...set])
        if (w.filter.keyId === keyId && w.filter.workerId === workerId)
          w.settle({ kind: 'woken', event: null });
  }

  /**
   * Flow control: capacity came back in the namespace. Goal null (a control changed):
   * every waiting claim there tries again. A goal (a slot came free; `*`: any goal's): the
   * longest-waiting claim that could take it; one woken in vain waits again, and held
   * claims also look again after IN_FLIGHT_RETRY_MS.
   */
  flow(namespace: string, goal: string | null): void {
    const set = this.claimWaiters.get(namespace);
    if (!set) return;
    const anyGoal = goal === null || goal === '*';
    // Held claims may now take what they found held back.
    this.epochNow++;
    for (const w of [...set]) {
      if (!anyGoal && w.filter.goal != null && w.filter.goal !== goal) continue;
      w.settle({ kind: 'woken', event: null });
      if (goal !== null) return;
    }
  }

  /**
   * Announcements may have been missed (see PgWakeRelay): every waiting claim runs its
   * claim again, every result wait re-reads its intent, and future run_ats are reloaded.
   */
  resync(): void {
    if (this.closed) return;
    this.epochNow++;
    // Intents naming their worker may have been announced unheard: the store is asked again.
    this.checkTargeted();
    for (const set of [...this.claimWaiters.values(), ...this.resultWaiters.values()])
      for (const w of [...set]) w.settle({ kind: 'woken', event: null });
    this.due.reload();
  }

  /**
   * Hands the event to the longest-waiting matching claimer, if any (then true); else the
   * intent waits in the store for a claim to find it, and the epoch moves on.
   */
  private dispatch(event: ClaimableEvent): boolean {
    this.noteTarget(event);
    const set = this.claimWaiters.get(event.namespace);
    if (set) {
      for (const w of set) {
        if (matchesClaim(event, w.filter)) {
          w.settle({ kind: 'woken', event });
          return true;
        }
      }
    }
    this.epochNow++;
    return false;
  }

  private noteTarget(event: ClaimableEvent): void {
    if (event.targetWorker === null) return;
    this.targeted = true;
    this.targetedSeen++;
  }

  /**
   * Registers a waiting claim. Null when a limit is reached (the caller answers at once,
   * as if wait=0) or the hub is closed.
   */
  waitForClaim(
    filter: ClaimFilter,
    exemptFromKeyLimit: boolean,
    timeoutMs: number,
    leaving?: Leaving,
  ): Ticket | null {
    if (!this.admit(filter.keyId, exemptFromKeyLimit)) return null;
    let set = this.claimWaiters.get(filter.namespace);
    if (!set) this.claimWaiters.set(filter.namespace, (set = new Set()));
    const bucket = set;
    return this.makeTicket(timeoutMs, leaving, filter.keyId, exemptFromKeyLimit, (w) => {
      const cw: ClaimWaiter = Object.assign(w, { filter, emptyAt: null });
      w.foundNothing = (epoch) => (cw.emptyAt = epoch);
      bucket.add(cw);
      return () => {
        bucket.delete(cw);
        if (bucket.size === 0 && this.claimWaiters.get(filter.namespace) === bucket)
          this.claimWaiters.delete(filter.namespace);
      };
    });
  }

  /**
   * Registers a wait for intent `id` to finish; it counts against the same per-key cap as
   * waiting claims. Null when a limit is reached or the hub is closed.
   */
  waitForResult(
    id: string,
    keyId: string,
    exemptFromKeyLimit: boolean,
    timeoutMs: number,
    leaving?: Leaving,
  ): Ticket | null {
    if (!this.admit(keyId, exemptFromKeyLimit)) return null;
    let set = this.resultWaiters.get(id);
    if (!set) this.resultWaiters.set(id, (set = new Set()));
    const bucket = set;
    return this.makeTicket(timeoutMs, leaving, keyId, exemptFromKeyLimit, (w) => {
      bucket.add(w);
      return () => {
        bucket.delete(w);
        if (bucket.size === 0 && this.resultWaiters.get(id) === bucket)
          this.resultWaiters.delete(id);
      };
    });
  }

  private admit(keyId: string | null, exempt: boolean): boolean {
    if (this.closed || this.total >= this.limits.maxWaiters) return false;
    if (keyId != null && !exempt && (this.perKey.get(keyId) ?? 0) >= this.limits.maxWaitersPerKey)
      return false;
    return true;
  }

  private makeTicket(
    timeoutMs: number,
    leaving: Leaving | undefined,
    keyId: string | null,
    exempt: boolean,
    register: (w: Waiter) => () => void,
  ): Ticket {
    // Most tickets are cancelled at once (the claim they guard found work): the promise, the
    // timer and the abort listener are made only when someone waits.
    const deadline = performance.now() + Math.max(0, timeoutMs);
    let outcome: WaitOutcome | null = null;
    let promise: Promise<WaitOutcome> | null = null;
    let resolveWait: ((o: WaitOutcome) => void) | null = null;
    let timer: NodeJS.Timeout | null = null;
    const counted = keyId != null && !exempt;
    this.total++;
    if (counted) this.perKey.set(keyId, (this.perKey.get(keyId) ?? 0) + 1);
    const onAbort = (): void => waiter.settle({ kind: 'closed' });
    let unregister = (): void => {};
    const waiter: Waiter = {
      keyId,
      foundNothing: () => {},
      settle: (o) => {
        if (outcome) return;
        outcome = o;
        waiter.release();
        resolveWait?.(o);
      },
      release: () => {
        unregister();
        unregister = () => {};
        if (timer) clearTimeout(timer);
        timer = null;
        if (resolveWait) leaving?.signal.removeEventListener('abort', onAbort);
        this.allWaiters.delete(waiter);
        if (counted) {
          const n = (this.perKey.get(keyId) ?? 1) - 1;
          if (n <= 0) this.perKey.delete(keyId);
          else this.perKey.set(keyId, n);
        }
        this.total--;
        waiter.release = () => {};
      },
    };
    unregister = register(waiter);
    this.allWaiters.add(waiter);
    return {
      wait: () => {
        if (promise) return promise;
        if (outcome) return (promise = Promise.resolve(outcome));
        promise = new Promise<WaitOutcome>((r) => (resolveWait = r));
        const signal = leaving?.signal;
        if (signal?.aborted) {
          waiter.settle({ kind: 'closed' });
          return promise;
        }
        signal?.addEventListener('abort', onAbort, { once: true });
        timer = setTimeout(
          () => waiter.settle({ kind: 'timeout' }),
          Math.max(0, deadline - performance.now()),
        );
        return promise;
      },
      cancel: () => {
        if (outcome) return outcome;
        outcome = { kind: 'closed' };
        waiter.release();
        return null;
      },
      foundNothing: (epoch) => {
        if (!outcome) waiter.foundNothing(epoch);
      },
    };
  }

  /** Ends every wait ("closed") and stops timers; later waits are refused. */
  close(): void {
    this.closed = true;
    this.due.stop();
    for (const w of [...this.allWaiters]) w.settle({ kind: 'closed' });
  }
}
