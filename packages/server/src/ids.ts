import { randomFillSync } from 'node:crypto';

/** Random bytes drawn from the system CSPRNG in blocks, and handed out 16 at a time. */
const POOL_IDS = 256;
const pool = Buffer.allocUnsafe(16 * POOL_IDS);
let used = POOL_IDS;

/**
 * 128 fresh random bits as 32 lowercase hex characters (intent ids and claim tokens,
 * PROTOCOL.md §1). One randomFillSync per 256 ids instead of one per id; every byte of the
 * pool is used once.
 */
export function randomHex128(): string {
  if (used === POOL_IDS) {
    randomFillSync(pool);
    used = 0;
  }
  const start = 16 * used++;
  return pool.toString('hex', start, start + 16);
}
