#!/usr/bin/env node
// Searches every log line the test buses wrote during `vitest run` (test-artifacts/logs)
// for what must never be logged: API keys, the admin secret, the dashboard password,
// claim tokens, ids, signatures, credential headers and payloads. Exits 1 on any find.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

// The fixed test credentials of packages/server/test/helpers.ts.
const MAIN_KEY = 'k_main_test_0123456789abcdef';
const ADMIN_TOKEN = 'admin_test_0123456789abcdef';
const DASHBOARD_PASSWORD = 'dash-test-password';

const FORBIDDEN = [
  ['main key', new RegExp(MAIN_KEY)],
  ['admin token', new RegExp(ADMIN_TOKEN)],
  ['dashboard password', new RegExp(DASHBOARD_PASSWORD)],
  ['a tester key', /tk_[0-9a-f]{32}/],
  ['a claim token or intent id (32 hex)', /(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])/],
  ['a signature (64 hex)', /(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])/i],
  ['a credential header', /x-api-key|x-admin-token|x-signature|authorization/i],
  ['a payload', /"payload"|PAYLOAD_CANARY/],
];

const dir = new URL('../test-artifacts/logs/', import.meta.url).pathname;
if (!existsSync(dir)) {
  console.error(`check-test-logs: no logs in ${dir}; run the tests first`);
  process.exit(1);
}
const files = readdirSync(dir);
let lines = 0;
const leaks = [];
for (const f of files) {
  for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
    if (!line) continue;
    lines++;
    for (const [what, re] of FORBIDDEN) {
      if (re.test(line)) leaks.push(`${f}: ${what}: ${line.slice(0, 300)}`);
    }
  }
}
if (leaks.length > 0) {
  console.error(
    `check-test-logs: ${leaks.length} log lines hold secrets:\n${leaks.slice(0, 20).join('\n')}`,
  );
  process.exit(1);
}
if (lines === 0) {
  console.error('check-test-logs: the tests wrote no log line; the scan would prove nothing');
  process.exit(1);
}
console.log(`check-test-logs: ${lines} log lines in ${files.length} files, no secret found`);
