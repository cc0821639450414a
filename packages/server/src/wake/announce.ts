/**
 * What waiting requests are told: the events, the two interfaces that carry them (WakeBus
 * for whoever announces, NodeWake for a node that also resynchronises), and what a row's
 * new state announces.
 */
import type { RoutingAttrs } from '../core/routing.js';
import type { IntentRow, ProgressValues } from '../store/store.js';

export interface ClaimableEvent extends RoutingAttrs {
  id: string;
}

/** How the rest of the server announces changes. */
export interface WakeBus {
  /** The intent can be claimed from time `at` (ms) on. */
  claimable(event: ClaimableEvent, at: number): void;
  /** The intent reached fulfilled or dead. */
  finished(id: string): void;
  /** The API key was revoked: its waiting requests end (401) and it is looked up again. */
  keyRevoked(keyId: string): void;
  /**
   * Flow control (ops/flow.ts). `goal` null: the namespace's controls changed; each node
   * reads them again and every claim waiting there tries again. Else an intent of `goal`
   * left its claim (a slot in flight came free; `*`: the namespace's own limit, any
   * goal's slot): one claim waiting for it tries again.
   */
  flow(namespace: string, goal: string | null): void;
  /** A change of an intent, for the event streams (GET /events [ext], issue 20). */
  intentEvent(event: IntentEvent): void;
  /**
   * Announcements may have been missed, or many intents changed at once (a purge):
   * everything waiting re-reads the store.
   */
  resync(): void;
}

/** What a change of an intent is called on the event stream. */
export type IntentEventType =
  | 'published'
  | 'claimed'
  | 'progress'
  | 'fulfilled'
  | 'failed'
  | 'dead'
  | 'retried'
  | 'cancelled'
  | 'released';

/** One change of an intent, as the event streams keep it (ms times). */
export interface IntentEvent {
  type: IntentEventType;
  id: string;
  namespace: string;
  goal: string;
  status: IntentRow['status'];
  attempts: number;
  /** When the change happened. */
  at: number;
  /** Who may see it (as for /status): the publisher, the claimer, the main key. */
  publisher: string;
  claimer: string | null;
  deadReason: string | null;
  /** A progress event's progress; null for the others. */
  progress: ProgressValues | null;
}

export function intentEvent(type: IntentEventType, row: IntentRow, at: number): IntentEvent {
  return {
    type,
    id: row.id,
    namespace: row.namespace,
    goal: row.goal,
    status: row.status,
    attempts: row.claimAttempts,
    at,
    publisher: row.publisher,
    claimer: row.claimer,
    deadReason: row.deadReason,
    progress:
      type === 'progress' && row.progressAt != null
        ? {
            percent: row.progressPercent,
            message: row.progressMessage,
            data: row.progressData,
            at: row.progressAt,
          }
        : null,
  };
}

/** What a node does with the announcements, its own and (on PostgreSQL) the other nodes'. */
export interface NodeWake extends WakeBus {
  /**
   * As WakeBus's, and true when a waiting claim of this node was handed the event now
   * (then it claims; the other nodes need not be woken for it).
   */
  claimable(event: ClaimableEvent, at: number): boolean;
  /**
   * Whether this node hears the other nodes (the wake relay's connection): while it does
   * not, a new claim always asks the store (WaiterHub.coverOf).
   */
  hearing(on: boolean): void;
}

export const claimableEvent = (row: IntentRow): ClaimableEvent => ({
  id: row.id,
  namespace: row.namespace,
  goal: row.goal,
  visibility: row.visibility,
  publisher: row.publisher,
  targetWorker: row.targetWorker,
  requiredCapability: row.requiredCapability,
});

/**
 * Tells the wake bus what a row's new state means for waiting requests. Every change of
 * state goes through here: open → claimable at run_at; fulfilled or dead → finished.
 */
export function announce(bus: WakeBus, row: IntentRow): void {
  if (row.status === 'open') bus.claimable(claimableEvent(row), row.runAt);
  else if (row.status === 'fulfilled' || row.status === 'dead') bus.finished(row.id);
}
