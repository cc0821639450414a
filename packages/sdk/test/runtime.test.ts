/**
 * WorkerRuntime against a real bus over real HTTP: outcomes, concurrency, lease extension,
 * lost leases, graceful shutdown, the grace period and recovery after a bus restart.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  WorkerRuntime,
  text,
  type IntentClient,
  type Job,
  type ListenOptions,
  type ListenSummary,
  type RuntimeLogger,
} from '../src/index.js';
import {
  clientOf,
  closeBus,
  freePort,
  lossyFetch,
  sleep,
  startTestBus,
  uniqueGoal,
  waitFor,
  type TestBus,
} from './support.js';

interface LogLine {
  level: 'info' | 'warn' | 'error';
  message: string;
  fields?: Record<string, unknown>;
}

function recordingLogger(): { logger: RuntimeLogger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: LogLine['level']) =>
    (message: string, fields?: Record<string, unknown>): void => {
      lines.push({ level, message, fields });
    };
  return { logger: { info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

/** Starts listen() and hands back a way to stop it and its summary. */
function start(
  runtime: WorkerRuntime,
  o: Omit<ListenOptions, 'signal' | 'handleSignals'>,
): { stop: () => void; done: Promise<ListenSummary>; signal: AbortSignal } {
  const ac = new AbortController();
  const done = runtime.listen({ ...o, signal: ac.signal, handleSignals: false });
  return { stop: () => ac.abort(), done, signal: ac.signal };
}

/** A promise and its resolver. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const statusOf = async (c: IntentClient, id: string): Promise<string> =>
  (await c.getStatus(id)).status;

describe('WorkerRuntime on a real bus', () => {
  let t: TestBus;
  let c: IntentClient;
  beforeAll(async () => {
    t = await startTestBus({ env: { BUS_RATE_LIMIT_PER_MINUTE: '100000' } });
    c = clientOf(t);
  });
  afterAll(async () => closeBus(t));

  it('fulfils with the handler return value as JSON, and text(s) as a text result', async () => {
    const goal = uniqueGoal('rt_values');
    const seen: Job[] = [];
    const rt = new WorkerRuntime({ client: c, workerId: 'rt-w1' });
    const run = start(rt, {
      goal,
      handler: (job) => {
        seen.push(job);
        const p = job.payload as { kind: string; PAYLOAD_CANARY?: string };
        if (p.kind === 'text') return text(`hello ${p.PAYLOAD_CANARY}`);
        if (p.kind === 'nothing') return undefined;
        return Promise.resolve({ doubled: [1, 2, 3].map((n) => n * 2), echo: p.PAYLOAD_CANARY });
      },
    });
    const json = await c.publish(goal, { kind: 'json', PAYLOAD_CANARY: 'j' });
    const txt = await c.publish(goal, { kind: 'text', PAYLOAD_CANARY: 't' });
    const none = await c.publish(goal, { kind: 'nothing' });
    const rj = await c.getResult(json.id, { waitSeconds: 5 });
    const rtx = await c.getResult(txt.id, { waitSeconds: 5 });
    const rn = await c.getResult(none.id, { waitSeconds: 5 });
    run.stop();
    expect(await run.done).toEqual({ claimed: 3, fulfilled: 3, failed: 0, leaseLost: 0 });
    expect(rj).toMatchObject({
      status: 'fulfilled',
      result_type: 'json',
      result: { doubled: [2, 4, 6], echo: 'j' },
      worker_id: 'rt-w1',
    });
    expect(rtx).toMatchObject({ status: 'fulfilled', result_type: 'text', result: 'hello t' });
    expect(rn).toMatchObject({ status: 'fulfilled', result: null });
    // the handler got the claimed intent and a live signal
    expect(seen[0]).toMatchObject({ id: json.id, goal, claim_attempts: 1 });
    expect(seen[0]!.claim_token).toMatch(/^[0-9a-f]{32}$/);
    expect(seen[0]!.signal.aborted).toBe(false);
  });

  it('fails the job with the thrown message, retried until dead after max_attempts', async () => {
    const goal = uniqueGoal('rt_throw');
    const attempts: number[] = [];
    const { logger, lines } = recordingLogger();
    const rt = new WorkerRuntime({ client: c, logger });
    const run = start(rt, {
      goal,
      handler: (job) => {
        attempts.push(job.claim_attempts);
        throw new Error(`boom on attempt ${job.claim_attempts}`);
      },
    });
    const { id } = await c.publish(
      goal,
      { PAYLOAD_CANARY: 'fails' },
      { maxAttempts: 2, backoffBase: 1 },
    );
    await waitFor(async () => (await statusOf(c, id)) === 'dead', 8000, 'the intent to die');
    run.stop();
    expect(await run.done).toEqual({ claimed: 2, failed: 2, fulfilled: 0, leaseLost: 0 });
    expect(attempts).toEqual([1, 2]);
    const i = await c.admin.intent(id);
    expect(i).toMatchObject({ status: 'dead', claim_attempts: 2, error: 'boom on attempt 2' });
    expect(await c.admin.deadLetter(id)).toMatchObject({
      reason: 'boom on attempt 2',
      attempts: 2,
    });
    expect(lines.filter((l) => l.message === 'job failed')).toHaveLength(2);
    expect(JSON.stringify(lines)).not.toContain('PAYLOAD_CANARY');
  });

  it('fails with a non-Error throw as its string', async () => {
    const goal = uniqueGoal('rt_throw_string');
    const rt = new WorkerRuntime({ client: c });
    const run = start(rt, {
      goal,
      handler: () => Promise.reject('plain string reason'),
    });
    const { id } = await c.publish(goal, {}, { maxAttempts: 1 });
    await waitFor(async () => (await statusOf(c, id)) === 'dead', 5000, 'the intent to die');
    run.stop();
    await run.done;
    expect((await c.getStatus(id)).error).toBe('plain string reason');
  });

  it('runs concurrency N jobs at once, never more', async () => {
    const goal = uniqueGoal('rt_concurrency');
    let running = 0;
    let peak = 0;
    const rt = new WorkerRuntime({ client: c, concurrency: 3 });
    const run = start(rt, {
      goal,
      handler: async (job) => {
        running++;
        peak = Math.max(peak, running);
        await sleep(400);
        running--;
        return { id: job.id };
      },
    });
    const started = Date.now();
    const ids = [];
    for (let i = 0; i < 6; i++) ids.push((await c.publish(goal, { i })).id);
    for (const id of ids) {
      expect((await c.getResult(id, { waitSeconds: 10 })).status).toBe('fulfilled');
    }
    const took = Date.now() - started;
    run.stop();
    expect(await run.done).toMatchObject({ claimed: 6, fulfilled: 6 });
    expect(peak).toBe(3);
    // 6 jobs of 400 ms with 3 at a time: about 800 ms, well under the 2400 ms of one at a time
    expect(took).toBeLessThan(2000);
  });

  it('claims with its worker id and capabilities, within its namespace', async () => {
    const goal = uniqueGoal('rt_routing');
    const got: string[] = [];
    const rt = new WorkerRuntime({ client: c, workerId: 'rt-pi', capabilities: ['gpu', 'cam'] });
    const run = start(rt, {
      goal,
      namespace: 'rt-ns',
      handler: (job) => {
        got.push(job.id);
        return 'ok';
      },
    });
    const a = await c.publish(goal, {}, { namespace: 'rt-ns', targetWorker: 'rt-pi' });
    const b = await c.publish(goal, {}, { namespace: 'rt-ns', requiredCapability: 'cam' });
    const elsewhere = await c.publish(goal, {}, { namespace: 'rt-other' });
    const otherWorker = await c.publish(goal, {}, { namespace: 'rt-ns', targetWorker: 'rt-x' });
    expect((await c.getResult(a.id, { waitSeconds: 5 })).worker_id).toBe('rt-pi');
    expect((await c.getResult(b.id, { waitSeconds: 5 })).status).toBe('fulfilled');
    await sleep(200);
    run.stop();
    await run.done;
    expect(got.sort()).toEqual([a.id, b.id].sort());
    expect(await statusOf(c, elsewhere.id)).toBe('open');
    expect(await statusOf(c, otherWorker.id)).toBe('open');
  });

  it('logs a lost lease (intent cancelled mid-job) and never retries the fulfil', async () => {
    const goal = uniqueGoal('rt_lease_cancel');
    const { logger, lines } = recordingLogger();
    const { fetch: f, calls } = lossyFetch(() => false);
    const client = clientOf(t, { fetch: f });
    const rt = new WorkerRuntime({ client, logger });
    const started = deferred<string>();
    const release = deferred();
    const run = start(rt, {
      goal,
      handler: async (job) => {
        started.resolve(job.id);
        await release.promise;
        return { late: true };
      },
    });
    const { id } = await c.publish(goal, { PAYLOAD_CANARY: 'cancelled' });
    expect(await started.promise).toBe(id);
    expect(await c.admin.cancel(id)).toMatchObject({ status: 'dead' });
    release.resolve();
    await waitFor(() => lines.some((l) => /lease lost/.test(l.message)), 5000, 'a lease-lost log');
    run.stop();
    expect(await run.done).toEqual({ claimed: 1, fulfilled: 0, failed: 0, leaseLost: 1 });
    expect(calls.filter((x) => x.url.includes('/fulfill/'))).toHaveLength(1);
    expect(calls.filter((x) => x.url.includes('/fail/'))).toHaveLength(0);
    expect(await c.admin.intent(id)).toMatchObject({
      status: 'dead',
      dead_reason: 'cancelled',
      result: null,
    });
    expect(lines.find((l) => /lease lost/.test(l.message))!.level).toBe('warn');
  });

  it('obeys the bus: quiet claims nothing until resumed, stop finishes the job in flight and resolves', async () => {
    const goal = uniqueGoal('rt_told');
    const started = deferred<string>();
    const { logger, lines } = recordingLogger();
    const rt = new WorkerRuntime({ client: c, workerId: `told-${goal}`, logger });
    const run = start(rt, {
      goal,
      waitSeconds: 20,
      handler: async (job) => {
        started.resolve(job.id);
        await sleep(500);
        return 'done';
      },
    });
    // Listed once its first claim is seen; then told to quiet, its long poll ends at once.
    await waitFor(async () => (await c.workers()).some((w) => w.worker_id === `told-${goal}`));
    expect((await c.admin.commandWorker(`told-${goal}`, 'quiet')).workers).toHaveLength(1);
    await waitFor(() => lines.some((l) => l.message.startsWith('the bus says quiet')));
    const held = await c.publish(goal, {});
    await sleep(1000);
    expect((await c.getStatus(held.id)).status).toBe('open');
    expect((await c.admin.workers()).find((w) => w.worker_id === `told-${goal}`)?.command).toBe(
      'quiet',
    );
    // Resumed: it asks again within its quiet pace (5 s) and takes the job.
    await c.admin.commandWorker(`told-${goal}`, 'resume');
    expect(await started.promise).toBe(held.id);
    await c.admin.commandWorker(`told-${goal}`, 'stop');
    const summary = await run.done;
    expect(summary).toEqual({
      claimed: 1,
      fulfilled: 1,
      failed: 0,
      leaseLost: 0,
      stoppedByBus: true,
    });
    expect((await c.getResult(held.id)).status).toBe('fulfilled');
    await c.admin.forgetWorker(`told-${goal}`);
  });

  it('stops gracefully: no new claims, the job in flight still fulfils, listen() resolves', async () => {
    const goal = uniqueGoal('rt_graceful');
    const started = deferred<string>();
    let handled = 0;
    const rt = new WorkerRuntime({ client: c, concurrency: 2 });
    const run = start(rt, {
      goal,
      handler: async (job) => {
        handled++;
        started.resolve(job.id);
        await sleep(600);
        return { finished: true, aborted: job.signal.aborted };
      },
    });
    const first = await c.publish(goal, {});
    expect(await started.promise).toBe(first.id);
    const stoppedAt = Date.now();
    run.stop();
    const later = await c.publish(goal, {});
    const summary = await run.done;
    expect(Date.now() - stoppedAt).toBeLessThan(3000);
    expect(summary).toEqual({ claimed: 1, fulfilled: 1, failed: 0, leaseLost: 0 });
    expect(handled).toBe(1);
    expect(await c.getResult(first.id)).toMatchObject({
      status: 'fulfilled',
      result: { finished: true, aborted: false },
    });
    await sleep(300);
    expect(await c.getStatus(later.id)).toMatchObject({ status: 'open', claim_attempts: 0 });
  });

  it('aborts job.signal once graceMs has passed after a stop', async () => {
    const goal = uniqueGoal('rt_grace');
    const started = deferred();
    let abortedAfterMs = -1;
    let stoppedAt = 0;
    const rt = new WorkerRuntime({ client: c });
    const run = start(rt, {
      goal,
      graceMs: 300,
      handler: async (job) => {
        started.resolve();
        // ignores the stop; only the hard abort of the grace period ends it
        await new Promise<void>((resolve) => {
          const cap = setTimeout(resolve, 5000);
          job.signal.addEventListener('abort', () => {
            abortedAfterMs = Date.now() - stoppedAt;
            clearTimeout(cap);
            resolve();
          });
        });
        if (job.signal.aborted) throw new Error('aborted by the grace period');
        return 'not aborted';
      },
    });
    const { id } = await c.publish(goal, {});
    await started.promise;
    stoppedAt = Date.now();
    run.stop();
    const summary = await run.done;
    expect(abortedAfterMs).toBeGreaterThanOrEqual(250);
    expect(abortedAfterMs).toBeLessThan(2000);
    expect(summary).toMatchObject({ claimed: 1, failed: 1 });
    expect((await c.getStatus(id)).error).toMatch(/grace period/);
  });

  it('resolves listen() when the grace runs out even if a handler never returns', async () => {
    const goal = uniqueGoal('rt_grace_stuck');
    const started = deferred();
    const rt = new WorkerRuntime({ client: c });
    const run = start(rt, {
      goal,
      graceMs: 300,
      handler: () => {
        started.resolve();
        return new Promise(() => {
          /* never settles, ignores its signal */
        });
      },
    });
    const { id } = await c.publish(goal, {}, { maxAttempts: 3 });
    await started.promise;
    const stoppedAt = Date.now();
    run.stop();
    const summary = await Promise.race([
      run.done,
      sleep(5000).then(() => 'listen() did not resolve' as const),
    ]);
    expect(summary).not.toBe('listen() did not resolve');
    expect(Date.now() - stoppedAt).toBeLessThan(3000);
    // the job is handed back to the bus at once rather than held until its lease expires
    expect(await c.getStatus(id)).toMatchObject({ status: 'open', claim_attempts: 1 });
    expect(summary).toMatchObject({ claimed: 1, failed: 1 });
  });

  it('once: true with nothing to do returns at once with claimed 0', async () => {
    const goal = uniqueGoal('rt_once_empty');
    const rt = new WorkerRuntime({ client: c, concurrency: 2 });
    const started = Date.now();
    const summary = await rt.listen({
      goal,
      once: true,
      handleSignals: false,
      handler: () => 'never',
    });
    expect(summary).toEqual({ claimed: 0, fulfilled: 0, failed: 0, leaseLost: 0 });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('once: true runs exactly one job', async () => {
    const goal = uniqueGoal('rt_once_one');
    const a = await c.publish(goal, {}, { priority: 200 });
    const b = await c.publish(goal, {});
    const rt = new WorkerRuntime({ client: c, concurrency: 3 });
    const summary = await rt.listen({
      goal,
      once: true,
      handleSignals: false,
      handler: () => 'only one',
    });
    expect(summary).toEqual({ claimed: 1, fulfilled: 1, failed: 0, leaseLost: 0 });
    expect(await statusOf(c, a.id)).toBe('fulfilled');
    expect(await statusOf(c, b.id)).toBe('open');
  });

  it('stops at once when the signal is already aborted', async () => {
    const goal = uniqueGoal('rt_pre_aborted');
    const { id } = await c.publish(goal, {});
    const rt = new WorkerRuntime({ client: c });
    const summary = await rt.listen({
      goal,
      signal: AbortSignal.abort(),
      handleSignals: false,
      handler: () => 'no',
    });
    expect(summary.claimed).toBe(0);
    expect(await statusOf(c, id)).toBe('open');
  });

  it("publisher: a main-key worker takes a tester key's private job only when it names that key", async () => {
    const goal = uniqueGoal('rt_publisher');
    const k = await c.admin.generateKey('rt-publisher');
    const tester = clientOf(t, { apiKey: k.api_key });
    const { id } = await tester.publish(goal, { from: 'tester' });
    const rt = new WorkerRuntime({ client: c });
    const run = (publisher?: string): Promise<ListenSummary> =>
      rt.listen({ goal, publisher, once: true, handleSignals: false, handler: () => 'seen' });
    // The ownership rule: without the filter, the main key sees public jobs and its own.
    expect((await run()).claimed).toBe(0);
    expect(await run(k.key_id)).toMatchObject({ claimed: 1, fulfilled: 1 });
    expect(await statusOf(c, id)).toBe('fulfilled');
  });

  it('the end of a once, or an error, is no interruption: "stopping" is never logged', async () => {
    const { logger, lines } = recordingLogger();
    const empty = new WorkerRuntime({ client: c, logger });
    await empty.listen({
      goal: uniqueGoal('rt_quiet'),
      once: true,
      handleSignals: false,
      handler: () => 'no',
    });
    const down = new WorkerRuntime({
      client: clientOf(t, { baseUrl: `http://127.0.0.1:${await freePort()}`, retries: 0 }),
      logger,
    });
    await expect(
      down.listen({ goal: 'x', once: true, handleSignals: false, handler: () => 'no' }),
    ).rejects.toMatchObject({ name: 'NetworkError' });
    expect(lines).toEqual([]);
    // A stop from outside still says so.
    const stopped = new WorkerRuntime({ client: c, logger });
    const { stop, done } = start(stopped, { goal: uniqueGoal('rt_quiet'), handler: () => 'no' });
    stop();
    await done;
    expect(lines.map((l) => l.message)).toEqual([
      'stopping: no new claims, letting jobs in flight finish',
    ]);
  });

  it('an auth failure is a configuration problem: listen() rejects with it', async () => {
    const rt = new WorkerRuntime({
      client: clientOf(t, { apiKey: `tk_${'0'.repeat(32)}` }),
    });
    await expect(
      rt.listen({ goal: 'x', handleSignals: false, handler: () => 'no' }),
    ).rejects.toMatchObject({ name: 'AuthError', status: 401 });
  });
});

describe('WorkerRuntime with a short lease (BUS_CLAIM_TIMEOUT_SECONDS=2)', () => {
  let t: TestBus;
  let c: IntentClient;
  beforeAll(async () => {
    t = await startTestBus({
      env: { BUS_CLAIM_TIMEOUT_SECONDS: '2', BUS_RATE_LIMIT_PER_MINUTE: '100000' },
    });
    c = clientOf(t);
  });
  afterAll(async () => closeBus(t));

  it('extends the lease so a job slower than its lease still fulfils on its first claim', async () => {
    const goal = uniqueGoal('rt_extend');
    const { fetch: f, calls } = lossyFetch(() => false);
    const rt = new WorkerRuntime({ client: clientOf(t, { fetch: f }) });
    let claimTimeout = 0;
    const run = start(rt, {
      goal,
      handler: async (job) => {
        claimTimeout = job.claim_timeout;
        await sleep(4000);
        return { slow: true, aborted: job.signal.aborted };
      },
    });
    const { id } = await c.publish(goal, { PAYLOAD_CANARY: 'slow' }, { maxAttempts: 3 });
    const r = await c.getResult(id, { waitSeconds: 10 });
    run.stop();
    expect(await run.done).toEqual({ claimed: 1, fulfilled: 1, failed: 0, leaseLost: 0 });
    expect(claimTimeout).toBe(2);
    expect(r).toMatchObject({ status: 'fulfilled', result: { slow: true, aborted: false } });
    expect((await c.admin.intent(id)).claim_attempts).toBe(1);
    expect(calls.filter((x) => x.url.includes('/extend_claim/')).length).toBeGreaterThanOrEqual(2);
  });

  it('aborts job.signal when an extension finds the lease gone, and reports nothing', async () => {
    const goal = uniqueGoal('rt_lease_lost');
    const { logger, lines } = recordingLogger();
    const { fetch: f, calls } = lossyFetch(() => false);
    const rt = new WorkerRuntime({ client: clientOf(t, { fetch: f }), logger });
    const started = deferred<string>();
    let abortedAt = 0;
    const run = start(rt, {
      goal,
      handler: async (job) => {
        started.resolve(job.id);
        await new Promise<void>((resolve) => {
          const cap = setTimeout(resolve, 8000);
          job.signal.addEventListener('abort', () => {
            abortedAt = Date.now();
            clearTimeout(cap);
            resolve();
          });
        });
        return 'too late';
      },
    });
    const { id } = await c.publish(goal, { PAYLOAD_CANARY: 'lost' });
    await started.promise;
    const cancelledAt = Date.now();
    await c.admin.cancel(id);
    await waitFor(() => abortedAt > 0, 5000, 'job.signal to abort');
    expect(abortedAt - cancelledAt).toBeLessThan(3000);
    run.stop();
    expect(await run.done).toEqual({ claimed: 1, fulfilled: 0, failed: 0, leaseLost: 1 });
    expect(calls.filter((x) => /\/(fulfill|fail)\//.test(x.url))).toHaveLength(0);
    expect(lines.some((l) => l.level === 'warn' && /lease lost/.test(l.message))).toBe(true);
    expect(await c.admin.intent(id)).toMatchObject({ status: 'dead', dead_reason: 'cancelled' });
  });
});

describe('WorkerRuntime with a lease longer than the longest extension (86400 s)', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus({ env: { BUS_CLAIM_TIMEOUT_SECONDS: '86400' } });
  });
  afterAll(async () => {
    vi.useRealTimers();
    await closeBus(t);
  });

  it('keeps extending before each extension runs out (lease timers on a virtual clock)', async () => {
    const c = clientOf(t);
    const goal = uniqueGoal('rt_long_lease');
    let pending = 0;
    const extensions: Array<{ firedAfter: number; seconds: number }> = [];
    let virtual = 0; // seconds of virtual time since the claim
    const { fetch: recorded } = lossyFetch(() => false);
    const counting = (async (input: string | URL | Request, init?: RequestInit) => {
      const url = String(input);
      if (!url.includes('/extend_claim/')) return recorded(input, init);
      const firedAfter = virtual;
      pending++;
      try {
        const res = await recorded(input, init);
        const body = JSON.parse(new TextDecoder().decode(init!.body as Uint8Array)) as {
          seconds: number;
        };
        if (res.ok) extensions.push({ firedAfter, seconds: body.seconds });
        return res;
      } finally {
        pending--;
      }
    }) as typeof fetch;
    const started = deferred<Job>();
    const release = deferred();
    // Only the runtime's interval timers are virtual; the bus and the sockets run for real.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const rt = new WorkerRuntime({ client: clientOf(t, { fetch: counting }) });
    const run = start(rt, {
      goal,
      handler: async (job) => {
        started.resolve(job);
        await release.promise;
        return 'after a day and more';
      },
    });
    const { id } = await c.publish(goal, {});
    const job = await started.promise;
    expect(job.claim_timeout).toBe(86400);
    const stepS = 900;
    let leaseEnd = 86400; // virtual second at which the lease runs out
    for (virtual = stepS; virtual <= 100_800; virtual += stepS) {
      await vi.advanceTimersByTimeAsync(stepS * 1000);
      await sleep(5);
      await waitFor(() => pending === 0, 5000, 'extensions to finish');
      for (const e of extensions.splice(0)) {
        // fired somewhere in the step that just ran: count from its start, the worst case
        leaseEnd = Math.max(leaseEnd, e.firedAfter - stepS + e.seconds);
      }
      expect(leaseEnd, `lease ran out at virtual second ${virtual}`).toBeGreaterThan(virtual);
    }
    expect(job.signal.aborted).toBe(false);
    vi.useRealTimers();
    release.resolve();
    expect(await c.getResult(id, { waitSeconds: 5 })).toMatchObject({
      status: 'fulfilled',
      claim_attempts: 1,
    });
    run.stop();
    expect(await run.done).toEqual({ claimed: 1, fulfilled: 1, failed: 0, leaseLost: 0 });
  });
});

describe('WorkerRuntime across a bus restart', () => {
  it('reconnects by itself and runs what is published after the restart', async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'sdk-restart-'));
    const env = { BUS_PORT: String(port), BUS_RATE_LIMIT_PER_MINUTE: '100000' };
    let t = await startTestBus({ env, dir });
    try {
      const { logger, lines } = recordingLogger();
      const c = clientOf(t);
      const rt = new WorkerRuntime({ client: c, logger });
      const goal = uniqueGoal('rt_restart');
      const results: string[] = [];
      const run = start(rt, {
        goal,
        waitSeconds: 5,
        handler: (job) => {
          results.push(job.id);
          return { n: (job.payload as { n: number }).n };
        },
      });
      const before = await c.publish(goal, { n: 1 });
      expect((await c.getResult(before.id, { waitSeconds: 5 })).status).toBe('fulfilled');

      await closeBus(t);
      await waitFor(
        () => lines.some((l) => l.message === 'bus unreachable, retrying'),
        5000,
        'the runtime to notice the bus is gone',
      );
      t = await startTestBus({ env, dir });
      expect(t.url).toBe(c.baseUrl);
      const restartedAt = Date.now();
      const after = await c.publish(goal, { n: 2, PAYLOAD_CANARY: 'after restart' });
      const r = await c.getResult(after.id, { waitSeconds: 12 });
      expect(r).toMatchObject({ status: 'fulfilled', result: { n: 2 } });
      expect(Date.now() - restartedAt).toBeLessThan(12_000);
      run.stop();
      expect(await run.done).toMatchObject({ claimed: 2, fulfilled: 2, leaseLost: 0 });
      expect(results).toEqual([before.id, after.id]);
      // the first intent survived the restart too
      expect(await c.getStatus(before.id)).toMatchObject({ status: 'fulfilled' });
    } finally {
      await closeBus(t);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 20_000);
});
