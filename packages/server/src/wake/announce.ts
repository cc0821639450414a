import type { IntentRow } from '../store/store.js';
import type { ClaimableEvent, WakeBus } from './hub.js';

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
