/**
 * Vitest global setup: empties the test log folder, so that scripts/check-test-logs.mjs
 * (run by `npm test` after vitest) searches the logs of this run only.
 */
import { rmSync } from 'node:fs';
import { LOG_DIR } from './helpers.js';

export function setup(): void {
  rmSync(LOG_DIR, { recursive: true, force: true });
}
