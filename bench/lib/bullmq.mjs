// The peer of `--peer bullmq`: the same profile run on BullMQ over the machine's Redis, in
// this process (the generator), so that each table row can show the bus beside it. BullMQ
// and ioredis are dependencies of bench/ only (bench/package.json, `npm ci --prefix bench`),
// never of the published packages: they are loaded here, on demand.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { cpuSeconds } from './procs.mjs';
import { percentile } from './stats.mjs';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** What to run when the peer's packages are missing. */
export const INSTALL_HINT = 'npm ci --prefix bench';

/**
 * Loads BullMQ and ioredis from bench/node_modules; throws an error that says what to run
 * when they are not installed.
 */
export async function loadBullmq() {
  try {
    const [bullmq, ioredis] = await Promise.all([import('bullmq'), import('ioredis')]);
    return { Queue: bullmq.Queue, Worker: bullmq.Worker, Redis: ioredis.Redis ?? ioredis.default };
  } catch (err) {
    if (err?.code === 'ERR_MODULE_NOT_FOUND') {
      throw new Error(
        `--peer bullmq: BullMQ is not installed in bench/: run \`${INSTALL_HINT}\` first`,
        { cause: err },
      );
    }
    throw err;
  }
}

/**
 * Connects to Redis at `url` and reads its version and pid (INFO server), so its CPU can be
 * read from /proc/<pid>/stat when it runs on this machine. Resolves to null (with the
 * reason) when Redis does not answer within `timeoutMs`.
 */
export async function probeRedis(lib, url, timeoutMs = 2000) {
  const redis = new lib.Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  let lastError = null;
  redis.on('error', (err) => (lastError = err));
  try {
    await redis.connect();
    const info = await redis.info('server');
    const field = (k) => info.match(new RegExp(`^${k}:(.*)$`, 'm'))?.[1]?.trim() ?? null;
    const pid = Number(field('process_id'));
    const memory = await redis.info('memory');
    const policy = memory.match(/^maxmemory_policy:(.*)$/m)?.[1]?.trim() ?? null;
    const persistence = await redis.config('GET', 'appendonly').catch(() => null);
    const save = await redis.config('GET', 'save').catch(() => null);
    return {
      ok: true,
      version: field('redis_version'),
      pid: Number.isInteger(pid) && cpuSeconds(pid) ? pid : null,
      maxmemoryPolicy: policy,
      appendonly: persistence?.[1] ?? null,
      save: save?.[1] ?? null,
    };
  } catch (err) {
    const e = lastError ?? err;
    return { ok: false, reason: e instanceof Error ? e.message : String(e) };
  } finally {
    redis.disconnect();
  }
}

/**
 * One BullMQ run of a profile: a queue of its own (`bench-<name>-<random>`), one Worker of
 * concurrency `workers` whose processor returns 'ok' at once, `jobs` adds with
 * `publishInFlight` in flight. mode `concurrent`: the adds run while the Worker works,
 * timed from the first add to the last completion; `preload`: every job added first (not
 * timed), then the Worker starts and the drain is timed. Latency: from an add being sent
 * to its job's `completed` event. The queue is obliterated after the run.
 */
export async function runBullmqJobs({
  lib,
  url,
  redisPid,
  name,
  jobs,
  workers,
  mode,
  publishInFlight,
  timeoutMs,
}) {
  const queueName = `bench-${name}-${randomBytes(4).toString('hex')}`;
  const connection = () =>
    new lib.Redis(url, { maxRetriesPerRequest: null, enableOfflineQueue: true });
  const queueConn = connection();
  const workerConn = connection();
  queueConn.on('error', () => {});
  workerConn.on('error', () => {});
  const queue = new lib.Queue(queueName, { connection: queueConn });
  const errors = {};
  const error = (k) => (errors[k] = (errors[k] ?? 0) + 1);
  const sentAt = new Map(); // job id → when its add was sent
  const completedAt = new Map(); // job id → when its completed event came
  const processed = new Map(); // job id → times the processor ran it
  const addMs = [];
  let duplicates = 0;
  let matched = 0;
  let lastDone = 0;
  let publishDone = false;
  let stopReason = null;
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  const stop = (reason) => {
    if (stopReason) return;
    stopReason = reason;
    finish();
  };
  const checkDone = () => {
    if (publishDone && matched === sentAt.size) stop('done');
  };

  const worker = new lib.Worker(
    queueName,
    async (job) => {
      const n = (processed.get(job.id) ?? 0) + 1;
      processed.set(job.id, n);
      if (n > 1) duplicates++;
      return 'ok';
    },
    { connection: workerConn, concurrency: workers, autorun: false },
  );
  worker.on('error', (err) => error(`worker ${err?.code ?? err?.name ?? 'error'}`));
  worker.on('failed', () => error('job failed'));
  worker.on('completed', (job) => {
    const t = performance.now();
    if (completedAt.has(job.id)) {
      duplicates++;
      return;
    }
    completedAt.set(job.id, t);
    if (sentAt.has(job.id)) {
      matched++;
      lastDone = t;
      checkDone();
    }
  });

  let nextJob = 0;
  async function addLane() {
    while (!stopReason) {
      const n = nextJob++;
      if (n >= jobs) return;
      const t0 = performance.now();
      let job;
      try {
        job = await queue.add('bench', { n });
      } catch (err) {
        error(`add ${err?.code ?? err?.name ?? 'error'}`);
        continue;
      }
      addMs.push(performance.now() - t0);
      sentAt.set(job.id, t0);
      const done = completedAt.get(job.id);
      if (done !== undefined) {
        matched++;
        if (done > lastDone) lastDone = done;
      }
    }
  }
  const addAll = () =>
    Promise.all(Array.from({ length: publishInFlight }, addLane)).then(() => {
      publishDone = true;
      checkDone();
    });

  const timeout = setTimeout(() => stop('timeout'), timeoutMs);
  let workerRun = null;
  try {
    await queue.waitUntilReady();
    await worker.waitUntilReady();
    let publishSeconds = null;
    if (mode === 'preload') {
      const p0 = performance.now();
      await addAll();
      publishSeconds = (performance.now() - p0) / 1000;
    }
    const elu0 = performance.eventLoopUtilization();
    const cpu0 = process.cpuUsage();
    const redis0 = redisPid ? cpuSeconds(redisPid) : null;
    const windowStart = performance.now();
    workerRun = worker.run().catch((err) => error(`worker ${err?.name ?? 'error'}`));
    const lanes = mode === 'concurrent' ? [addAll()] : [];
    checkDone();
    await finished;
    const windowEnd = stopReason === 'done' ? Math.max(lastDone, windowStart) : performance.now();
    const seconds = (windowEnd - windowStart) / 1000;
    const wall = (performance.now() - windowStart) / 1000;
    const elu = performance.eventLoopUtilization(elu0).utilization;
    const cpu = process.cpuUsage(cpu0);
    const redis1 = redisPid ? cpuSeconds(redisPid) : null;
    await Promise.allSettled(lanes);
    const latency = [];
    for (const [id, t0] of sentAt) {
      const t1 = completedAt.get(id);
      if (t1 !== undefined) latency.push(t1 - t0);
    }
    // Clock ticks (10 ms): a short run may read 0; never below it.
    const redisSeconds =
      redis0 && redis1
        ? Math.max(0, redis1.user + redis1.system - redis0.user - redis0.system)
        : null;
    const generatorSeconds = (cpu.user + cpu.system) / 1e6;
    const errorCount = Object.values(errors).reduce((a, b) => a + b, 0);
    return {
      peer: 'bullmq',
      queue: queueName,
      stop: stopReason,
      jobs,
      published: sentAt.size,
      fulfilled: matched,
      successPct: (100 * matched) / jobs,
      seconds,
      jobsPerSec: seconds > 0 ? matched / seconds : null,
      publishSeconds,
      latencyMs: {
        p50: percentile(latency, 50),
        p99: percentile(latency, 99),
        max: percentile(latency, 100),
      },
      publishP99Ms: percentile(addMs, 99),
      errors,
      errorCount,
      duplicates,
      // The generator is the Worker here: its CPU is BullMQ's client side.
      generator: {
        elu,
        cpuSeconds: generatorSeconds,
        cpuPct: (100 * generatorSeconds) / wall,
      },
      redis: redisPid
        ? {
            pid: redisPid,
            cpuSeconds: redisSeconds,
            cpuPct: redisSeconds == null ? null : (100 * redisSeconds) / wall,
            usPerJob: redisSeconds != null && matched > 0 ? (1e6 * redisSeconds) / matched : null,
          }
        : null,
    };
  } finally {
    clearTimeout(timeout);
    stop(stopReason ?? 'error');
    await worker.close(true).catch(() => {});
    await workerRun;
    await queue.obliterate({ force: true }).catch((err) => error(`obliterate ${err?.message}`));
    await queue.close().catch(() => {});
    queueConn.disconnect();
    workerConn.disconnect();
  }
}
