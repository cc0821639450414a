/**
 * A sliding one-minute window per key: a request passes while fewer than `limit` passed
 * in the last `windowMs`; a refused one is not counted and learns when to come back.
 */
export type Admission = { ok: true } | { ok: false; retryAfterMs: number };

export class SlidingWindowLimiter {
  private readonly hits = new Map<string, number[]>();

  constructor(
    private readonly limit: number,
    private readonly windowMs = 60_000,
  ) {}

  take(key: string, now: number): Admission {
    let times = this.hits.get(key);
    if (!times) this.hits.set(key, (times = []));
    const from = now - this.windowMs;
    while (times.length > 0 && times[0]! <= from) times.shift();
    if (times.length >= this.limit) {
      return { ok: false, retryAfterMs: times[0]! + this.windowMs - now };
    }
    times.push(now);
    return { ok: true };
  }

  /** Forgets keys with nothing in their window; returns how many went. */
  prune(now: number): number {
    let n = 0;
    for (const [key, times] of this.hits) {
      if (times.length === 0 || times[times.length - 1]! <= now - this.windowMs) {
        this.hits.delete(key);
        n++;
      }
    }
    return n;
  }

  forget(key: string): void {
    this.hits.delete(key);
  }
}
