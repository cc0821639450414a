// The load generator: the protocol over HTTP/1.1 keep-alive with undici's Pool (through
// its dispatch API, see http.mjs), as little work per request as we can manage (bodies
// built as strings), so that the generator is not what limits a run. Its own event-loop
// utilisation and CPU are measured beside every result to show when it is.
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { call } from './http.mjs';
import { cpuLoad, cpuSeconds, cpuTimes, io, memory, resetPeakRss, schedSeconds } from './procs.mjs';
import { percentile } from './stats.mjs';

const POOL_OPTIONS = {
  pipelining: 1,
  keepAliveTimeout: 60_000,
  keepAliveMaxTimeout: 600_000,
  // A long poll holds a claim open up to `wait` seconds (at most 30).
  headersTimeout: 60_000,
  bodyTimeout: 60_000,
};

const netKind = (err) => `network:${err?.code ?? err?.name ?? 'error'}`;

/**
 * Measures what the run cost the server (each bus node, summed), the generator and, with
 * `pg` ({ snapshot(), delta(a, b) }, see postgres.mjs), the PostgreSQL cluster, from
 * `begin()` to `end()`, and how busy the two pinned CPUs were. `noisePct`: without `pg`,
 * the server CPU's busy time that was not the server's; with `pg`, whose processes run on
 * both CPUs, the busy time of both pinned CPUs that was neither the nodes', PostgreSQL's
 * (the bench's backends and the shared processes) nor the generator's, in % of one core.
 */
function costMeter(serverPids, pinned, pg = null) {
  let elu0, cpu0, srv0, t0, times0, io0, pg0, sched0, genSched0;
  return {
    begin() {
      times0 = pinned ? cpuTimes() : null;
      t0 = performance.now();
      elu0 = performance.eventLoopUtilization();
      cpu0 = process.cpuUsage();
      srv0 = serverPids.map(cpuSeconds);
      sched0 = serverPids.map(schedSeconds);
      genSched0 = schedSeconds(process.pid);
      io0 = serverPids.map(io);
      pg0 = pg ? pg.snapshot() : null;
      pg?.sampler?.start();
    },
    end() {
      const seconds = (performance.now() - t0) / 1000;
      const pgCost = pg ? pg.delta(pg0, pg.snapshot()) : null;
      const pgActivity = pg?.sampler ? pg.sampler.stop() : null;
      const elu = performance.eventLoopUtilization(elu0).utilization;
      const cpu = process.cpuUsage(cpu0);
      const nodes = serverPids.map((pid, i) => {
        const a = srv0[i];
        const b = cpuSeconds(pid);
        const user = a == null || b == null ? null : b.user - a.user;
        const system = a == null || b == null ? null : b.system - a.system;
        const total = user == null ? null : user + system;
        const ioA = io0[i];
        const ioB = io(pid);
        const sA = sched0[i];
        const sB = schedSeconds(pid);
        return {
          pid,
          user,
          system,
          cpuSeconds: total,
          cpuPct: total == null ? null : (100 * total) / seconds,
          // Its main thread (the event loop) runnable but waiting for a CPU, in % of the window.
          runQueuePct: sA && sB ? (100 * (sB.wait - sA.wait)) / seconds : null,
          io:
            ioA && ioB
              ? {
                  writtenMb: (ioB.wchar - ioA.wchar) / 2 ** 20,
                  writeSyscalls: ioB.syscw - ioA.syscw,
                  storageMb: (ioB.writeBytes - ioA.writeBytes) / 2 ** 20,
                }
              : null,
          ...memory(pid),
        };
      });
      const known = nodes.every((n) => n.cpuSeconds != null);
      const srvUser = known ? nodes.reduce((a, n) => a + n.user, 0) : null;
      const srvSystem = known ? nodes.reduce((a, n) => a + n.system, 0) : null;
      const srvCpu = known ? srvUser + srvSystem : null;
      const times1 = pinned ? cpuTimes() : null;
      const serverCore = pinned ? cpuLoad(times0, times1, pinned.serverCpu) : null;
      const generatorCore = pinned ? cpuLoad(times0, times1, pinned.generatorCpu) : null;
      const serverCpuPct = srvCpu == null ? null : (100 * srvCpu) / seconds;
      const ioKnown = nodes.every((n) => n.io != null);
      const sumIo = (k) => nodes.reduce((a, n) => a + n.io[k], 0);
      const ioDelta = ioKnown
        ? {
            writtenMb: sumIo('writtenMb'),
            writeSyscalls: sumIo('writeSyscalls'),
            storageMb: sumIo('storageMb'),
          }
        : null;
      const generatorSeconds = (cpu.user + cpu.system) / 1e6;
      const genSched1 = schedSeconds(process.pid);
      let noisePct = null;
      let accountedPct = null;
      if (pg) {
        if (serverCore && generatorCore && srvCpu != null) {
          accountedPct = (100 * (srvCpu + pgCost.cpuSeconds + generatorSeconds)) / seconds;
          noisePct = Math.max(0, serverCore.busyPct + generatorCore.busyPct - accountedPct);
        }
      } else if (serverCore && serverCpuPct != null) {
        noisePct = Math.max(0, serverCore.busyPct - serverCpuPct);
      }
      const peaks = nodes.map((n) => n.peakRssMb).filter((x) => x != null);
      return {
        cores: {
          server: serverCore,
          generator: generatorCore,
          noisePct,
          ...(pg ? { accountedPct } : {}),
        },
        server: {
          cpuSeconds: srvCpu,
          // The kernel's share: system calls (socket writes, SQLite's file I/O and locks).
          systemPct: srvCpu ? (100 * srvSystem) / srvCpu : null,
          cpuPct: serverCpuPct,
          io: ioDelta,
          ...(nodes.length === 1
            ? memory(serverPids[0])
            : {
                peakRssMb: peaks.length ? Math.max(...peaks) : null,
                rssMb: nodes.reduce((a, n) => a + (n.rssMb ?? 0), 0),
              }),
          nodes,
        },
        generator: {
          elu,
          cpuSeconds: generatorSeconds,
          cpuPct: (100 * generatorSeconds) / seconds,
          runQueuePct:
            genSched0 && genSched1 ? (100 * (genSched1.wait - genSched0.wait)) / seconds : null,
        },
        ...(pg
          ? {
              postgres: {
                ...pgCost,
                cpuPct: (100 * pgCost.cpuSeconds) / seconds,
                runQueuePct:
                  pgCost.runQueueSeconds == null ? null : (100 * pgCost.runQueueSeconds) / seconds,
                byKindPct: Object.fromEntries(
                  Object.entries(pgCost.byKind).map(([k, v]) => [k, (100 * v) / seconds]),
                ),
                ...(pgActivity ? { activity: pgActivity } : {}),
              },
            }
          : {}),
      };
    },
  };
}

/**
 * One run: `jobs` intents of a goal of their own, `workers` loops of claim → fulfil.
 * mode `concurrent`: a publisher with `publishInFlight` publishes in flight while the
 * workers run, timed from the first publish to the last fulfil; `preload`: everything
 * published first (not timed), then the drain is timed. `next` [ext]: each fulfil also
 * claims the worker's next job (fulfil?next=1 with the claim's query, issue 21), so a job
 * costs one worker request instead of two. Several nodes (`urls`,
 * `serverPids`): worker w talks to node w mod N only, publish n goes to node n mod N.
 * `batch` > 1 [ext] (issue 21): publishes go `batch` at a time (POST /intents), a worker
 * claims up to `batch` (POST /claim?max=) and fulfils them in one request (POST /fulfill).
 */
export async function runJobs({
  url,
  urls = [url],
  key,
  serverPid,
  serverPids = [serverPid],
  pg = null,
  goal,
  jobs,
  workers,
  mode,
  waitSeconds,
  publishInFlight,
  timeoutMs,
  pinned,
  next = false,
  batch = 1,
}) {
  const keepAlive = { ...POOL_OPTIONS };
  const N = urls.length;
  const pubPools = urls.map((u) => new Pool(u, { ...keepAlive, connections: publishInFlight }));
  const workPools = urls.map(
    (u, i) => new Pool(u, { ...keepAlive, connections: Math.ceil((workers - i) / N) }),
  );
  const pools = [...pubPools, ...workPools];
  const nodeRequests = urls.map(() => 0);
  let stopped = false;
  let stopReason = null;
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  const sleepers = new Set();
  const sleep = (ms) =>
    new Promise((resolve) => {
      if (stopped) return resolve();
      const wake = () => {
        clearTimeout(timer);
        sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      sleepers.add(wake);
    });
  const stop = (reason) => {
    if (stopped) return;
    stopped = true;
    stopReason = reason;
    for (const wake of [...sleepers]) wake();
    // Ends the requests in flight (long polls included): they fail, their loops see `stopped`.
    for (const pool of pools) pool.destroy().catch(() => {});
    finish();
  };

  const errors = {};
  const error = (step, kind) => {
    const k = `${step} ${kind}`;
    errors[k] = (errors[k] ?? 0) + 1;
  };

  const sentAt = new Map(); // id → when its publish request was sent
  const fulfilledAt = new Map(); // id → when its fulfil was answered 200
  const claimedIds = new Set();
  const publishMs = [];
  const claimMs = [];
  const fulfilMs = [];
  let matched = 0; // ids both published (201 seen) and fulfilled
  let lastFulfil = 0;
  let publishDone = false;
  let timing = false;
  let windowRequests = 0;
  let claims204 = 0;
  let duplicates = 0;
  let reclaims = 0;

  const checkDone = () => {
    if (publishDone && matched === sentAt.size) stop('done');
  };

  let nextJob = 0;
  const pubHeaders = { 'content-type': 'application/json', 'x-api-key': key };
  const goalJson = JSON.stringify(goal);
  /** A publish of `id` sent at `t0` was acknowledged. */
  function acknowledged(id, t0) {
    sentAt.set(id, t0);
    const done = fulfilledAt.get(id);
    if (done !== undefined) {
      // Its fulfil was answered before its publish was: rare, counted all the same.
      matched++;
      if (done > lastFulfil) lastFulfil = done;
    }
  }
  async function publishLane() {
    while (!stopped) {
      const n = nextJob++;
      if (n >= jobs) return;
      const body = `{"goal":${goalJson},"payload":{"n":${n}}}`;
      const node = n % N;
      const t0 = performance.now();
      let res;
      try {
        res = await call(pubPools[node], 'POST', '/intent', pubHeaders, body);
      } catch (err) {
        if (stopped) return;
        error('publish', netKind(err));
        continue;
      }
      const t1 = performance.now();
      if (timing) {
        windowRequests++;
        nodeRequests[node]++;
      }
      if (res.status !== 201) {
        error('publish', res.status);
        if (res.status === 503 || res.status === 429) await sleep(res.retryAfterMs(100));
        continue;
      }
      publishMs.push(t1 - t0);
      acknowledged(JSON.parse(res.text()).id, t0);
    }
  }
  // [ext] A batch of publishes: `batch` job numbers, one request, each item's answer.
  async function publishBatchLane() {
    while (!stopped) {
      const n0 = nextJob;
      if (n0 >= jobs) return;
      const k = Math.min(batch, jobs - n0);
      nextJob += k;
      const items = [];
      for (let n = n0; n < n0 + k; n++) items.push(`{"goal":${goalJson},"payload":{"n":${n}}}`);
      const node = ((n0 / batch) % N) | 0;
      const t0 = performance.now();
      let res;
      try {
        res = await call(pubPools[node], 'POST', '/intents', pubHeaders, `{"intents":[${items}]}`);
      } catch (err) {
        if (stopped) return;
        error('publish', netKind(err));
        continue;
      }
      const t1 = performance.now();
      if (timing) {
        windowRequests++;
        nodeRequests[node]++;
      }
      if (res.status !== 200) {
        error('publish', res.status);
        if (res.status === 503 || res.status === 429) await sleep(res.retryAfterMs(100));
        continue;
      }
      publishMs.push(t1 - t0);
      for (const r of JSON.parse(res.text()).results) {
        if (r.status !== 201) {
          error('publish item', r.status);
          continue;
        }
        acknowledged(r.body.id, t0);
      }
    }
  }
  const publishAll = () =>
    Promise.all(
      Array.from({ length: publishInFlight }, batch > 1 ? publishBatchLane : publishLane),
    ).then(() => {
      publishDone = true;
      checkDone();
    });

  const goalQuery = `goal=${encodeURIComponent(goal)}`;
  const claimPath = `/claim?${goalQuery}${waitSeconds > 0 ? `&wait=${waitSeconds}` : ''}`;
  // [ext] `next` (issue 21): each fulfil claims the worker's next job, with the claim's query
  // but no wait, as the SDK's runtime does: the fulfil's own answer is never held back; a
  // 204 sends the worker to its long poll at once.
  const fulfilQuery = next ? `?next=1&${goalQuery}` : '';
  async function worker(w) {
    const headers = { 'x-api-key': key, 'x-worker-id': `bench-${w}` };
    const fulHeaders = { ...headers, 'content-type': 'application/json' };
    const node = w % N;
    const workPool = workPools[node];
    let carried = null; // the job the last fulfil?next=1 claimed
    while (!stopped) {
      let claim = carried;
      carried = null;
      let t1 = performance.now();
      if (claim === null) {
        const t0 = t1;
        let res;
        try {
          res = await call(workPool, 'POST', claimPath, headers, null);
        } catch (err) {
          if (stopped) return;
          error('claim', netKind(err));
          await sleep(100);
          continue;
        }
        t1 = performance.now();
        if (timing) {
          windowRequests++;
          nodeRequests[node]++;
        }
        if (res.status === 204) {
          claims204++;
          await sleep(res.retryAfterMs(1000));
          continue;
        }
        if (res.status !== 200) {
          error('claim', res.status);
          await sleep(res.retryAfterMs(100));
          continue;
        }
        claimMs.push(t1 - t0);
        claim = JSON.parse(res.text());
      }
      const id = claim.id;
      if (claimedIds.has(id)) reclaims++;
      else claimedIds.add(id);
      const body = `{"claim_token":"${claim.claim_token}","result":"ok","result_type":"text"}`;
      let res;
      try {
        res = await call(workPool, 'POST', `/fulfill/${id}${fulfilQuery}`, fulHeaders, body);
      } catch (err) {
        if (stopped) return;
        error('fulfill', netKind(err));
        continue;
      }
      const t2 = performance.now();
      if (timing) {
        windowRequests++;
        nodeRequests[node]++;
      }
      // With `next`: 200 is the next job, 204 none; the fulfil itself is told in
      // X-Intent-Done either way.
      const ok = next ? res.status === 200 || res.status === 204 : res.status === 200;
      if (!ok) {
        // 404: the token was not live any more, someone else holds (or held) the job.
        if (res.status === 404) duplicates++;
        error('fulfill', res.status);
        continue;
      }
      fulfilMs.push(t2 - t1);
      if (next) {
        if (res.status === 200) carried = JSON.parse(res.text());
        else claims204++;
      }
      if (fulfilledAt.has(id)) {
        duplicates++;
        continue;
      }
      fulfilledAt.set(id, t2);
      if (sentAt.has(id)) {
        matched++;
        lastFulfil = t2;
        checkDone();
      }
    }
  }

  // [ext] A worker of batches: claims up to `batch`, fulfils them all in one request.
  const claimManyPath = `${claimPath}&max=${batch}`;
  async function batchWorker(w) {
    const headers = { 'x-api-key': key, 'x-worker-id': `bench-${w}` };
    const fulHeaders = { ...headers, 'content-type': 'application/json' };
    const node = w % N;
    const workPool = workPools[node];
    while (!stopped) {
      const t0 = performance.now();
      let res;
      try {
        res = await call(workPool, 'POST', claimManyPath, headers, null);
      } catch (err) {
        if (stopped) return;
        error('claim', netKind(err));
        await sleep(100);
        continue;
      }
      const t1 = performance.now();
      if (timing) {
        windowRequests++;
        nodeRequests[node]++;
      }
      if (res.status === 204) {
        claims204++;
        await sleep(res.retryAfterMs(1000));
        continue;
      }
      if (res.status !== 200) {
        error('claim', res.status);
        await sleep(res.retryAfterMs(100));
        continue;
      }
      claimMs.push(t1 - t0);
      const claims = JSON.parse(res.text());
      for (const c of claims) {
        if (claimedIds.has(c.id)) reclaims++;
        else claimedIds.add(c.id);
      }
      const items = claims.map(
        (c) =>
          `{"id":"${c.id}","claim_token":"${c.claim_token}","result":"ok","result_type":"text"}`,
      );
      try {
        res = await call(workPool, 'POST', '/fulfill', fulHeaders, `{"items":[${items}]}`);
      } catch (err) {
        if (stopped) return;
        error('fulfill', netKind(err));
        continue;
      }
      const t2 = performance.now();
      if (timing) {
        windowRequests++;
        nodeRequests[node]++;
      }
      if (res.status !== 200) {
        error('fulfill', res.status);
        continue;
      }
      fulfilMs.push(t2 - t1);
      JSON.parse(res.text()).results.forEach((r, i) => {
        const id = claims[i].id;
        if (r.status !== 200) {
          if (r.status === 404) duplicates++;
          error('fulfill item', r.status);
          return;
        }
        if (fulfilledAt.has(id)) {
          duplicates++;
          return;
        }
        fulfilledAt.set(id, t2);
        if (sentAt.has(id)) {
          matched++;
          lastFulfil = t2;
        }
      });
      checkDone();
    }
  }

  const meter = costMeter(serverPids, pinned, pg);
  const peakReset = serverPids.map(resetPeakRss).every(Boolean);
  const timeout = setTimeout(() => stop('timeout'), timeoutMs);
  let publishSeconds = null;
  const lanes = [];
  try {
    if (mode === 'preload') {
      const p0 = performance.now();
      await publishAll();
      publishSeconds = (performance.now() - p0) / 1000;
    }
    timing = true;
    meter.begin();
    const windowStart = performance.now();
    if (mode === 'concurrent') lanes.push(publishAll());
    for (let w = 0; w < workers; w++) lanes.push(batch > 1 ? batchWorker(w) : worker(w));
    if (!stopped) checkDone();
    await finished;
    const windowEnd = stopReason === 'done' ? Math.max(lastFulfil, windowStart) : performance.now();
    const cost = meter.end();
    await Promise.allSettled(lanes);

    const seconds = (windowEnd - windowStart) / 1000;
    const latency = [];
    for (const [id, t0] of sentAt) {
      const t1 = fulfilledAt.get(id);
      if (t1 !== undefined) latency.push(t1 - t0);
    }
    const errorCount = Object.values(errors).reduce((a, b) => a + b, 0);
    return {
      stop: stopReason,
      jobs,
      published: sentAt.size,
      fulfilled: matched,
      successPct: (100 * matched) / jobs,
      seconds,
      jobsPerSec: seconds > 0 ? matched / seconds : null,
      requests: windowRequests,
      ...(N > 1 ? { requestsByNode: nodeRequests } : {}),
      reqPerSec: seconds > 0 ? windowRequests / seconds : null,
      publishSeconds,
      latencyMs: {
        p50: percentile(latency, 50),
        p99: percentile(latency, 99),
        max: percentile(latency, 100),
      },
      publishP50Ms: percentile(publishMs, 50),
      publishP99Ms: percentile(publishMs, 99),
      claimP99Ms: percentile(claimMs, 99),
      fulfilP99Ms: percentile(fulfilMs, 99),
      claims204,
      errors,
      errorCount,
      duplicates,
      reclaims,
      orphans: fulfilledAt.size - matched,
      server: { ...cost.server, peakIsThisRun: peakReset },
      generator: cost.generator,
      cores: cost.cores,
      ...(cost.postgres ? { postgres: cost.postgres } : {}),
    };
  } finally {
    clearTimeout(timeout);
    stop(stopReason ?? 'error');
    await Promise.allSettled(lanes);
    await Promise.allSettled(pools.map((p) => p.destroy()));
  }
}

/**
 * The ceiling: `concurrency` loops of POST /noop (a small JSON body, a small JSON answer,
 * parsed like the bus's) against the trivial server for `seconds`.
 */
export async function runCeiling({ url, serverPid, concurrency, seconds, pinned }) {
  const pool = new Pool(url, { ...POOL_OPTIONS, connections: concurrency });
  const headers = { 'content-type': 'application/json' };
  const body = '{"n":1}';
  const latency = [];
  const errors = {};
  let count = 0;
  const meter = costMeter([serverPid], pinned);
  meter.begin();
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  async function lane() {
    while (performance.now() < end) {
      const a = performance.now();
      try {
        const res = await call(pool, 'POST', '/noop', headers, body);
        JSON.parse(res.text());
        if (res.status === 200) {
          count++;
          latency.push(performance.now() - a);
        } else {
          errors[res.status] = (errors[res.status] ?? 0) + 1;
        }
      } catch (err) {
        const k = netKind(err);
        errors[k] = (errors[k] ?? 0) + 1;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: concurrency }, lane));
    const elapsed = (performance.now() - t0) / 1000;
    const cost = meter.end();
    return {
      concurrency,
      requests: count,
      seconds: elapsed,
      reqPerSec: count / elapsed,
      p99Ms: percentile(latency, 99),
      errors,
      server: { cpuPct: cost.server.cpuPct },
      generator: cost.generator,
      cores: cost.cores,
    };
  } finally {
    await pool.destroy();
  }
}
