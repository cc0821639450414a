/**
 * The state machine of PROTOCOL.md §2 as pure functions of the clock and random source.
 *
 *   open ──claim──▶ claimed ──fulfill──▶ fulfilled
 *     ▲                │
 *     └─fail / lease───┤ (attempts < max_attempts, run_at = t + backoff)
 *                      ▼
 *                     dead  (attempts >= max_attempts; also TTL expiry and admin cancel)
 *
 * Which rows an operation may touch (a live token, a cancellable status) is stated once,
 * in each store's statements, and checked by the Store contract tests on every backend.
 */
import type { Random } from './clock.js';

export const REASON_LEASE_EXPIRED = 'lease expired';
export const REASON_EXPIRED = 'expired';
export const REASON_CANCELLED = 'cancelled';

/** Backoff after attempt n: base * 2^n + jitter, jitter uniform in [0, 2) seconds. */
export function backoffMs(backoffBaseSeconds: number, attempts: number, random: Random): number {
  return Math.round((backoffBaseSeconds * 2 ** attempts + random() * 2) * 1000);
}

export interface FailureInput {
  claimAttempts: number;
  maxAttempts: number;
  backoffBase: number;
}

export type FailureOutcome = { status: 'open'; runAt: number } | { status: 'dead' };

/** What a failed or expired claim turns into, decided at time `at` (ms). */
export function afterFailure(row: FailureInput, at: number, random: Random): FailureOutcome {
  if (row.claimAttempts >= row.maxAttempts) return { status: 'dead' };
  return { status: 'open', runAt: at + backoffMs(row.backoffBase, row.claimAttempts, random) };
}

/**
 * The columns a failed or expired claim's row takes at time `at`: open again after the
 * backoff, or dead with `deadReason` (or "failed") and completed at `at`.
 */
export function releasedColumns(
  row: FailureInput & { runAt: number },
  at: number,
  deadReason: string | null,
  random: Random,
): {
  status: 'open' | 'dead';
  runAt: number;
  deadReason: string | null;
  completedAt: number | null;
} {
  const outcome = afterFailure(row, at, random);
  return outcome.status === 'dead'
    ? { status: 'dead', runAt: row.runAt, deadReason: deadReasonOf(deadReason), completedAt: at }
    : { status: 'open', runAt: outcome.runAt, deadReason: null, completedAt: null };
}

/** A dead letter always has a reason: a worker's empty or blank error is "failed". */
const deadReasonOf = (error: string | null): string =>
  error != null && error.trim() !== '' ? error : 'failed';
