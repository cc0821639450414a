import { randomFillSync } from 'node:crypto';

/** The clock and the random source are injected everywhere, so tests can steer time. */
export interface Clock {
  /** Milliseconds since the unix epoch. */
  now(): number;
}

/** Uniform in [0, 1). */
export type Random = () => number;

export const systemClock: Clock = { now: () => Date.now() };

/** A clock a test moves by hand. */
export class ManualClock implements Clock {
  constructor(private ms: number = Date.now()) {}
  now(): number {
    return this.ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
  set(ms: number): void {
    this.ms = ms;
  }
}

/** Wire times are unix seconds as numbers; the core keeps milliseconds. */
export const toSeconds = (ms: number): number => ms / 1000;
export const toSecondsOrNull = (ms: number | null): number | null =>
  ms == null ? null : ms / 1000;

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
