/**
 * WorkerRuntime: turns a handler into a worker. It long-polls a claim for its free slots
 * (`concurrency` jobs at once; with k > 1 free, one claim of up to k [ext]), runs the
 * handler of each job, and fulfils with its return value or fails with its error; on a bus
 * with the extension, that same request claims the slot's next job (`next=1`) [ext].
 * While a handler runs longer than half its lease, the lease is extended. A lost lease is
 * logged and never retried. On abort (or SIGINT / SIGTERM in Node) it stops claiming and
 * lets jobs in flight finish, up to a grace period. When the bus is unreachable it backs
 * off with jitter and reconnects by itself.
 *
 * A handler sees the payload as the bus sent it (`job.payloadText`) beside the parsed
 * `job.payload`, and may return `jsonText(s)` to fulfil with `s` exactly as written.
 */
import type { ProgressResponse } from '../../protocol/src/types.js';
import {
  sleep,
  type ClaimOptions,
  type ClaimOutcome,
  type ExactClaimedIntent,
  type IntentClient,
  type OutcomeAndClaim,
  type ProgressReport,
} from './client.js';
import { JsonText } from './json-text.js';
import {
  IntentBusError,
  LeaseLostError,
  NetworkError,
  RateLimitError,
  ServerError,
} from './errors.js';

/** What a handler receives: the claimed intent, `payloadText` its payload's exact text. */
export interface Job extends ExactClaimedIntent {
  /** Aborted when the runtime stops and the grace period is over, or the lease is lost. */
  signal: AbortSignal;
  /**
   * Reports progress [ext] (issue 20), which also extends the lease. A lost lease aborts
   * `signal` and throws LeaseLostError.
   */
  progress(report: ProgressReport): Promise<ProgressResponse>;
}

/**
 * Return `text(s)` from a handler to fulfil with a text result instead of JSON; return
 * `jsonText(s)` to fulfil with the JSON text `s` exactly as written.
 */
export class TextResult {
  constructor(readonly text: string) {}
}
export const text = (s: string): TextResult => new TextResult(s);

export type Handler = (job: Job) => unknown | Promise<unknown>;

export interface RuntimeLogger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export interface WorkerRuntimeOptions {
  client: IntentClient;
  workerId?: string;
  capabilities?: readonly string[];
  /** Jobs run at once (default 1). */
  concurrency?: number;
  logger?: RuntimeLogger;
  /**
   * [ext] Report a job's outcome and claim that slot's next job in one request
   * (`fulfil?next=1`, issue 21): one request per job instead of two while there is work.
   * Default true. A bus without the extension answers the outcome only; the runtime then
   * claims apart, and asks no more. False: always two requests.
   */
  claimNext?: boolean;
}

export interface ListenOptions {
  goal?: string;
  namespace?: string;
  /**
   * Claim only intents of this publisher (a key id; your own, or any with the main key).
   * Without it a claim takes public intents and the key's own private ones only.
   */
  publisher?: string;
  handler: Handler;
  /** Stops the runtime when aborted. */
  signal?: AbortSignal;
  /** Stop on SIGINT and SIGTERM where the platform has them (default true). */
  handleSignals?: boolean;
  /**
   * How long jobs in flight may still run after a stop (default 30 000 ms); then their
   * `signal` aborts, and a job whose handler has still not settled is failed.
   */
  graceMs?: number;
  /** Long-poll length of each claim (default 25 s, at most 30). */
  waitSeconds?: number;
  /** One claim attempt (with `waitSeconds`), its job if any, then stop. */
  once?: boolean;
}

export interface ListenSummary {
  claimed: number;
  fulfilled: number;
  failed: number;
  leaseLost: number;
  /** [ext] True when the bus told this worker to stop (an admin's `stop`). */
  stoppedByBus?: boolean;
}

/** While quiet, how often the worker asks the bus again whether it may resume. */
const QUIET_POLL_SECONDS = 5;

const silent: RuntimeLogger = { info() {}, warn() {}, error() {} };

type SignalSource = {
  on(e: string, f: () => void): unknown;
  off(e: string, f: () => void): unknown;
};

export class WorkerRuntime {
  private readonly client: IntentClient;
  private readonly log: RuntimeLogger;
  private readonly concurrency: number;
  /** Whether outcomes claim the next job (off by the option, or when the bus ignores it). */
  private claimNext: boolean;

  constructor(private readonly options: WorkerRuntimeOptions) {
    this.client = options.client;
    this.log = options.logger ?? silent;
    this.concurrency = Math.max(1, Math.floor(options.concurrency ?? 1));
    this.claimNext = options.claimNext ?? true;
  }

  /** Runs until stopped; resolves once jobs in flight have finished (or the grace ran out). */
  async listen(o: ListenOptions): Promise<ListenSummary> {
    const stopping = new AbortController(); // stop claiming
    const hardStop = new AbortController(); // abort handlers after the grace period
    const summary: ListenSummary = { claimed: 0, fulfilled: 0, failed: 0, leaseLost: 0 };
    const halt = (): void => {
      if (stopping.signal.aborted) return;
      stopping.abort();
      const grace = setTimeout(() => hardStop.abort(), o.graceMs ?? 30_000);
      (grace as { unref?: () => void }).unref?.();
    };
    // Said only for a stop from outside: the end of a `once` or an error is no interruption.
    const stop = (): void => {
      if (!stopping.signal.aborted)
        this.log.info('stopping: no new claims, letting jobs in flight finish');
      halt();
    };
    o.signal?.addEventListener('abort', stop, { once: true });
    if (o.signal?.aborted) stop();
    const proc = (globalThis as { process?: SignalSource }).process;
    const handleSignals = (o.handleSignals ?? true) && typeof proc?.on === 'function';
    if (handleSignals) {
      proc!.on('SIGINT', stop);
      proc!.on('SIGTERM', stop);
    }

    // [ext] What the bus told this worker: quiet (claim nothing, ask again slowly until
    // resumed) or stop (claim nothing more, finish the jobs in flight, end).
    let quiet = false;
    const told = (command: 'quiet' | 'stop' | null): void => {
      if (command === 'stop') {
        if (!stopping.signal.aborted) {
          this.log.info('the bus says stop: no new claims, letting jobs in flight finish');
        }
        summary.stoppedByBus = true;
        halt();
      } else if (command === 'quiet' && !quiet) {
        this.log.info('the bus says quiet: no new claims until resumed');
      } else if (command === null && quiet) {
        this.log.info('resumed: claiming again');
      }
      quiet = command === 'quiet';
    };

    const claimOptions = (waitSeconds: number): ClaimOptions => ({
      goal: o.goal,
      namespace: o.namespace,
      publisher: o.publisher,
      workerId: this.options.workerId,
      capabilities: this.options.capabilities,
      waitSeconds,
    });
    // [ext] The claim an outcome makes for its slot, when the slot wants another job: not
    // after `once`, nor while stopping or quiet. It does not wait (wait=0), so that a stop
    // never cuts a request whose outcome the bus has recorded; a 204 frees the slot for the
    // claimer's long poll.
    const nextClaim = (): ClaimOptions | null =>
      this.claimNext && !o.once && !stopping.signal.aborted && !quiet ? claimOptions(0) : null;

    // The free slots: `concurrency` jobs at once (one with `once`: a single claim). With k > 1
    // free the claim asks for up to k [ext] (issue 21); a bus without batches answers one.
    let free = o.once ? 1 : this.concurrency;
    const running = new Set<Promise<void>>();
    let crashed: { err: unknown } | null = null;
    let slotFreed: (() => void) | null = null;
    // When a quiet worker told so with an outcome asks the bus again.
    let askAgainAt = 0;
    const aSlotOrStop = (): Promise<void> =>
      new Promise<void>((resolve) => {
        const done = (): void => {
          stopping.signal.removeEventListener('abort', done);
          slotFreed = null;
          resolve();
        };
        slotFreed = done;
        stopping.signal.addEventListener('abort', done, { once: true });
      });
    const claimJobs = async (
      k: number,
      waitSeconds: number,
    ): Promise<{
      jobs: ExactClaimedIntent[];
      retryAfterSeconds: number;
      command: 'quiet' | 'stop' | null;
    }> => {
      const options = { ...claimOptions(waitSeconds), signal: stopping.signal };
      if (k > 1) {
        const out = await this.client.claimManyOutcome(Math.min(k, 100), options);
        return { ...out, jobs: out.intents };
      }
      const out = await this.client.claimOutcome(options);
      return { ...out, jobs: out.intent ? [out.intent] : [] };
    };
    // A slot runs its job, then each job the job's outcome claimed with it (`next`): such a
    // job runs even when a stop came meanwhile (it is in flight), like a claim answered
    // just before the stop.
    const occupy = (job: ExactClaimedIntent): void => {
      free--;
      const ran: Promise<void> = (async () => {
        for (let next: ExactClaimedIntent | null = job; next !== null;) {
          const chained = await this.run(next, o.handler, hardStop.signal, summary, nextClaim);
          next = chained?.intent ?? null;
          if (next) summary.claimed++;
          // What came instead of a job: a worker's command is obeyed (a quiet one asks again
          // only after the quiet pause, as after its own claim); nothing: claim apart.
          else if (chained?.command) {
            told(chained.command);
            if (quiet) askAgainAt = Date.now() + QUIET_POLL_SECONDS * 1000;
          }
        }
      })()
        .catch((err: unknown) => {
          // A bug, not the bus: stop, and throw it once every job has ended.
          crashed ??= { err };
          halt();
        })
        .finally(() => {
          free++;
          running.delete(ran);
          slotFreed?.();
        });
      running.add(ran);
    };

    const claimer = async (): Promise<void> => {
      let failures = 0;
      while (!stopping.signal.aborted) {
        if (free === 0) {
          await aSlotOrStop();
          continue;
        }
        if (quiet && askAgainAt > Date.now()) {
          await sleep(askAgainAt - Date.now(), stopping.signal);
          continue;
        }
        let jobs: ExactClaimedIntent[];
        try {
          const out = await claimJobs(
            free,
            // A quiet worker only asks whether it may resume: it does not hold a long poll.
            quiet ? 0 : Math.min(30, o.waitSeconds ?? (o.once ? 0 : 25)),
          );
          failures = 0;
          jobs = out.jobs;
          told(jobs.length > 0 ? null : out.command);
          if (out.command === 'stop') return;
          if (jobs.length === 0) {
            if (o.once) return halt();
            const pause = quiet
              ? Math.max(QUIET_POLL_SECONDS, out.retryAfterSeconds)
              : out.retryAfterSeconds;
            await sleep(pause * 1000, stopping.signal);
            continue;
          }
        } catch (err) {
          if (stopping.signal.aborted) return;
          if (o.once) throw err;
          if (err instanceof RateLimitError) {
            await sleep(err.retryAfterSeconds * 1000, stopping.signal);
            continue;
          }
          if (err instanceof NetworkError || err instanceof ServerError) {
            failures++;
            const ms = Math.min(30_000, 500 * 2 ** Math.min(failures, 6)) * (0.5 + Math.random());
            this.log.warn('bus unreachable, retrying', {
              error: err.message,
              retryInMs: Math.round(ms),
            });
            await sleep(ms, stopping.signal);
            continue;
          }
          throw err; // auth or validation: a configuration problem, not a passing one
        }
        summary.claimed += jobs.length;
        if (o.once) stopping.abort(); // no more claims
        for (const job of jobs) occupy(job);
      }
    };

    try {
      try {
        await claimer();
      } finally {
        // Every job claimed runs to its end, a stop included.
        await Promise.all(running);
      }
      if (crashed) throw (crashed as { err: unknown }).err;
    } finally {
      if (handleSignals) {
        proc!.off('SIGINT', stop);
        proc!.off('SIGTERM', stop);
      }
      o.signal?.removeEventListener('abort', stop);
      halt();
    }
    return summary;
  }

  /**
   * Runs one job with lease extension, then reports its outcome; with `nextClaim` giving a
   * claim, in the same request, and hands back what that claim answered (else null).
   */
  private async run(
    claimed: ExactClaimedIntent,
    handler: Handler,
    hardStop: AbortSignal,
    summary: ListenSummary,
    nextClaim: () => ClaimOptions | null,
  ): Promise<ClaimOutcome | null> {
    const lease = new AbortController();
    const signal = AbortSignal.any([hardStop, lease.signal]);
    // Extend by a whole lease (10-3600 s, the bus's range), for as long as the handler runs,
    // each time half of the shorter of the first lease and an extension has passed: an
    // extension shorter than the first lease must not leave a gap before the next one.
    const extendBy = Math.min(3600, Math.max(10, claimed.claim_timeout));
    const everyMs = (Math.min(claimed.claim_timeout, extendBy) * 1000) / 2;
    const extender = setInterval(() => {
      this.client.extendClaim(claimed.id, claimed.claim_token, extendBy).catch((err: unknown) => {
        if (err instanceof LeaseLostError) {
          this.log.warn('lease lost while the job ran', { id: claimed.id });
          lease.abort();
        } else
          this.log.warn('could not extend the lease', {
            id: claimed.id,
            error: (err as Error).message,
          });
      });
    }, everyMs);
    (extender as { unref?: () => void }).unref?.();
    // Once the grace period is over, stop waiting for a handler that ignores its signal, so
    // that listen() can resolve; the job is then failed (handed back to the bus).
    let onHardStop = (): void => {};
    const graceOver = new Promise<never>((_, reject) => {
      onHardStop = () =>
        reject(
          new Error('the worker stopped and the grace period ran out before the job finished'),
        );
    });
    graceOver.catch(() => undefined);
    hardStop.addEventListener('abort', onHardStop, { once: true });
    if (hardStop.aborted) onHardStop();
    let outcome: { ok: true; value: unknown } | { ok: false; error: string };
    try {
      const progress = (report: ProgressReport): Promise<ProgressResponse> =>
        this.client.progress(claimed.id, claimed.claim_token, report).catch((err: unknown) => {
          if (err instanceof LeaseLostError) lease.abort();
          throw err;
        });
      const handled = Promise.resolve().then(() => handler({ ...claimed, signal, progress }));
      handled.catch(() => undefined); // it may still settle after the grace ran out
      outcome = { ok: true, value: await Promise.race([handled, graceOver]) };
    } catch (err) {
      outcome = { ok: false, error: err instanceof Error ? err.message : String(err) };
    } finally {
      clearInterval(extender);
      hardStop.removeEventListener('abort', onHardStop);
    }
    if (lease.signal.aborted) {
      summary.leaseLost++;
      return null;
    }
    if (outcome.ok && !(outcome.value instanceof TextResult || outcome.value instanceof JsonText)) {
      // A value JSON cannot carry (a BigInt, a cycle) fails the job instead of stalling it.
      try {
        JSON.stringify(outcome.value);
      } catch (err) {
        outcome = {
          ok: false,
          error: `the handler's result is not JSON: ${(err as Error).message}`,
        };
      }
    }
    const next = nextClaim();
    try {
      if (outcome.ok) {
        const v = outcome.value;
        const [result, options] =
          v instanceof TextResult
            ? [v.text, { resultType: 'text' as const }]
            : [v === undefined ? null : v, {}];
        const chained = next
          ? await this.client.fulfillAndClaim(
              claimed.id,
              claimed.claim_token,
              result,
              next,
              options,
            )
          : (await this.client.fulfill(claimed.id, claimed.claim_token, result, options), null);
        summary.fulfilled++;
        return this.nextOf(chained);
      }
      const chained = next
        ? await this.client.failAndClaim(claimed.id, claimed.claim_token, outcome.error, next)
        : (await this.client.fail(claimed.id, claimed.claim_token, outcome.error), null);
      summary.failed++;
      this.log.warn('job failed', { id: claimed.id, error: outcome.error });
      return this.nextOf(chained);
    } catch (err) {
      if (err instanceof LeaseLostError) {
        summary.leaseLost++;
        this.log.warn('lease lost before the outcome could be reported; not retried', {
          id: claimed.id,
        });
      } else if (err instanceof IntentBusError) {
        this.log.error('could not report the outcome', { id: claimed.id, error: err.message });
      } else throw err;
      return null;
    }
  }

  /** What an outcome's request claimed; a bus that ignored `next` is not asked again. */
  private nextOf(chained: OutcomeAndClaim | null): ClaimOutcome | null {
    if (chained && !chained.supported && this.claimNext) {
      this.claimNext = false;
      this.log.info('the bus does not claim with an outcome (next=1): claiming apart');
    }
    return chained?.next ?? null;
  }
}
