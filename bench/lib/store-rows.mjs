// What the store benches (store-cost.mjs, store-jobs.mjs) hand SqliteStore directly: intents
// as a publish resolves them, with ids and claim tokens made by the bus's own functions
// (packages/server/dist/ids.js: ids in time order, tokens 128 random bits), and claims.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from './procs.mjs';

const { randomHex128, timeOrderedId } = await import(
  pathToFileURL(join(ROOT, 'packages/server/dist/ids.js')).href
);

/** Makers of intents carrying `payload` and of claims of them, from one start time T0. */
export function storeRows(payload) {
  const T0 = Date.now();
  let seq = 0;
  const newIntent = () => {
    const at = T0 + seq++;
    return {
      id: timeOrderedId(at),
      namespace: 'default',
      goal: 'bench.store',
      payload,
      publisher: 'kid_bench',
      visibility: 'private',
      priority: 100,
      runAt: T0,
      createdAt: at,
      expiresAt: T0 + 86_400_000,
      maxAttempts: 3,
      backoffBase: 5,
      ttl: 86_400,
      targetWorker: null,
      requiredCapability: null,
      schedule: null,
      scheduledFor: null,
    };
  };
  const claimReq = () => ({
    keyId: 'kid_bench',
    namespace: 'default',
    goal: 'bench.store',
    publisher: null,
    workerId: null,
    capabilities: [],
    now: T0 + 1,
    token: randomHex128(),
    leaseMs: 60_000,
  });
  /** The fulfil of a claimed row, a little after the claims. */
  const fulfilRef = (row) => ({
    id: row.id,
    token: row.claimToken,
    keyId: 'kid_bench',
    now: T0 + 2,
  });
  return { newIntent, claimReq, fulfilRef };
}
