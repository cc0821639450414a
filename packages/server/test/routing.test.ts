/**
 * PROTOCOL.md §4: which claim may take which intent, and in what order, over real HTTP
 * against a real bus. Shared buses are purged before each test; tests that steer time get
 * their own bus on a manual clock.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  MAIN_KEY,
  errorCode,
  publish,
  startTestBus,
  type ApiResponse,
  type RequestOptions,
  type TestBus,
} from './helpers.js';

async function claim(t: TestBus, query = '', o: RequestOptions = {}): Promise<ApiResponse> {
  return t.api('POST', `/claim${query}`, o);
}

async function expectClaimed(
  t: TestBus,
  id: string,
  query = '',
  o: RequestOptions = {},
): Promise<ApiResponse> {
  const r = await claim(t, query, o);
  expect(r.status, `claim${query}: ${r.text}`).toBe(200);
  expect(r.json.id, `claim${query}`).toBe(id);
  return r;
}

/** 204, Retry-After: 1, and no body. */
async function expectNothing(t: TestBus, query = '', o: RequestOptions = {}): Promise<void> {
  const r = await claim(t, query, o);
  expect(r.status, `claim${query} ${JSON.stringify(o.headers ?? {})}: ${r.text}`).toBe(204);
  expect(r.headers.get('retry-after')).toBe('1');
  expect(r.text).toBe('');
}

async function purge(t: TestBus): Promise<void> {
  const r = await t.api('POST', '/admin/purge', { admin: true, body: { confirm: true } });
  expect(r.status, r.text).toBe(200);
}

function useSharedBus(): () => TestBus {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus();
  });
  afterAll(async () => t.close());
  beforeEach(async () => purge(t));
  return () => t;
}

function useManualBus(): () => TestBus {
  let t: TestBus;
  beforeEach(async () => {
    t = await startTestBus({ manualClock: true, random: () => 0.5 });
  });
  afterEach(async () => t.close());
  return () => t;
}

function advance(t: TestBus, ms: number): void {
  if (!t.manual) throw new Error('this bus has no manual clock');
  t.manual.advance(ms);
}

describe('namespaces', () => {
  const bus = useSharedBus();

  it('an intent without a namespace lives in "default"', async () => {
    const t = bus();
    const r = await t.api('POST', '/intent', { body: { goal: 'g', payload: {} } });
    expect(r.status, r.text).toBe(201);
    expect(r.json.namespace).toBe('default');
    await expectNothing(t, '?namespace=other');
    await expectClaimed(t, r.json.id, '?namespace=default');

    const id2 = await publish(t.api, { goal: 'g' });
    await expectClaimed(t, id2); // a claim without namespace is a claim in "default"
  });

  it('intents never cross namespaces', async () => {
    const t = bus();
    const a = await publish(t.api, { goal: 'g', namespace: 'team-a' });
    const b = await publish(t.api, { goal: 'g', namespace: 'team.b_2' });
    await expectNothing(t);
    await expectNothing(t, '?namespace=default');
    await expectNothing(t, '?namespace=team-A'); // case-sensitive
    await expectNothing(t, '?namespace=team');
    await expectClaimed(t, b, '?namespace=team.b_2');
    await expectNothing(t, '?namespace=team.b_2');
    await expectClaimed(t, a, '?namespace=team-a&goal=g');
    await expectNothing(t, '?namespace=team-a');
  });
});

describe('goal filter', () => {
  const bus = useSharedBus();

  it('matches the goal exactly', async () => {
    const t = bus();
    const id = await publish(t.api, { goal: 'resize_image' });
    for (const goal of ['Resize_image', 'resize', 'resize_image_', 'resize_imag', 'RESIZE_IMAGE']) {
      await expectNothing(t, `?goal=${goal}`);
    }
    await expectClaimed(t, id, '?goal=resize_image');
  });

  it('without a goal any goal is taken; with one only that goal', async () => {
    const t = bus();
    const a = await publish(t.api, { goal: 'a', priority: 900 });
    const b = await publish(t.api, { goal: 'b', priority: 100 });
    await expectClaimed(t, b, '?goal=b');
    await expectNothing(t, '?goal=b');
    await expectClaimed(t, a);
  });
});

describe('target_worker', () => {
  const bus = useSharedBus();

  it('is claimable only by the named worker, from X-Worker-ID', async () => {
    const t = bus();
    const id = await publish(t.api, { goal: 'g', target_worker: 'worker-1' });
    await expectNothing(t);
    await expectNothing(t, '', { headers: { 'x-worker-id': 'worker-2' } });
    await expectNothing(t, '', { headers: { 'x-worker-id': 'Worker-1' } });
    await expectNothing(t, '', { headers: { 'x-worker-id': 'worker-10' } });
    await expectClaimed(t, id, '', { headers: { 'x-worker-id': 'worker-1' } });
    expect((await t.api('GET', `/status/${id}`)).json.worker_id).toBe('worker-1');
  });

  it('is claimable only by the named worker, from query worker_id', async () => {
    const t = bus();
    const id = await publish(t.api, { goal: 'g', target_worker: 'host:7' });
    await expectNothing(t, '?worker_id=host:8');
    await expectClaimed(t, id, '?worker_id=host:7');
  });

  it('the header wins over the query', async () => {
    const t = bus();
    const id = await publish(t.api, { goal: 'g', target_worker: 'w1' });
    await expectNothing(t, '?worker_id=w1', { headers: { 'x-worker-id': 'w2' } });
    await expectClaimed(t, id, '?worker_id=w2', { headers: { 'x-worker-id': 'w1' } });
  });

  it('an untargeted intent is claimable by any worker, named or not', async () => {
    const t = bus();
    const a = await publish(t.api, { goal: 'g' });
    const b = await publish(t.api, { goal: 'g' });
    const c = await publish(t.api, { goal: 'g' });
    const got = new Set<string>();
    got.add((await claim(t, '', { headers: { 'x-worker-id': 'anyone' } })).json.id);
    got.add((await claim(t, '?worker_id=someone')).json.id);
    got.add((await claim(t)).json.id);
    expect(got).toEqual(new Set([a, b, c]));
  });
});

describe('required_capability', () => {
  const bus = useSharedBus();

  const sources: Array<[string, (caps: string) => [string, RequestOptions]]> = [
    ['X-Worker-Capabilities', (c) => ['', { headers: { 'x-worker-capabilities': c } }]],
    ['X-Worker-Capability', (c) => ['', { headers: { 'x-worker-capability': c } }]],
    ['query capabilities', (c) => [`?capabilities=${encodeURIComponent(c)}`, {}]],
    ['query capability', (c) => [`?capability=${encodeURIComponent(c)}`, {}]],
  ];

  for (const [name, as] of sources) {
    it(`is read from ${name}: a comma list, whitespace ignored, exact and case-sensitive`, async () => {
      const t = bus();
      const id = await publish(t.api, { goal: 'g', required_capability: 'gpu' });
      await expectNothing(t);
      for (const caps of ['cpu', 'GPU', 'Gpu', 'gp', 'gpu2', 'gpu-large', 'cpu,GPU', ' GPU ']) {
        await expectNothing(t, ...as(caps));
      }
      await expectClaimed(t, id, ...as('  cpu ,\tgpu  , ssd '));

      const id2 = await publish(t.api, { goal: 'g', required_capability: 'gpu' });
      await expectClaimed(t, id2, ...as('gpu'));
    });
  }

  it('the headers win over the query', async () => {
    const t = bus();
    const id = await publish(t.api, { goal: 'g', required_capability: 'gpu' });
    await expectNothing(t, '?capabilities=gpu', { headers: { 'x-worker-capabilities': 'cpu' } });
    await expectNothing(t, '?capability=gpu', { headers: { 'x-worker-capability': 'cpu' } });
    await expectClaimed(t, id, '?capabilities=cpu', {
      headers: { 'x-worker-capabilities': 'cpu, gpu' },
    });
  });

  it('an intent without a required capability is claimable with or without capabilities', async () => {
    const t = bus();
    const a = await publish(t.api, { goal: 'g' });
    const b = await publish(t.api, { goal: 'g' });
    const got = new Set<string>();
    got.add((await claim(t, '', { headers: { 'x-worker-capabilities': 'x,y' } })).json.id);
    got.add((await claim(t)).json.id);
    expect(got).toEqual(new Set([a, b]));
  });

  it('target_worker and required_capability must both hold', async () => {
    const t = bus();
    const id = await publish(t.api, {
      goal: 'g',
      target_worker: 'w1',
      required_capability: 'gpu',
    });
    await expectNothing(t, '', { headers: { 'x-worker-id': 'w1' } });
    await expectNothing(t, '', { headers: { 'x-worker-capabilities': 'gpu' } });
    await expectNothing(t, '', {
      headers: { 'x-worker-id': 'w2', 'x-worker-capabilities': 'gpu' },
    });
    await expectClaimed(t, id, '', {
      headers: { 'x-worker-id': 'w1', 'x-worker-capabilities': 'gpu' },
    });
  });
});

describe('ownership: private and public intents', () => {
  const bus = useSharedBus();

  it('a private intent (the default) is claimable only with its publisher key', async () => {
    const t = bus();
    const alice = await t.newKey('alice');
    const bob = await t.newKey('bob');
    const id = await publish(t.api, { goal: 'g' }, alice.api_key);
    expect((await t.api('GET', `/status/${id}`)).json.visibility).toBe('private');
    await expectNothing(t, '', { key: bob.api_key });
    await expectNothing(t); // the main key has no claim on it without a publisher filter
    await expectClaimed(t, id, '', { key: alice.api_key });

    const mine = await publish(t.api, { goal: 'g', visibility: 'private' });
    await expectNothing(t, '', { key: alice.api_key });
    await expectClaimed(t, mine); // the main key's own private intent
  });

  it('a public intent is claimable by any key in its namespace', async () => {
    const t = bus();
    const alice = await t.newKey('alice');
    const bob = await t.newKey('bob');
    const a1 = await publish(t.api, { goal: 'g', visibility: 'public' }, alice.api_key);
    const a2 = await publish(t.api, { goal: 'g', visibility: 'public' }, alice.api_key);
    const a3 = await publish(
      t.api,
      { goal: 'g', visibility: 'public', namespace: 'elsewhere' },
      alice.api_key,
    );
    const got = new Set<string>();
    got.add((await claim(t, '', { key: bob.api_key })).json.id);
    got.add((await claim(t)).json.id);
    expect(got).toEqual(new Set([a1, a2]));
    await expectNothing(t, '', { key: bob.api_key });
    await expectClaimed(t, a3, '?namespace=elsewhere', { key: bob.api_key });
  });
});

describe('the publisher filter', () => {
  const bus = useSharedBus();

  it('a tester key may name itself by raw key or key_id, and gets its private and public intents', async () => {
    const t = bus();
    const alice = await t.newKey('alice');
    const bob = await t.newKey('bob');
    const bobPublic = await publish(t.api, { goal: 'g', visibility: 'public' }, bob.api_key);
    const mainPublic = await publish(t.api, { goal: 'g', visibility: 'public' });
    const priv = await publish(t.api, { goal: 'g' }, alice.api_key);
    const pub = await publish(t.api, { goal: 'g', visibility: 'public' }, alice.api_key);

    const byRaw = `?publisher=${encodeURIComponent(alice.api_key)}`;
    const byId = `?publisher=${encodeURIComponent(alice.key_id)}`;
    const first = await claim(t, byRaw, { key: alice.api_key });
    const second = await claim(t, byId, { key: alice.api_key });
    expect(first.status, first.text).toBe(200);
    expect(second.status, second.text).toBe(200);
    expect(new Set([first.json.id, second.json.id])).toEqual(new Set([priv, pub]));
    // Others' public intents are not the filter's.
    await expectNothing(t, byRaw, { key: alice.api_key });
    await expectNothing(t, byId, { key: alice.api_key });
    // Without the filter they are.
    const rest = new Set<string>();
    rest.add((await claim(t, '', { key: alice.api_key })).json.id);
    rest.add((await claim(t, '', { key: alice.api_key })).json.id);
    expect(rest).toEqual(new Set([bobPublic, mainPublic]));
  });

  it('a tester key naming anyone else gets 403 forbidden', async () => {
    const t = bus();
    const alice = await t.newKey('alice');
    const bob = await t.newKey('bob');
    await publish(t.api, { goal: 'g', visibility: 'public' }, bob.api_key);
    await publish(t.api, { goal: 'g', visibility: 'public' });
    const others = [
      bob.api_key,
      bob.key_id,
      MAIN_KEY,
      'main',
      'kid_0000000000000000',
      'tk_00000000000000000000000000000000',
      'somebody',
      alice.api_key.toUpperCase(),
      alice.key_id + 'x',
    ];
    for (const p of others) {
      const r = await claim(t, `?publisher=${encodeURIComponent(p)}`, { key: alice.api_key });
      expect(r.status, `publisher=${p}: ${r.text}`).toBe(403);
      expect(errorCode(r)).toBe('forbidden');
    }
    // The refused requests claimed nothing: both intents are still there.
    const left = new Set<string>();
    for (let i = 0; i < 2; i++) {
      const r = await claim(t, '', { key: alice.api_key });
      expect(r.status, r.text).toBe(200);
      left.add(r.json.id);
    }
    expect(left.size).toBe(2);
  });

  it("the main key may name any publisher, by raw key or key_id, and gets that publisher's private intents", async () => {
    const t = bus();
    const alice = await t.newKey('alice');
    const bob = await t.newKey('bob');
    const a1 = await publish(t.api, { goal: 'g' }, alice.api_key);
    const a2 = await publish(t.api, { goal: 'g' }, alice.api_key);
    const b1 = await publish(t.api, { goal: 'g' }, bob.api_key);

    await expectNothing(t); // without a filter the main key sees no one's private intents
    const byRaw = `?publisher=${encodeURIComponent(alice.api_key)}`;
    const byId = `?publisher=${encodeURIComponent(alice.key_id)}`;
    const got = new Set<string>();
    got.add((await claim(t, byRaw)).json?.id);
    got.add((await claim(t, byId)).json?.id);
    expect(got).toEqual(new Set([a1, a2]));
    await expectNothing(t, byRaw);
    await expectNothing(t, byId);
    await expectClaimed(t, b1, `?publisher=${encodeURIComponent(bob.key_id)}`);
  });

  it('the main key naming an unknown publisher gets nothing', async () => {
    const t = bus();
    const alice = await t.newKey('alice');
    await publish(t.api, { goal: 'g', visibility: 'public' }, alice.api_key);
    await expectNothing(t, '?publisher=kid_0000000000000000');
    await expectNothing(t, '?publisher=tk_nobody');
  });

  it('the publisher filter combines with namespace and goal', async () => {
    const t = bus();
    const alice = await t.newKey('alice');
    const inNs = await publish(t.api, { goal: 'g', namespace: 'n1' }, alice.api_key);
    const otherGoal = await publish(t.api, { goal: 'h', namespace: 'n1' }, alice.api_key);
    const q = `?publisher=${encodeURIComponent(alice.key_id)}`;
    await expectNothing(t, q);
    await expectNothing(t, `${q}&namespace=n1&goal=x`);
    await expectClaimed(t, inNs, `${q}&namespace=n1&goal=g`);
    await expectClaimed(t, otherGoal, `${q}&namespace=n1`, { key: alice.api_key });
  });
});

describe('claim order', () => {
  const bus = useManualBus();

  it('priority DESC, then run_at ASC, then created_at ASC', async () => {
    const t = bus();
    // t0
    const a = await publish(t.api, { goal: 'g', priority: 100, delay: 30 }); // run t0+30, created t0
    const b = await publish(t.api, { goal: 'g', priority: 500, delay: 20 }); // run t0+20
    advance(t, 1000); // t0+1
    const c = await publish(t.api, { goal: 'g', priority: 100, delay: 0 }); // run t0+1
    advance(t, 1000); // t0+2
    const d = await publish(t.api, { goal: 'g', priority: 100, delay: 28 }); // run t0+30, created t0+2
    const e = await publish(t.api, { goal: 'g', priority: 1000, delay: 5 }); // run t0+7
    const f = await publish(t.api, { goal: 'g', priority: 0 }); // run t0+2
    const g = await publish(t.api, { goal: 'g', priority: 500, delay: 3 }); // run t0+5
    advance(t, 1000); // t0+3
    const h = await publish(t.api, { goal: 'g', priority: 100, delay: 27 }); // run t0+30, created t0+3
    advance(t, 60_000);

    const order: string[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await claim(t);
      expect(r.status, r.text).toBe(200);
      order.push(r.json.id);
    }
    await expectNothing(t);
    const names = new Map([a, b, c, d, e, f, g, h].map((id, i) => [id, 'abcdefgh'[i]]));
    expect(order.map((id) => names.get(id)).join('')).toBe('egbcadhf');
  });

  it('claim_attempts ASC breaks a tie of priority and run_at, before created_at', async () => {
    const t = bus();
    // x is created first, claimed and failed at t0: run_at = t0 + 5*2^1 + 1 = t0+11.
    const x = await publish(t.api, { goal: 'g', backoff_base: 5 });
    const cx = await claim(t);
    expect(cx.json.id).toBe(x);
    const f = await t.api('POST', `/fail/${x}`, { body: { claim_token: cx.json.claim_token } });
    expect(f.json.status).toBe('open');
    // y is created later with the same run_at and no attempts yet.
    advance(t, 1000);
    const y = await publish(t.api, { goal: 'g', delay: 10 });
    const sx = (await t.api('GET', `/status/${x}`)).json;
    const sy = (await t.api('GET', `/status/${y}`)).json;
    expect(sy.run_at).toBe(sx.run_at);
    expect(sy.created_at).toBeGreaterThan(sx.created_at);

    advance(t, 20_000);
    await expectClaimed(t, y);
    await expectClaimed(t, x);
    await expectNothing(t);
  });

  it('run_at ASC beats claim_attempts and created_at', async () => {
    const t = bus();
    const early = await publish(t.api, { goal: 'g', delay: 50 }); // created t0, run t0+50
    advance(t, 1000);
    const late = await publish(t.api, { goal: 'g', delay: 10 }); // created t0+1, run t0+11
    advance(t, 100_000);
    await expectClaimed(t, late);
    await expectClaimed(t, early);
  });
});

describe('delays and expiry', () => {
  const bus = useManualBus();

  it('a delayed intent is not claimable before run_at', async () => {
    const t = bus();
    const id = await publish(t.api, { goal: 'g', delay: 30 });
    await expectNothing(t);
    await expectNothing(t, '?goal=g');
    advance(t, 29_999);
    await expectNothing(t);
    advance(t, 1); // run_at == now
    await expectClaimed(t, id);
  });

  it('an intent past expires_at is not claimable, even before any cleanup', async () => {
    const t = bus();
    const s1 = await publish(t.api, { goal: 'short', ttl: 5 });
    const s2 = await publish(t.api, { goal: 'short', ttl: 5 });
    const long = await publish(t.api, { goal: 'long', ttl: 10 });
    advance(t, 4_999);
    const first = await claim(t, '?goal=short');
    expect(first.status, first.text).toBe(200);
    expect([s1, s2]).toContain(first.json.id);
    const other = first.json.id === s1 ? s2 : s1;
    advance(t, 1); // expires_at == now: past
    await expectNothing(t, '?goal=short');
    expect((await t.api('GET', `/status/${other}`)).json.status).toBe('open'); // not swept yet
    advance(t, -2); // the same intent is claimable just before
    await expectClaimed(t, other, '?goal=short');
    advance(t, 2);
    await expectClaimed(t, long, '?goal=long');
  });

  it('ttl counts from when the intent first becomes claimable (expires_at = now + delay + ttl)', async () => {
    const t = bus();
    const a = await publish(t.api, { goal: 'a', delay: 10, ttl: 5 });
    const b = await publish(t.api, { goal: 'b', delay: 10, ttl: 5 });
    advance(t, 12_000); // past now + ttl, before now + delay + ttl
    await expectClaimed(t, a, '?goal=a');
    advance(t, 3_000); // now + delay + ttl
    await expectNothing(t, '?goal=b');
    expect((await t.api('GET', `/status/${b}`)).json.status).toBe('open');
  });
});

describe('the 204 answer', () => {
  const bus = useSharedBus();

  it('carries Retry-After: 1 and no body, for every kind of empty claim', async () => {
    const t = bus();
    const key = await t.newKey();
    const cases: Array<[string, RequestOptions]> = [
      ['', {}],
      ['?goal=none', {}],
      ['?namespace=empty', {}],
      ['', { key: key.api_key }],
      ['', { headers: { 'content-type': 'application/json' }, raw: '' }],
      ['?wait=0', {}],
    ];
    for (const [q, o] of cases) {
      const r = await claim(t, q, o);
      expect(r.status, `${q} ${r.text}`).toBe(204);
      expect(r.headers.get('retry-after')).toBe('1');
      expect(r.text).toBe('');
      expect(r.headers.get('content-length') ?? '0').toBe('0');
    }
  });
});

describe('concurrency', () => {
  let t: TestBus;
  beforeAll(async () => {
    t = await startTestBus({ env: { BUS_RATE_LIMIT_PER_MINUTE: '1000000' } });
  });
  afterAll(async () => t.close());

  it('50 parallel claimers over 500 intents: each intent claimed exactly once, none left', async () => {
    const published: string[] = [];
    for (let batch = 0; batch < 10; batch++) {
      const ids = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          publish(t.api, {
            goal: 'work',
            visibility: 'public',
            priority: (batch * 50 + i) % 7,
            payload: { n: batch * 50 + i },
          }),
        ),
      );
      published.push(...ids);
    }
    expect(new Set(published).size).toBe(500);

    const keys = await Promise.all(Array.from({ length: 50 }, (_, i) => t.newKey(`w${i}`)));
    const claimed: Array<{ id: string; token: string; by: number }> = [];
    await Promise.all(
      keys.map(async (k, by) => {
        for (;;) {
          const r = await claim(t, '?goal=work', {
            key: k.api_key,
            headers: { 'x-worker-id': `w${by}` },
          });
          if (r.status === 204) return;
          expect(r.status, r.text).toBe(200);
          claimed.push({ id: r.json.id, token: r.json.claim_token, by });
        }
      }),
    );

    expect(claimed.length).toBe(500);
    expect(new Set(claimed.map((c) => c.id)).size).toBe(500);
    expect([...claimed.map((c) => c.id)].sort()).toEqual([...published].sort());
    expect(new Set(claimed.map((c) => c.token)).size).toBe(500);
    await expectNothing(t);
    await expectNothing(t, '?goal=work', { key: keys[0]!.api_key });

    // Each claim's token is live for its own claimer: all 500 fulfil.
    const done = await Promise.all(
      claimed.map((c) =>
        t.api('POST', `/fulfill/${c.id}`, {
          key: keys[c.by]!.api_key,
          body: { claim_token: c.token, result: c.by },
        }),
      ),
    );
    expect(done.filter((r) => r.status === 200).length).toBe(500);
  });
});
