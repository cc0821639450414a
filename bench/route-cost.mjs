// What one request of each kind costs the bus: the server's CPU time (user and system) per
// request, route by route, with the trivial route of the same stack as the reference.
// Each step sends a fixed number of requests at a fixed concurrency and reads the bus's
// /proc/<pid>/stat before and after. The steps run in order on one bus: publish N intents,
// claim them all, fulfil them all; then claims that find nothing and health checks.
//
//   npm run bench:routes -- [--requests N] [--concurrency C] [--repeat R] [--log-level L]
//                           [--no-pin] [--cpu-prof DIR]
//
// Timings on a shared machine are noisy: compare the rows of one invocation as ratios.
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { call } from './lib/http.mjs';
import {
  cpuSeconds,
  pinGeneratorBesideServer,
  startBus,
  startNoop,
  stopAll,
} from './lib/procs.mjs';

const { values: opts } = parseArgs({
  options: {
    requests: { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: '16' },
    repeat: { type: 'string', default: '3' },
    'no-pin': { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    'log-level': { type: 'string', default: 'warn' },
  },
});
const N = Number(opts.requests);
const C = Number(opts.concurrency);
const REPEAT = Number(opts.repeat);

const { serverCpu, note: pinning } = pinGeneratorBesideServer(opts['no-pin']);

/** Sends `count` requests made by `make(i)` over C connections; returns the server's cost. */
async function measure(pool, pid, count, make) {
  let next = 0;
  let failed = 0;
  const before = cpuSeconds(pid);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (next < count) {
        const i = next++;
        const [method, path, headers, body, expect] = make(i);
        const res = await call(pool, method, path, headers, body);
        if (res.status !== expect) failed++;
        make.answer?.(i, res);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const after = cpuSeconds(pid);
  return {
    reqPerSec: count / seconds,
    userUs: (1e6 * (after.user - before.user)) / count,
    systemUs: (1e6 * (after.system - before.system)) / count,
    failed,
  };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const noop = await startNoop({ cpu: serverCpu });
  const bus = await startBus({
    cpu: serverCpu,
    logLevel: opts['log-level'],
    cpuProfDir: opts['cpu-prof'],
  });
  const poolOf = (url) => new Pool(url, { connections: C, pipelining: 1 });
  const noopPool = poolOf(noop.url);
  const busPool = poolOf(bus.url);
  const json = { 'content-type': 'application/json' };
  const auth = { ...json, 'x-api-key': bus.secret };
  const rows = new Map();
  const add = (name, r) => {
    if (!rows.has(name)) rows.set(name, []);
    rows.get(name).push(r);
  };
  try {
    for (let rep = 0; rep < REPEAT; rep++) {
      const goal = `routes.${rep}`;
      add(
        'noop (ceiling)',
        await measure(noopPool, noop.pid, N, () => ['POST', '/noop', json, '{"n":1}', 200]),
      );
      add(
        'GET /health',
        await measure(busPool, bus.pid, N, () => ['GET', '/health', {}, undefined, 200]),
      );
      const ids = new Array(N);
      const publish = () => ['POST', '/intent', auth, `{"goal":"${goal}","payload":{"n":1}}`, 201];
      publish.answer = (i, res) => (ids[i] = JSON.parse(res.text()).id);
      add('POST /intent', await measure(busPool, bus.pid, N, publish));
      const claimed = [];
      const claim = () => [
        'POST',
        `/claim?goal=${goal}`,
        { ...auth, 'x-worker-id': 'w' },
        undefined,
        200,
      ];
      claim.answer = (i, res) => {
        const b = JSON.parse(res.text());
        claimed.push([b.id, b.claim_token]);
      };
      add('POST /claim (a job)', await measure(busPool, bus.pid, N, claim));
      add(
        'POST /fulfill',
        await measure(busPool, bus.pid, claimed.length, (i) => [
          'POST',
          `/fulfill/${claimed[i][0]}`,
          auth,
          `{"claim_token":"${claimed[i][1]}","result":"ok"}`,
          200,
        ]),
      );
      add(
        'POST /claim (none)',
        await measure(busPool, bus.pid, N, () => [
          'POST',
          `/claim?goal=${goal}`,
          auth,
          undefined,
          204,
        ]),
      );
      await bus.purge();
    }
  } finally {
    await Promise.all([noopPool.destroy(), busPool.destroy()]);
    await stopAll();
  }
  const head = ['route', 'req/s', 'user µs', 'sys µs', 'cpu µs/req', '× ceiling', 'failed'];
  const ceiling = median(rows.get('noop (ceiling)').map((r) => r.userUs + r.systemUs));
  const table = [...rows].map(([name, rs]) => {
    const cpu = median(rs.map((r) => r.userUs + r.systemUs));
    return [
      name,
      median(rs.map((r) => r.reqPerSec)).toFixed(0),
      median(rs.map((r) => r.userUs)).toFixed(0),
      median(rs.map((r) => r.systemUs)).toFixed(0),
      cpu.toFixed(0),
      (cpu / ceiling).toFixed(1),
      String(rs.reduce((s, r) => s + r.failed, 0)),
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((r) => r[i].length)));
  const line = (cells) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(`${N} requests per step, ${C} connections, median of ${REPEAT}; ` + pinning);
  console.log(line(head));
  for (const r of table) console.log(line(r));
  if (table.some((r) => r[6] !== '0')) process.exitCode = 1;
}

await main();
