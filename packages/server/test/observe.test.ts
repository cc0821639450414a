/**
 * What an operator sees: /metrics (parsed as Prometheus text), GET /admin/intents and
 * GET /admin/stats, after a scripted run whose outcome is known.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  DASHBOARD_PASSWORD,
  errorCode,
  publish,
  startTestBus,
  type TestBus,
} from './helpers.js';

const METRICS_TOKEN = 'metrics_test_0123456789abcdef';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (the subset prom-client writes). */
function parseMetrics(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      types.set(name!, type!);
      continue;
    }
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not Prometheus text: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[4]) });
  }
  return { samples, types };
}

const value = (
  samples: Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined =>
  samples.find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )?.value;

describe('metrics, intents list and stats after a scripted run', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus({ env: { BUS_METRICS_TOKEN: METRICS_TOKEN } });
    // The script: in "obs", 3 published, 2 claimed, 1 fulfilled, 1 failed to dead; one
    // more in "other" left open. Plus one tester key.
    for (let i = 0; i < 3; i++)
      await publish(t.api, { goal: 'job', namespace: 'obs', max_attempts: 1 });
    await publish(t.api, { goal: 'else', namespace: 'other' });
    const a = await t.api('POST', '/claim?namespace=obs&goal=job');
    await t.api('POST', `/fulfill/${a.json.id}`, {
      body: { claim_token: a.json.claim_token, result: 1 },
    });
    const b = await t.api('POST', '/claim?namespace=obs&goal=job');
    await t.api('POST', `/fail/${b.json.id}`, {
      body: { claim_token: b.json.claim_token, error: 'boom' },
    });
    await t.newKey('observer');
  });
  afterAll(async () => t.close());

  it('needs the metrics token or admin credentials', async () => {
    expect((await t.api('GET', '/metrics', { key: null })).status).toBe(401);
    const wrong = await t.api('GET', '/metrics', {
      key: null,
      headers: { authorization: 'Bearer nope' },
    });
    expect(errorCode(wrong)).toBe('unauthorized');
    expect((await t.api('GET', '/metrics')).status).toBe(401); // an API key is not enough
    const bearer = await t.api('GET', '/metrics', {
      key: null,
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    expect(bearer.status).toBe(200);
    expect(bearer.headers.get('content-type')).toContain('text/plain');
    expect((await t.api('GET', '/metrics', { admin: true })).status).toBe(200);
    const basic = `Basic ${Buffer.from(`admin:${DASHBOARD_PASSWORD}`).toString('base64')}`;
    expect(
      (await t.api('GET', '/metrics', { key: null, headers: { authorization: basic } })).status,
    ).toBe(200);
  });

  it('reports the state and what happened, by name and label', async () => {
    const r = await t.api('GET', '/metrics', {
      key: null,
      headers: { 'x-admin-token': ADMIN_TOKEN },
    });
    const { samples, types } = parseMetrics(r.text);
    // The 2.1 gauges.
    expect(types.get('intent_bus_intents_total')).toBe('gauge');
    expect(value(samples, 'intent_bus_intents_total', { namespace: 'obs', status: 'open' })).toBe(
      1,
    );
    expect(
      value(samples, 'intent_bus_intents_total', { namespace: 'obs', status: 'fulfilled' }),
    ).toBe(1);
    expect(value(samples, 'intent_bus_intents_total', { namespace: 'obs', status: 'dead' })).toBe(
      1,
    );
    expect(value(samples, 'intent_bus_intents_total', { namespace: 'other', status: 'open' })).toBe(
      1,
    );
    expect(value(samples, 'intent_bus_dead_letters_total')).toBe(1);
    expect(value(samples, 'intent_bus_tester_keys_total')).toBe(1);
    // Counters by namespace and goal.
    const obs = { namespace: 'obs', goal: 'job' };
    expect(types.get('intent_bus_published_total')).toBe('counter');
    expect(value(samples, 'intent_bus_published_total', obs)).toBe(3);
    expect(value(samples, 'intent_bus_claimed_total', obs)).toBe(2);
    expect(value(samples, 'intent_bus_fulfilled_total', obs)).toBe(1);
    expect(value(samples, 'intent_bus_failed_total', obs)).toBe(1);
    expect(value(samples, 'intent_bus_dead_total', obs)).toBe(1);
    // Histograms.
    expect(types.get('intent_bus_publish_to_fulfil_seconds')).toBe('histogram');
    expect(value(samples, 'intent_bus_publish_to_fulfil_seconds_count', { namespace: 'obs' })).toBe(
      1,
    );
    expect(value(samples, 'intent_bus_claim_wait_seconds_count', { namespace: 'obs' })).toBe(2);
    expect(
      value(samples, 'intent_bus_http_request_duration_seconds_count', {
        route: '/intent',
        method: 'POST',
        status: '201',
      }),
    ).toBe(4);
    // Process metrics.
    expect(value(samples, 'intent_bus_process_resident_memory_bytes')).toBeGreaterThan(0);
  });

  it('lists intents newest first with filters and a cursor', async () => {
    const all = await t.api('GET', '/admin/intents?namespace=obs', { admin: true });
    expect(all.status).toBe(200);
    expect(all.json.items).toHaveLength(3);
    const created = all.json.items.map((i: { created_at: number }) => i.created_at);
    expect([...created].sort((x: number, y: number) => y - x)).toEqual(created);
    expect(all.json.next_cursor).toBeNull();
    const dead = await t.api('GET', '/admin/intents?status=dead', { admin: true });
    expect(dead.json.items.map((i: { error: string }) => i.error)).toEqual(['boom']);
    // Pages of one, following the cursor, give the same three.
    const seen: string[] = [];
    let cursor: string | null = '';
    while (cursor !== null) {
      const page = await t.api(
        'GET',
        `/admin/intents?namespace=obs&limit=1${cursor ? `&cursor=${cursor}` : ''}`,
        {
          admin: true,
        },
      );
      seen.push(...page.json.items.map((i: { id: string }) => i.id));
      cursor = page.json.next_cursor;
    }
    expect(seen).toEqual(all.json.items.map((i: { id: string }) => i.id));
    expect(errorCode(await t.api('GET', '/admin/intents?cursor=bogus', { admin: true }))).toBe(
      'invalid_request',
    );
    expect((await t.api('GET', '/admin/intents?limit=201', { admin: true })).status).toBe(400);
    expect((await t.api('GET', '/admin/intents')).status).toBe(401);
  });

  it('counts by status and namespace, and per minute over the last hour', async () => {
    const r = await t.api('GET', '/admin/stats', { admin: true });
    expect(r.status).toBe(200);
    expect(r.json.by_status).toEqual({ open: 2, claimed: 0, fulfilled: 1, dead: 1 });
    expect(r.json.by_namespace.obs).toEqual({ open: 1, claimed: 0, fulfilled: 1, dead: 1 });
    expect(r.json.per_minute).toHaveLength(60);
    const minutes = r.json.per_minute.map((m: { minute: number }) => m.minute);
    expect(minutes[59] - minutes[0]).toBe(59 * 60);
    const sum = (k: string): number =>
      r.json.per_minute.reduce((n: number, m: Record<string, number>) => n + m[k]!, 0);
    expect(sum('published')).toBe(4);
    expect(sum('fulfilled')).toBe(1);
    expect(sum('failed')).toBe(1);
    expect(sum('dead')).toBe(1);
  });
});

describe('the waiting-requests gauge', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());

  it('counts the requests held open by long polls', async () => {
    const scrape = async (): Promise<number | undefined> =>
      value(
        parseMetrics(
          (await t.api('GET', '/metrics', { key: null, headers: { 'x-admin-token': ADMIN_TOKEN } }))
            .text,
        ).samples,
        'intent_bus_waiting_requests',
      );
    expect(await scrape()).toBe(0);
    const held = t.api('POST', '/claim?namespace=held&wait=10');
    for (let i = 0; i < 200 && t.bus.hub.waiting === 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(await scrape()).toBe(1);
    await publish(t.api, { goal: 'job', namespace: 'held' });
    expect((await held).status).toBe(200);
    expect(await scrape()).toBe(0);
  });
});
