// Idle event streams (GET /events, issue 20): what holding many open streams costs the bus,
// and how long one change takes to reach all of them. It opens N streams (the main key),
// reads the bus's RSS before and once all N are open (the intent_bus_event_streams gauge
// says when), then publishes S intents one at a time and times how long until every
// stream has the `published` record of each (from the publish being sent).
//
//   npm run bench:streams -- [--streams N] [--samples S] [--no-pin]
import http from 'node:http';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { call, metric } from './lib/http.mjs';
import { memory, pinGeneratorBesideServer, startBus, stopAll } from './lib/procs.mjs';
import { percentile } from './lib/stats.mjs';

const { values: opts } = parseArgs({
  options: {
    streams: { type: 'string', default: '1000' },
    samples: { type: 'string', default: '10' },
    'no-pin': { type: 'boolean', default: false },
  },
});
const N = Number(opts.streams);
const S = Number(opts.samples);
const GOAL = 'streams.bench';

const { serverCpu, note: pinning } = pinGeneratorBesideServer(opts['no-pin']);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const bus = await startBus({
    cpu: serverCpu,
    logLevel: 'warn',
    extraEnv: { BUS_MAX_STREAMS: String(Math.max(10_000, N + 10)) },
  });
  const control = new Pool(bus.url, { connections: 2, pipelining: 1 });
  const gauge = () => metric(control, bus.adminSecret, 'intent_bus_event_streams');
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const requests = [];
  /** For each id published, how many streams have it. */
  const seen = new Map();
  let onSeen = () => {};
  const open = () =>
    new Promise((resolve, reject) => {
      const req = http.get(
        `${bus.url}/events?goal=${GOAL}`,
        { agent, headers: { 'x-api-key': bus.secret } },
        (res) => {
          res.setEncoding('utf8');
          res.on('data', (chunk) => {
            for (const m of chunk.matchAll(/"type":"published","id":"([0-9a-f]{32})"/g)) {
              seen.set(m[1], (seen.get(m[1]) ?? 0) + 1);
              onSeen();
            }
          });
          resolve();
        },
      );
      req.on('error', reject);
      requests.push(req);
    });
  try {
    for (let i = 0; i < 200; i++) await call(control, 'GET', '/health', {});
    await sleep(500);
    const before = memory(bus.pid).rssMb;
    const t0 = performance.now();
    for (let i = 0; i < N; i += 100)
      await Promise.all(Array.from({ length: Math.min(100, N - i) }, open));
    while ((await gauge()) !== N) await sleep(20);
    const openSeconds = (performance.now() - t0) / 1000;
    await sleep(1000);
    const held = memory(bus.pid).rssMb;
    const fanOutMs = [];
    for (let s = 0; s < S; s++) {
      const sent = performance.now();
      const res = await call(
        control,
        'POST',
        '/intent',
        { 'content-type': 'application/json', 'x-api-key': bus.secret },
        `{"goal":"${GOAL}","payload":{}}`,
      );
      if (res.status !== 201) throw new Error(`publish: ${res.status} ${res.text()}`);
      const id = JSON.parse(res.text()).id;
      await new Promise((r) => {
        onSeen = () => (seen.get(id) ?? 0) >= N && r();
        onSeen();
      });
      fanOutMs.push(performance.now() - sent);
    }
    const sorted = [...fanOutMs].sort((a, b) => a - b);
    const result = {
      streams: N,
      samples: S,
      openSeconds,
      rssMb: { before, held, growth: held - before },
      fanOutMs: { p50: percentile(sorted, 50), max: sorted.at(-1) },
    };
    console.log(
      `${N} idle event streams open (in ${openSeconds.toFixed(1)} s): bus RSS ` +
        `${before.toFixed(0)} MB → ${held.toFixed(0)} MB (+${(held - before).toFixed(0)} MB); ` +
        `a publish reached all of them, ${S} samples: p50 ${result.fanOutMs.p50.toFixed(1)} ms, ` +
        `max ${result.fanOutMs.max.toFixed(1)} ms; ${pinning}`,
    );
    console.log(JSON.stringify(result));
  } finally {
    for (const r of requests) r.destroy();
    await control.destroy();
    await stopAll();
  }
}

await main();
