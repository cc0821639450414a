/**
 * Client faults against the real `serve` process (issue 8): workers killed mid-job (the
 * real CLI worker, SIGKILLed with the command it runs), clients that vanish mid-request
 * and mid-long-poll, and 2,000 idle long polls at once with the server's memory and file
 * descriptors read from /proc; on both stores. A client trickling its headers is in
 * transport.test.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, MAIN_KEY, makeApi, type Api } from '../helpers.js';
import { claimAll, publishMany, storeFixture, type ServerProcess } from '../process-helpers.js';

const CLI = fileURLToPath(new URL('../../../cli/bin/intent-bus.js', import.meta.url));
const LEASE_SECONDS = 2;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The server's resident memory (MB) and open file descriptors, from /proc. */
function procStats(pid: number): { rssMb: number; fds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return { rssMb: rssKb / 1024, fds: readdirSync(`/proc/${pid}/fd`).length };
}

/** A gauge or counter of /metrics (unlabelled). */
async function metric(url: string, name: string): Promise<number> {
  const text = await (
    await fetch(`${url}/metrics`, { headers: { 'x-admin-token': ADMIN_TOKEN } })
  ).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`no ${name} in /metrics`);
  return Number(m[1]);
}

async function until(what: string, ok: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await ok())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function countStatus(api: Api, status: string, goal: string): Promise<number> {
  const r = await api('GET', `/admin/intents?status=${status}&goal=${goal}&limit=200`, {
    admin: true,
  });
  expect(r.status).toBe(200);
  return (r.json.items as unknown[]).length;
}

/** A raw HTTP request on its own socket, for what fetch cannot do (stop halfway). */
function rawSocket(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), hostname, () => resolve(s));
    s.once('error', reject);
  });
}

describe.each(['sqlite', 'postgres'] as const)('client faults on %s', (store) => {
  const data = storeFixture(store);
  let server: ServerProcess;
  let api: Api;
  const workers: ChildProcess[] = [];
  beforeAll(async () => {
    server = await data.start({
      BUS_LOG_LEVEL: 'info',
      BUS_CLAIM_TIMEOUT_SECONDS: String(LEASE_SECONDS),
    });
    api = makeApi(server.url);
  });
  afterAll(async () => {
    for (const w of workers) {
      try {
        process.kill(-w.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await data.cleanup();
  });

  /** The real CLI worker, in a process group of its own (so its command dies with it). */
  const cliWorker = (goal: string, exec: string, concurrency: number): ChildProcess => {
    const w = spawn(
      process.execPath,
      [CLI, 'listen', goal, '--exec', exec, '--concurrency', String(concurrency), '--wait', '1'],
      {
        detached: true,
        stdio: 'ignore',
        env: { PATH: process.env.PATH, INTENT_BUS_URL: server.url, INTENT_API_KEY: MAIN_KEY },
      },
    );
    workers.push(w);
    return w;
  };

  it('brings back the jobs of workers killed mid-job, once their leases expire', async () => {
    const goal = 'clients.killed';
    const ids = await publishMany(api, goal, 20);
    // Four workers each take two jobs and hang in them.
    const doomed = Array.from({ length: 4 }, () => cliWorker(goal, 'sleep 60', 2));
    await until('8 jobs claimed', async () => (await countStatus(api, 'claimed', goal)) === 8);
    for (const w of doomed) process.kill(-w.pid!, 'SIGKILL');
    const killedAt = performance.now();
    // A healthy worker finishes everything, the 8 cut jobs after their leases expired.
    cliWorker(goal, 'true', 4);
    await until(
      'every job fulfilled',
      async () => (await countStatus(api, 'fulfilled', goal)) === 20,
      LEASE_SECONDS * 1000 + 20_000,
    );
    expect(performance.now() - killedAt).toBeGreaterThan(LEASE_SECONDS * 1000 - 500);
    let retried = 0;
    for (const id of ids) {
      const s = await api('GET', `/status/${id}`);
      expect(s.json.status).toBe('fulfilled');
      if (s.json.claim_attempts > 1) retried++;
    }
    expect(retried).toBe(8);
  }, 60_000);

  it('loses nothing to clients that vanish mid-long-poll and mid-request', async () => {
    const goal = 'clients.vanish';
    const base = await metric(server.url, 'intent_bus_waiting_requests');
    // 100 long polls, each abandoned at a random moment while 100 intents are published.
    const polls = Array.from({ length: 100 }, async () => {
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 50 + Math.random() * 400);
      try {
        const r = await fetch(`${server.url}/claim?goal=${goal}&wait=20`, {
          method: 'POST',
          headers: { 'x-api-key': MAIN_KEY },
          signal: ac.signal,
        });
        // An answer that arrived before the abort: this client holds the lease and leaves.
        if (r.status === 200) return ((await r.json()) as { id: string }).id;
        await r.arrayBuffer();
      } catch {
        // aborted
      }
      return null;
    });
    await sleep(100);
    const published = await publishMany(api, goal, 100);
    // 200 requests cut halfway: headers sent, half the body, then the socket closed.
    const halves = Array.from({ length: 200 }, async () => {
      const s = await rawSocket(server.url);
      const body = JSON.stringify({ goal, payload: { never: 'complete' } });
      s.write(
        `POST /intent HTTP/1.1\r\nHost: x\r\nX-API-Key: ${MAIN_KEY}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n` +
          body.slice(0, body.length >> 1),
      );
      await sleep(Math.random() * 100);
      s.destroy();
    });
    const taken = (await Promise.all(polls)).filter((id): id is string => id !== null);
    await Promise.all(halves);
    await until('no waiter left', async () => {
      return (await metric(server.url, 'intent_bus_waiting_requests')) === base;
    });
    // What was handed to a vanished client comes back when its lease expires; nothing else
    // was taken, and no cut request stored anything.
    const claimed = await claimAll(api, goal);
    await until(
      'the vanished clients’ intents back',
      async () => {
        const r = await api('POST', `/claim?goal=${goal}&wait=1`);
        if (r.status === 200) claimed.add(r.json.id as string);
        return claimed.size === published.size;
      },
      30_000,
    );
    expect(claimed).toEqual(published);
    for (const id of taken) expect(published.has(id)).toBe(true);
    expect(server.child.exitCode).toBeNull();
    expect(server.stdout()).not.toMatch(/"statusCode":500/);
  }, 60_000);

  it('holds 2,000 idle long polls with bounded memory and file descriptors, and frees them', async () => {
    const goal = 'clients.idle';
    // This test's own keep-alive connections (the ten publishes, /metrics) stay open.
    const SLACK_FDS = 25;
    const pid = server.child.pid!;
    const before = procStats(pid);
    const base = await metric(server.url, 'intent_bus_waiting_requests');
    const sockets = await Promise.all(Array.from({ length: 2000 }, () => rawSocket(server.url)));
    const answers = sockets.map(
      (s) =>
        new Promise<string>((resolve) => {
          let got = '';
          s.on('data', (d: Buffer) => {
            got += d.toString();
            if (/\r\n\r\n/.test(got) && (/^HTTP\/1\.1 204/.test(got) || got.includes('}')))
              resolve(got);
          });
          s.on('close', () => resolve(got));
          s.write(
            `POST /claim?goal=${goal}&wait=8 HTTP/1.1\r\nHost: x\r\nX-API-Key: ${MAIN_KEY}\r\n` +
              'Content-Length: 0\r\n\r\n',
          );
        }),
    );
    let waiting = 0;
    await until(
      '2,000 waiting',
      async () =>
        (waiting = await metric(server.url, 'intent_bus_waiting_requests')) === base + 2000,
      20_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${waiting} waiting (base ${base})`);
    });
    const holding = procStats(pid);
    // Ten publishes reach ten of the waiting claims, each a different intent.
    const published = await publishMany(api, goal, 10);
    const replies = await Promise.all(answers);
    const ok = replies.filter((r) => r.startsWith('HTTP/1.1 200'));
    const empty = replies.filter((r) => r.startsWith('HTTP/1.1 204'));
    expect(ok).toHaveLength(10);
    expect(empty).toHaveLength(1990);
    expect(new Set(ok.map((r) => /"id":"([0-9a-f]+)"/.exec(r)?.[1]))).toEqual(published);
    for (const s of sockets) s.destroy();
    await until('no waiter left', async () => {
      return (await metric(server.url, 'intent_bus_waiting_requests')) === base;
    });
    await until('sockets closed', async () => procStats(pid).fds <= before.fds + SLACK_FDS).catch(
      (err: Error) => {
        throw new Error(`${err.message}: fds ${before.fds} → ${procStats(pid).fds}`);
      },
    );
    const after = procStats(pid);
    console.log(
      `2,000 idle long polls: RSS ${before.rssMb.toFixed(0)} → ${holding.rssMb.toFixed(0)} → ` +
        `${after.rssMb.toFixed(0)} MB, fds ${before.fds} → ${holding.fds} → ${after.fds}`,
    );
    expect(holding.fds).toBeGreaterThanOrEqual(before.fds + 2000);
    expect(holding.rssMb - before.rssMb).toBeLessThan(150);
    expect(after.fds).toBeLessThanOrEqual(before.fds + SLACK_FDS);
  }, 60_000);
});
