/**
 * The crash loop (issue 8): publishers and workers run against the real `serve` process
 * while it is SIGKILLed every couple of seconds and restarted on the same data; then the
 * queue is drained and the history checker must find nothing lost, nothing fulfilled
 * twice, no stale token that succeeded and no acknowledged fulfil that did not stick.
 *
 * `npm test` runs a short version (3 crashes, 10 workers); `npm run test:reliability`
 * the long one (RELIABILITY_CRASHES=20, RELIABILITY_WORKERS=40). Everything goes to
 * 127.0.0.1 and stops by itself.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, describe, expect, it } from 'vitest';
import { MAIN_KEY } from '../helpers.js';
import { serverEnv, startProcess, type ServerProcess } from '../process-helpers.js';
import { check, violations, type History } from './history.js';

const CRASHES = Number(process.env.RELIABILITY_CRASHES ?? 3);
const WORKERS = Number(process.env.RELIABILITY_WORKERS ?? 10);
const PUBLISHERS = 4;
const GOAL = 'crash.loop';
const LEASE_SECONDS = 2;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const json = { 'content-type': 'application/json', 'x-api-key': MAIN_KEY };

describe('the crash loop', () => {
  const dir = mkdtempSync(join(tmpdir(), 'intent-bus-crash-'));
  let server: ServerProcess | null = null;
  afterAll(() => {
    if (server?.child.exitCode === null) server.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it(
    `loses nothing across ${CRASHES} SIGKILLs under load`,
    async () => {
      const env = serverEnv(join(dir, 'bus.db'), {
        BUS_LOG_LEVEL: 'info',
        BUS_CLAIM_TIMEOUT_SECONDS: String(LEASE_SECONDS),
      });
      const start = async (): Promise<void> => {
        server = await startProcess(env);
      };
      await start();
      const history: History = {
        acknowledged: new Set(),
        claims: [],
        fulfils: [],
        finals: new Map(),
      };
      /** The bus's address, or null while it is down. */
      const url = (): string | null => (server?.child.exitCode === null ? server.url : null);
      let publishing = true;
      let working = true;
      let seq = 0;
      const refusals: string[] = [];

      const publisher = async (): Promise<void> => {
        while (publishing) {
          const base = url();
          if (!base) {
            await sleep(20);
            continue;
          }
          try {
            const r = await fetch(`${base}/intent`, {
              method: 'POST',
              headers: json,
              body: JSON.stringify({ goal: GOAL, payload: { seq: seq++ }, max_attempts: 20 }),
              signal: AbortSignal.timeout(5000),
            });
            if (r.status === 201) {
              history.acknowledged.add(((await r.json()) as { id: string }).id);
            } else {
              // Only the bus being down or shutting down may refuse a publish here.
              if (r.status !== 503) refusals.push(`${r.status} ${await r.text()}`);
              else await r.arrayBuffer();
              await sleep(50);
            }
          } catch {
            await sleep(50);
          }
        }
      };

      const worker = async (n: number): Promise<void> => {
        while (working) {
          const base = url();
          if (!base) {
            await sleep(20);
            continue;
          }
          try {
            const r = await fetch(`${base}/claim?goal=${GOAL}&wait=1`, {
              method: 'POST',
              headers: { ...json, 'x-worker-id': `w${n}` },
              signal: AbortSignal.timeout(5000),
            });
            if (r.status !== 200) {
              await r.arrayBuffer();
              if (r.status !== 204) await sleep(50);
              continue;
            }
            const c = (await r.json()) as { id: string; claim_token: string };
            history.claims.push({ id: c.id, token: c.claim_token, at: performance.now() });
            const sentAt = performance.now();
            let status = 0;
            try {
              // The result is the token itself, so the final state says whose fulfil stuck.
              const f = await fetch(`${base}/fulfill/${c.id}`, {
                method: 'POST',
                headers: json,
                body: JSON.stringify({ claim_token: c.claim_token, result: c.claim_token }),
                signal: AbortSignal.timeout(5000),
              });
              status = f.status;
              await f.arrayBuffer();
            } finally {
              history.fulfils.push({ id: c.id, token: c.claim_token, sentAt, status });
            }
          } catch {
            await sleep(50);
          }
        }
      };

      const running = [
        ...Array.from({ length: PUBLISHERS }, publisher),
        ...Array.from({ length: WORKERS }, (_, i) => worker(i)),
      ];
      for (let i = 0; i < CRASHES; i++) {
        await sleep(1000 + Math.random() * 1500);
        const down = server!;
        down.child.kill('SIGKILL');
        expect((await down.exited).signal).toBe('SIGKILL');
        await start();
      }
      publishing = false;

      // Drain: leases cut by the crashes expire and come back; wait until nothing is live.
      const deadline = performance.now() + 60_000 + LEASE_SECONDS * 1000;
      const live = async (status: string): Promise<number> => {
        const r = await fetch(`${url()}/admin/intents?status=${status}&limit=1`, {
          headers: { 'x-admin-token': env.BUS_ADMIN_SECRET! },
        });
        return ((await r.json()) as { items: unknown[] }).items.length;
      };
      while ((await live('open')) + (await live('claimed')) > 0) {
        if (performance.now() > deadline) throw new Error('the queue did not drain in time');
        await sleep(200);
      }
      working = false;
      await Promise.all(running);

      // Every intent seen: a publish whose 201 was lost in a crash may still have been
      // stored, claimed and fulfilled.
      for (const id of new Set([...history.acknowledged, ...history.claims.map((c) => c.id)])) {
        const r = await fetch(`${url()}/result/${id}`, { headers: json });
        if (r.status === 200) history.finals.set(id, (await r.json()) as { status: string });
        else await r.arrayBuffer();
      }
      const verdict = check(history);
      console.log(
        `crash loop: ${CRASHES} SIGKILLs, ${WORKERS} workers, ${verdict.checked} acknowledged ` +
          `intents (${verdict.fulfilled} fulfilled, ${verdict.dead} dead), ` +
          `${history.claims.length} claims, ${history.fulfils.length} fulfils; ` +
          `lost ${verdict.lost.length}, fulfilled twice ${verdict.doubleFulfilled.length}, ` +
          `stale successes ${verdict.staleSuccesses.length}, ` +
          `acknowledged but not kept ${verdict.undurable.length}`,
      );
      expect(refusals).toEqual([]);
      expect(verdict.checked).toBeGreaterThan(0);
      // For each intent in a violation: what the clients saw of it, and how it ended.
      const bad = new Set([
        ...verdict.lost,
        ...verdict.doubleFulfilled,
        ...verdict.staleSuccesses,
        ...verdict.undurable,
        ...verdict.unknownTokens,
      ]);
      const detail = [...bad].slice(0, 5).map((id) => ({
        id,
        claims: history.claims.filter((c) => c.id === id),
        fulfils: history.fulfils.filter((f) => f.id === id),
        final: history.finals.get(id),
      }));
      expect(violations(verdict), JSON.stringify({ verdict, detail }, null, 1)).toBe(0);
    },
    (CRASHES * 3 + 90) * 1000,
  );
});
