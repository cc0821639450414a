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
