// Idle long polls: what holding many waiting claims costs the bus, and whether a publish
// still reaches one of them at once. It opens W connections, each holding a
// `POST /claim?wait=30` for a goal nobody publishes to yet, and reads the bus's RSS before
// and once all W are held (the intent_bus_waiting_requests gauge says when). Then, S times,
// it publishes one intent and times how long until one of the waiting claims answers 200
// (from the publish being sent), and re-opens that claim before the next sample.
//
//   npm run bench:idle -- [--waiters W] [--samples S] [--no-pin]
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { call, metric } from './lib/http.mjs';
import { memory, pinGeneratorBesideServer, startBus, stopAll } from './lib/procs.mjs';
import { percentile } from './lib/stats.mjs';

const { values: opts } = parseArgs({
  options: {
    waiters: { type: 'string', default: '2000' },
    samples: { type: 'string', default: '50' },
    'no-pin': { type: 'boolean', default: false },
  },
});
const W = Number(opts.waiters);
const S = Number(opts.samples);
const GOAL = 'idle.bench';

const { serverCpu, note: pinning } = pinGeneratorBesideServer(opts['no-pin']);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const bus = await startBus({
    cpu: serverCpu,
    logLevel: 'warn',
    extraEnv: { BUS_MAX_WAITERS: String(Math.max(10_000, W + 100)) },
  });
  const waiters = new Pool(bus.url, { connections: W, pipelining: 1 });
  const control = new Pool(bus.url, { connections: 2, pipelining: 1 });
  const auth = { 'content-type': 'application/json', 'x-api-key': bus.secret };
  const gauge = () => metric(control, bus.adminSecret, 'intent_bus_waiting_requests');
  const untilWaiting = async (n, timeoutMs = 60_000) => {
    const deadline = performance.now() + timeoutMs;
    while ((await gauge()) !== n) {
      if (performance.now() > deadline) throw new Error(`the bus never held ${n} waiting claims`);
      await sleep(20);
    }
  };
  let stopping = false;
  /** Answers of the held claims: the time each 200 arrived, in order. */
  const arrivals = [];
  let arrived = null;
  const hold = (i) =>
    call(waiters, 'POST', `/claim?goal=${GOAL}&wait=30`, { ...auth, 'x-worker-id': `idle-${i}` })
      .then((res) => {
        if (stopping) return;
        if (res.status === 200) {
          arrivals.push(performance.now());
          arrived?.();
        }
        // 204 (the 30 s ran out) or 200: hold again.
        hold(i);
      })
      .catch(() => {
        if (!stopping) setTimeout(() => hold(i), 100);
      });
  try {
    // Warm the bus's request path before the first reading.
    for (let i = 0; i < 200; i++) await call(control, 'GET', '/health', {});
    await sleep(500);
    const before = memory(bus.pid).rssMb;
    const t0 = performance.now();
    for (let i = 0; i < W; i++) hold(i);
    await untilWaiting(W);
    const openSeconds = (performance.now() - t0) / 1000;
    await sleep(1000);
    const held = memory(bus.pid).rssMb;

    const wakeMs = [];
    for (let s = 0; s < S; s++) {
      const got = new Promise((r) => (arrived = r));
      const sent = performance.now();
      const res = await call(control, 'POST', '/intent', auth, `{"goal":"${GOAL}","payload":{}}`);
      if (res.status !== 201) throw new Error(`publish: ${res.status} ${res.text()}`);
      await got;
      wakeMs.push(arrivals.at(-1) - sent);
      await untilWaiting(W);
    }
    const after = memory(bus.pid).rssMb;
    const sorted = [...wakeMs].sort((a, b) => a - b);
    const result = {
      waiters: W,
      samples: S,
      openSeconds,
      rssMb: { before, held, after, growth: held - before },
      wakeMs: { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) },
    };
    console.log(
      `${W} idle long-poll claims held (opened in ${openSeconds.toFixed(1)} s): bus RSS ` +
        `${before.toFixed(0)} MB → ${held.toFixed(0)} MB (+${(held - before).toFixed(0)} MB); ` +
        `publish → a waiting claim answered, ${S} samples: p50 ${result.wakeMs.p50.toFixed(1)} ms, ` +
        `p99 ${result.wakeMs.p99.toFixed(1)} ms, max ${result.wakeMs.max.toFixed(1)} ms` +
        `; ${pinning}`,
    );
    console.log(JSON.stringify(result));
  } finally {
    stopping = true;
    await Promise.all([waiters.destroy(), control.destroy()]);
    await stopAll();
  }
}

await main();
