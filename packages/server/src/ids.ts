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

/**
 * An intent id (PROTOCOL.md §1): 32 lowercase hex characters, the first 12 the time of the
 * publish in milliseconds (48 bits, enough until the year 10889), the other 20 random (80
 * bits, from the same pool). Ids made later sort after those made before, so each new row
 * goes to the right-hand end of the id index instead of to a random page of it: with 128
 * random bits every insert dirtied a page of its own, which each commit wrote to the WAL.
 */
export function timeOrderedId(nowMs: number): string {
  const random = randomHex128();
  return (
    Math.max(0, Math.trunc(nowMs)).toString(16).padStart(12, '0').slice(-12) + random.slice(12)
  );
}
