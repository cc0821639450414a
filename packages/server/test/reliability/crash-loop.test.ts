/**
 * The crash loop (issue 8): publishers and workers run against the real `serve` process
 * while it is SIGKILLed every couple of seconds and restarted on the same data; then the
 * queue is drained and the history checker must find nothing lost, nothing fulfilled
 * twice, no stale token that succeeded and no acknowledged fulfil that did not stick.
 * On SQLite (the same file) and on PostgreSQL (a database of its own).
 *
 * `npm test` runs a short version (3 crashes, 10 workers); `npm run test:reliability`
 * the long one (RELIABILITY_CRASHES=20, RELIABILITY_WORKERS=40). Everything goes to
 * 127.0.0.1 and stops by itself.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { storeFixture, type ServerProcess } from '../process-helpers.js';
import { violations } from './history.js';
import { Load } from './load.js';

const CRASHES = Number(process.env.RELIABILITY_CRASHES ?? 3);
const WORKERS = Number(process.env.RELIABILITY_WORKERS ?? 10);
const LEASE_SECONDS = 2;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe.each(['sqlite', 'postgres'] as const)('the crash loop on %s', (store) => {
  const data = storeFixture(store);
  afterAll(() => data.cleanup());

  it(
    `loses nothing across ${CRASHES} SIGKILLs under load`,
    async () => {
      const start = (): Promise<ServerProcess> =>
        data.start({ BUS_LOG_LEVEL: 'info', BUS_CLAIM_TIMEOUT_SECONDS: String(LEASE_SECONDS) });
      let server = await start();
      const load = new Load({
        node: () => (server.child.exitCode === null ? server.url : null),
        nodes: 1,
        publishers: 4,
        workers: WORKERS,
        goal: 'crash.loop',
      });
      for (let i = 0; i < CRASHES; i++) {
        await sleep(1000 + Math.random() * 1500);
        const down = server;
        down.child.kill('SIGKILL');
        expect((await down.exited).signal).toBe('SIGKILL');
        server = await start();
      }
      const verdict = await load.drain(60_000 + LEASE_SECONDS * 1000);
      console.log(
        load.summary(`crash loop on ${store}: ${CRASHES} SIGKILLs, ${WORKERS} workers`, verdict),
      );
      expect(load.refusals).toEqual([]);
      expect(verdict.checked).toBeGreaterThan(0);
      expect(violations(verdict), load.detail(verdict)).toBe(0);
    },
    (CRASHES * 3 + 90) * 1000,
  );
});
