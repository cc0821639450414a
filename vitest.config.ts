import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * The server's integration tests: the files of packages/server/test that start their buses
 * with `startTestBus` (test/helpers.ts). The process tests (`serve` as a child, each with
 * the store it chooses) and everything else run once.
 */
const SERVER_TESTS = fileURLToPath(new URL('packages/server/test/', import.meta.url));
const onTestBuses = readdirSync(SERVER_TESTS)
  .filter((f) => f.endsWith('.test.ts'))
  .filter((f) => /\bstartTestBus\(/.test(readFileSync(SERVER_TESTS + f, 'utf8')))
  .map((f) => `packages/server/test/${f}`);

export default defineConfig({
  resolve: { conditions: ['source'] },
  test: {
    // CI also writes a JSON report, from which .ci/run prints its closing count.
    reporters: process.env.CI
      ? ['default', ['json', { outputFile: 'test-artifacts/vitest.json' }]]
      : ['default'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
    globalSetup: ['packages/server/test/global-setup.ts'],
    projects: [
      // Every test once; the server's test buses on SQLite.
      { extends: true, test: { name: 'default', include: ['packages/*/test/**/*.test.ts'] } },
      // The server's integration tests again, every test bus on PostgreSQL in a schema of
      // its own (BUS_TEST_DATABASE_URL, by default postgres://postgres@127.0.0.1:5432/test).
      {
        extends: true,
        test: { name: 'server-pg', include: onTestBuses, env: { TEST_STORE: 'postgres' } },
      },
    ],
  },
});
