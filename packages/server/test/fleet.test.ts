/**
 * The fleet (issue 18), over real sockets on each store: workers seen by their claims,
 * extends, fulfils and fails; GET /workers per key and /admin/workers; the quiet, stop and
 * resume commands as a claim's 204; why open intents wait (/admin/goals); and the
 * registry's store writes under load, counted.
 */
import type { GoalInfo, GoalWaitReason, WorkerInfo } from '@intent-bus/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { errorCode, publish, startTestBus, type Api, type TestBus } from './helpers.js';

const buses: TestBus[] = [];
afterEach(async () => {
  // The newest first: a restarted bus runs on the data of the one before it.
  for (const b of buses.splice(0).reverse()) await b.close();
});

async function bus(env: Record<string, string> = {}, dir?: string): Promise<TestBus> {
  const t = await startTestBus({ env, dir });
  buses.push(t);
  return t;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A claim as a named worker; `query` adds to the query string. */
function claimAs(
  api: Api,
  worker: string,
  opts: { key?: string; caps?: string; query?: string; ua?: string } = {},
) {
  const headers: Record<string, string> = { 'x-worker-id': worker };
  if (opts.caps) headers['x-worker-capabilities'] = opts.caps;
  if (opts.ua) headers['user-agent'] = opts.ua;
  return api('POST', `/claim?${opts.query ?? 'goal=g'}`, { key: opts.key, headers });
}

async function workers(api: Api, key?: string): Promise<WorkerInfo[]> {
  const r = await api('GET', '/workers', { key });
  expect(r.status).toBe(200);
  return r.json.workers;
}

describe('the fleet', () => {
  it('sees a worker by its claims, extends, fulfils and fails, and lists it online or busy', async () => {
    const t = await bus();
    const { api } = t;
    // No worker id: not recorded.
    expect((await api('POST', '/claim?goal=g')).status).toBe(204);
    expect(await workers(api)).toEqual([]);

    expect((await claimAs(api, 'phone-1', { caps: 'gpu, camera', ua: 'termux/1' })).status).toBe(
      204,
    );
    let [w] = await workers(api);
    expect(w).toMatchObject({
      worker_id: 'phone-1',
      key_id: 'main',
      status: 'online',
      command: null,
      capabilities: ['gpu', 'camera'],
      namespaces: ['default'],
      goals: ['g'],
      user_agent: 'termux/1',
      address: '127.0.0.1',
      fulfilled: 0,
      failed: 0,
      last_error: null,
      holds: [],
    });
    expect(w.first_seen).toBeLessThanOrEqual(w.last_seen);

    const a = await publish(api, { goal: 'g' });
    const b = await publish(api, { goal: 'g', max_attempts: 1 });
    const c1 = await claimAs(api, 'phone-1', { caps: 'gpu' });
    expect(c1.status).toBe(200);
    [w] = await workers(api);
    expect(w.status).toBe('busy');
    expect(w.capabilities).toEqual(['gpu']);
    expect(w.holds).toEqual([
      {
        id: c1.json.id,
        namespace: 'default',
        goal: 'g',
        claim_expires_at: c1.json.claim_expires_at,
      },
    ]);
    // The status of a claimed intent says whether its holder is online ([ext]).
    const st = await api('GET', `/status/${c1.json.id}`);
    expect(st.json).toMatchObject({ status: 'claimed', worker_id: 'phone-1', worker_online: true });
    const token = c1.json.claim_token;
    expect(
      (
        await api('POST', `/extend_claim/${c1.json.id}`, {
          body: { claim_token: token, seconds: 30 },
        })
      ).status,
    ).toBe(200);
    expect(
      (await api('POST', `/fulfill/${c1.json.id}`, { body: { claim_token: token, result: 1 } }))
        .status,
    ).toBe(200);
    const c2 = await claimAs(api, 'phone-1');
    expect([a, b]).toContain(c2.json.id);
    expect(
      (
        await api('POST', `/fail/${c2.json.id}`, {
          body: { claim_token: c2.json.claim_token, error: 'camera busy' },
        })
      ).status,
    ).toBe(200);
    // What this node has not written yet is listed too; after a flush, from the store.
    for (const flushed of [false, true]) {
      if (flushed) await t.bus.workers.flush(Date.now());
      [w] = await workers(api);
      expect(w).toMatchObject({
        status: 'online',
        fulfilled: 1,
        failed: 1,
        last_error: 'camera busy',
        holds: [],
      });
    }
    const row = await t.bus.store.workerGet('main', 'phone-1');
    expect(row).toMatchObject({ fulfilled: 1, failed: 1, lastError: 'camera busy' });
    // The status object of an intent that is not claimed has no such field.
    expect((await api('GET', `/status/${a}`)).json).not.toHaveProperty('worker_online');
  });

  it('is online while a claim of it waits or within the window, else offline', async () => {
    const t = await bus({ BUS_WORKER_ONLINE_SECONDS: '1' });
    const { api } = t;
    await claimAs(api, 'pi');
    expect((await workers(api))[0].status).toBe('online');
    await sleep(1300);
    expect((await workers(api))[0].status).toBe('offline');
    // A long poll keeps it online for as long as it waits.
    const waiting = claimAs(api, 'pi', { query: 'goal=g&wait=3' });
    await sleep(1500);
    expect((await workers(api))[0].status).toBe('online');
    // Written once, then again only after half the window: not at every flush.
    await t.bus.workers.flush(Date.now());
    const rows = t.bus.workers.writes.rows;
    await t.bus.workers.flush(Date.now());
    expect(t.bus.workers.writes.rows).toBe(rows);
    const id = await publish(api, { goal: 'g' });
    expect((await waiting).json.id).toBe(id);
    expect((await workers(api))[0].status).toBe('busy');
  });

  it('tells a quiet or stopping worker so in a 204, ending its long poll at once; resume', async () => {
    const t = await bus();
    const { api } = t;
    const tester = await t.newKey();
    await claimAs(api, 'w1');
    await claimAs(api, 'w1', { key: tester.api_key });
    await claimAs(api, 'w2');
    await publish(api, { goal: 'g', visibility: 'public' });

    // A long poll of w1 under the main key waits; the quiet ends it with the command.
    const started = Date.now();
    const waiting = claimAs(api, 'w1', { query: 'goal=nothing&wait=20' });
    await sleep(200);
    const q = await api('POST', '/admin/workers/w1/quiet?key_id=main', { admin: true });
    expect(q.status).toBe(200);
    expect(q.json).toEqual({
      ok: true,
      worker_id: 'w1',
      command: 'quiet',
      workers: [{ key_id: 'main', worker_id: 'w1' }],
    });
    const ended = await waiting;
    expect(ended.status).toBe(204);
    expect(ended.headers.get('x-intent-worker-command')).toBe('quiet');
    expect(Date.now() - started).toBeLessThan(10_000);
    // Its next claim claims nothing, though an intent is open; the same id under another
    // key and another worker are not quiet.
    const again = await claimAs(api, 'w1');
    expect(again.status).toBe(204);
    expect(again.headers.get('x-intent-worker-command')).toBe('quiet');
    const other = await claimAs(api, 'w1', { key: tester.api_key, query: 'goal=nothing' });
    expect(other.status).toBe(204);
    expect(other.headers.get('x-intent-worker-command')).toBeNull();
    expect((await claimAs(api, 'w2')).status).toBe(200);
    const listed = (await api('GET', '/admin/workers', { admin: true })).json.workers;
    expect(
      listed.find((w: WorkerInfo) => w.worker_id === 'w1' && w.key_id === 'main').command,
    ).toBe('quiet');

    // Stop, under every key at once, then resume one.
    const s = await api('POST', '/admin/workers/w1/stop', { admin: true });
    expect(s.json.workers).toHaveLength(2);
    const stopped = await claimAs(api, 'w1', { key: tester.api_key });
    expect(stopped.headers.get('x-intent-worker-command')).toBe('stop');
    expect(
      (await api('POST', `/admin/workers/w1/resume?key_id=${tester.key_id}`, { admin: true })).json
        .command,
    ).toBeNull();
    expect(
      (await claimAs(api, 'w1', { key: tester.api_key, query: 'goal=nothing' })).headers.get(
        'x-intent-worker-command',
      ),
    ).toBeNull();
    expect((await claimAs(api, 'w1')).headers.get('x-intent-worker-command')).toBe('stop');

    // Unknown workers and commands; admin only.
    const unknown = await api('POST', '/admin/workers/nobody/quiet', { admin: true });
    expect([unknown.status, errorCode(unknown)]).toEqual([404, 'not_found']);
    const bad = await api('POST', '/admin/workers/w1/pause', { admin: true });
    expect([bad.status, errorCode(bad)]).toEqual([400, 'invalid_request']);
    const long = await api('POST', `/admin/workers/${'x'.repeat(129)}/quiet`, { admin: true });
    expect([long.status, errorCode(long)]).toEqual([400, 'invalid_request']);
    const badClaim = await api('POST', '/claim?goal=g&worker_id=bad%01id');
    expect([badClaim.status, errorCode(badClaim)]).toEqual([400, 'invalid_request']);
    expect((await api('POST', '/admin/workers/w1/quiet')).status).toBe(401);

    // Forget: gone from the lists until it is seen again.
    const f = await api('DELETE', '/admin/workers/w2', { admin: true });
    expect(f.json).toMatchObject({ ok: true, worker_id: 'w2', forgotten: true });
    expect((await api('DELETE', '/admin/workers/w2', { admin: true })).status).toBe(404);
    expect((await workers(api)).map((w) => w.worker_id).sort()).toEqual(['w1', 'w1']);
  });

  it('keeps the commands given across a restart of the bus', async () => {
    const first = await bus();
    await claimAs(first.api, 'kept');
    expect((await first.api('POST', '/admin/workers/kept/stop', { admin: true })).status).toBe(200);
    const dir = first.dir;
    await first.bus.close();
    const again = await bus({}, dir);
    const c = await claimAs(again.api, 'kept');
    expect([c.status, c.headers.get('x-intent-worker-command')]).toEqual([204, 'stop']);
  });

  it("shows a tester key only its own workers, the main key everyone's", async () => {
    const t = await bus();
    const { api } = t;
    const k1 = await t.newKey('one');
    const k2 = await t.newKey('two');
    await claimAs(api, 'shared-name', { key: k1.api_key });
    await claimAs(api, 'k2-only', { key: k2.api_key });
    await claimAs(api, 'main-worker');
    await t.bus.workers.flush(Date.now());
    expect((await workers(api, k1.api_key)).map((w) => [w.key_id, w.worker_id])).toEqual([
      [k1.key_id, 'shared-name'],
    ]);
    expect((await workers(api, k2.api_key)).map((w) => w.worker_id)).toEqual(['k2-only']);
    expect((await workers(api)).map((w) => w.worker_id).sort()).toEqual([
      'k2-only',
      'main-worker',
      'shared-name',
    ]);
    // A revoked key's workers go with it, and a restart keeps the commands given.
    await api('POST', '/admin/workers/k2-only/quiet', { admin: true });
    expect(
      (await api('POST', '/admin/revoke_key', { admin: true, body: { key_id: k2.key_id } })).status,
    ).toBe(200);
    expect((await workers(api)).map((w) => w.worker_id)).not.toContain('k2-only');
    expect(await t.bus.store.workerGet(k2.key_id, 'k2-only')).toBeNull();
    expect((await api('GET', '/admin/workers', { key: k1.api_key })).status).toBe(401);
    expect((await api('GET', '/admin/goals', { key: k1.api_key })).status).toBe(401);
  });

  it('says why open intents wait, by the claim rule', async () => {
    const t = await bus();
    const { api } = t;
    const tester = await t.newKey();
    // One worker online for goal "speech" without capability whisper; nobody for "resize".
    await claimAs(api, 'cpu-box', { caps: 'cpu', query: 'goal=speech' });
    await publish(api, { goal: 'speech', required_capability: 'whisper' });
    await publish(api, { goal: 'speech', required_capability: 'whisper' });
    await publish(api, { goal: 'speech', target_worker: 'termux-phone-1' });
    await publish(api, { goal: 'speech' }, tester.api_key); // private to a key no worker uses
    await publish(api, { goal: 'resize' });
    await publish(api, { goal: 'speech', required_capability: 'cpu' }); // claimable: no reason
    const r = await api('GET', '/admin/goals', { admin: true });
    expect(r.status).toBe(200);
    const speech = r.json.goals.find((g: GoalInfo) => g.goal === 'speech');
    expect(speech).toMatchObject({ namespace: 'default', open: 5, claimed: 0, dead: 0 });
    expect(speech.oldest_open_age_seconds).toBeGreaterThanOrEqual(0);
    const reasons = Object.fromEntries(speech.waiting.map((w: GoalWaitReason) => [w.reason, w]));
    expect(Object.keys(reasons).sort()).toEqual([
      'no_capability',
      'private_unused',
      'target_offline',
    ]);
    expect(reasons.no_capability).toMatchObject({ capability: 'whisper', intents: 2 });
    expect(reasons.no_capability.message).toMatch(/no online worker has capability whisper/);
    expect(reasons.target_offline).toMatchObject({
      target_worker: 'termux-phone-1',
      last_seen: null,
      intents: 1,
    });
    expect(reasons.private_unused).toMatchObject({ publisher: tester.key_id, intents: 1 });
    const resize = r.json.goals.find((g: GoalInfo) => g.goal === 'resize');
    expect(resize.waiting).toEqual([
      { reason: 'no_worker', intents: 1, message: '1 open intent: no worker online for this goal' },
    ]);

    // A worker with whisper comes: those two no longer wait for a reason.
    await claimAs(api, 'gpu-box', { caps: 'whisper', query: 'goal=nothing' });
    await claimAs(api, 'gpu-box', { caps: 'whisper', query: 'goal=speech&wait=0' }).then((c) =>
      api('POST', `/fail/${c.json.id}`, { body: { claim_token: c.json.claim_token } }),
    );
    const after = (await api('GET', '/admin/goals', { admin: true })).json.goals.find(
      (g: GoalInfo) => g.goal === 'speech',
    );
    expect(after.waiting.map((w: GoalWaitReason) => w.reason).sort()).toEqual([
      'private_unused',
      'target_offline',
    ]);
  });

  it('writes each worker at most once per flush under load: 2,000 jobs through 40 named workers', async () => {
    const t = await bus();
    const { api } = t;
    const JOBS = 2000;
    const WORKERS = 40;
    for (let i = 0; i < JOBS; i++) {
      const out = await t.bus.store.intentPublish(
        {
          id: `${i.toString(16).padStart(8, '0')}${'0'.repeat(24)}`,
          namespace: 'default',
          goal: 'load',
          payload: '{}',
          publisher: 'main',
          visibility: 'private',
          priority: 100,
          runAt: Date.now(),
          createdAt: Date.now(),
          expiresAt: Date.now() + 3_600_000,
          maxAttempts: 3,
          backoffBase: 5,
          ttl: 3600,
          targetWorker: null,
          requiredCapability: null,
          schedule: null,
          scheduledFor: null,
        },
        null,
        null,
      );
      expect(out.kind).toBe('created');
    }
    const before = { ...t.bus.workers.writes };
    const started = Date.now();
    let requests = 0;
    let done = 0;
    await Promise.all(
      Array.from({ length: WORKERS }, async (_, n) => {
        for (;;) {
          const c = await claimAs(api, `load-${n}`, { query: 'goal=load', caps: 'cpu' });
          requests++;
          if (c.status === 204) return;
          const f = await api('POST', `/fulfill/${c.json.id}`, {
            body: { claim_token: c.json.claim_token },
          });
          requests++;
          expect(f.status).toBe(200);
          done++;
        }
      }),
    );
    await t.bus.workers.flush(Date.now());
    const elapsed = Date.now() - started;
    expect(done).toBe(JOBS);
    const flushes = t.bus.workers.writes.flushes - before.flushes;
    const rows = t.bus.workers.writes.rows - before.rows;
    // One row per worker per flush at most, and flushes no more often than the interval
    // (one more for the flush above): counted, not timed.
    expect(rows).toBeLessThanOrEqual(flushes * WORKERS);
    expect(flushes).toBeLessThanOrEqual(Math.ceil(elapsed / t.bus.workers.flushIntervalMs) + 1);
    expect(rows).toBeLessThan(requests / 10);
    const listed = await workers(api);
    expect(listed).toHaveLength(WORKERS);
    expect(listed.reduce((n, w) => n + w.fulfilled, 0)).toBe(JOBS);
    // The same counts are on /metrics, with the workers by namespace.
    const m = await api('GET', '/metrics', { admin: true });
    expect(m.text).toMatch(/intent_bus_workers\{namespace="default",status="online"\} 40/);
    expect(m.text).toMatch(/intent_bus_worker_registry_writes\{kind="rows"\} \d+/);
  });
});
