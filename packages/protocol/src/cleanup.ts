/** The counters POST /admin/cleanup answers (PROTOCOL.md §6, 2.1's names). */
export const CLEANUP_COUNTERS = [
  'expired_open_deleted',
  'expired_claims_requeued',
  'expired_claims_dead',
  'fulfilled_deleted',
  'dead_deleted',
  'dead_letters_deleted',
  'store_deleted',
  'rate_limits_deleted',
  'idempotency_deleted',
  'nonces_deleted',
] as const;

export type CleanupCounts = Record<(typeof CLEANUP_COUNTERS)[number], number>;
