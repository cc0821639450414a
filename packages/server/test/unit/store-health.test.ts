/**
 * The store-health tracker (src/store/health.ts) on a fake store: what degrades it, how a
 * degraded store is probed (a real write), what ends it, and what does not.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/core/clock.js';
import { PROBE_NAME, PROBE_OWNER, StoreHealth } from '../../src/store/health.js';
import { StoreUnavailableError, type Store } from '../../src/store/store.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const trouble = (): StoreUnavailableError =>
  new StoreUnavailableError('store unavailable: SQLITE_FULL');

/** A store whose ping and kvSet fail while told to; records the probe writes. */
function fakeStore() {
  const state = {
    pingFails: false,
    writeFails: false,
    writes: [] as { owner: string; name: string; value: string; expiresAt: number }[],
    pings: 0,
    /** What intentsCount answers (a call that takes as long as the test wants). */
    slow: Promise.resolve([]) as Promise<unknown>,
  };
  const store = {
    kind: 'sqlite' as const,
    async ping() {
      state.pings++;
      if (state.pingFails) throw trouble();
    },
    async kvSet(owner: string, name: string, value: string, expiresAt: number) {
      if (state.writeFails) throw trouble();
      state.writes.push({ owner, name, value, expiresAt });
    },
    async intentGet(id: string) {
      if (id === 'bad') throw trouble();
      if (id === 'bug') throw new TypeError('a bug, not the store');
      return null;
    },
    intentsCount: () => state.slow,
  };
  return { store: store as unknown as Store, state };
}

function tracker(o: { probeIntervalMs?: number; quietMs?: number } = {}) {
  const { store, state } = fakeStore();
  const logs: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  const log = {
    warn: (obj: object, msg: string) =>
      logs.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }),
    info: (obj: object, msg: string) =>
      logs.push({ level: 'info', obj: obj as Record<string, unknown>, msg }),
  };
  const health = new StoreHealth({
    store,
    clock: systemClock,
    log,
    probeIntervalMs: o.probeIntervalMs ?? 60_000,
    quietMs: o.quietMs ?? 50,
  });
  made.push(health);
  return { health, watched: health.watch(), state, logs };
}
const made: StoreHealth[] = [];
afterEach(() => {
  for (const h of made.splice(0)) h.stop();
});

describe('StoreHealth', () => {
  it('healthy: /health pings (a read) and writes nothing', async () => {
    const { health, state } = tracker();
    expect(await health.usable()).toBe(true);
    expect(state.pings).toBe(1);
    expect(state.writes).toEqual([]);
    expect(health.degraded).toBe(false);
  });

  it('a StoreUnavailableError of any watched call degrades it, with one warn line naming the cause', async () => {
    const { health, watched, logs } = tracker();
    expect(watched.kind).toBe('sqlite');
    await expect(watched.intentGet('bug')).rejects.toThrow(TypeError);
    expect(health.degraded).toBe(false);
    await expect(watched.intentGet('bad')).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(watched.intentGet('bad')).rejects.toBeInstanceOf(StoreUnavailableError);
    await sleep(0);
    expect(health.degraded).toBe(true);
    expect(logs).toEqual([
      {
        level: 'warn',
        obj: { store: 'sqlite', cause: 'store unavailable: SQLITE_FULL' },
        msg: expect.stringMatching(/^store degraded/),
      },
    ]);
  });

  it('degraded: /health writes (the probe) and answers by its outcome; a success ends it', async () => {
    const { health, watched, state, logs } = tracker();
    await watched.intentGet('bad').catch(() => undefined);
    await sleep(0);
    state.writeFails = true;
    expect(await health.usable()).toBe(false);
    expect(health.degraded).toBe(true);
    state.writeFails = false;
    expect(await health.usable()).toBe(true);
    expect(health.degraded).toBe(false);
    expect(state.writes).toHaveLength(1);
    const w = state.writes[0]!;
    expect(w).toMatchObject({ owner: PROBE_OWNER, name: PROBE_NAME });
    // Expired when written (no read returns it); JSON text.
    expect(w.expiresAt).toBeLessThanOrEqual(Date.now());
    expect(() => JSON.parse(w.value)).not.toThrow();
    expect(logs.at(-1)).toMatchObject({ level: 'info', obj: { failures: 2 } });
    expect(logs.at(-1)!.msg).toMatch(/^store recovered/);
    // Healthy again: back to pings.
    expect(await health.usable()).toBe(true);
    expect(state.writes).toHaveLength(1);
  });

  it('each probe writes a different value (SQLite skips a row whose bytes are unchanged)', async () => {
    const { health, watched, state } = tracker({ quietMs: 0 });
    for (let i = 0; i < 3; i++) {
      await watched.intentGet('bad').catch(() => undefined);
      await sleep(0);
      expect(await health.usable()).toBe(true);
    }
    expect(new Set(state.writes.map((w) => w.value)).size).toBe(3);
  });

  it('a successful probe while other calls keep failing does not end it', async () => {
    const { health, watched } = tracker({ quietMs: 100 });
    await watched.intentGet('bad').catch(() => undefined);
    await sleep(0);
    const failing = setInterval(() => void watched.intentGet('bad').catch(() => undefined), 20);
    try {
      expect(await health.usable()).toBe(false);
      expect(health.degraded).toBe(true);
    } finally {
      clearInterval(failing);
    }
    // Once they stop, the next probe ends it (after the quiet time).
    expect(await health.usable()).toBe(true);
  });

  it('a failure of a call made before the recovery does not degrade it again', async () => {
    const { health, watched, state } = tracker({ quietMs: 0 });
    await watched.intentGet('bad').catch(() => undefined);
    await sleep(0);
    // A call that started during the trouble and fails after the recovery.
    let fail!: (err: unknown) => void;
    state.slow = new Promise((_resolve, reject) => (fail = reject));
    const pending = watched.intentsCount();
    expect(await health.usable()).toBe(true);
    fail(trouble());
    await pending.catch(() => undefined);
    await sleep(0);
    expect(health.degraded).toBe(false);
    expect(state.writes).toHaveLength(1);
  });

  it('probes by itself while degraded, so that it recovers (and logs it) without /health', async () => {
    const { health, watched, state, logs } = tracker({ probeIntervalMs: 20, quietMs: 0 });
    state.writeFails = true;
    await watched.intentGet('bad').catch(() => undefined);
    await sleep(70);
    expect(health.degraded).toBe(true);
    state.writeFails = false;
    await sleep(70);
    expect(health.degraded).toBe(false);
    expect(logs.map((l) => l.level)).toEqual(['warn', 'info']);
    // And stops probing once healthy.
    const n = state.writes.length;
    await sleep(70);
    expect(state.writes).toHaveLength(n);
  });

  it('an unreachable store (ping fails) answers false and degrades it', async () => {
    const { health, state } = tracker();
    state.pingFails = true;
    expect(await health.usable()).toBe(false);
    expect(health.degraded).toBe(true);
  });
});
