/**
 * Publishes one job and waits for its result: a remote procedure call over the bus. Some
 * worker must take jobs of the goal (examples/worker.ts does for "word-count").
 *
 * Run it from the repository root (`npm install` builds the packages):
 *
 *   $ npx tsc -p examples --noEmit false
 *   $ node examples/dist/publish-and-wait.js '{"text":"to be or not to be"}'
 *
 * The argument is the payload, as JSON. It reads INTENT_BUS_URL (default
 * http://127.0.0.1:8080), the key from INTENT_API_KEY (else ~/.apikey), GOAL (default
 * "word-count") and WAIT_SECONDS (default 60). It prints the result and exits 0 when the
 * job is fulfilled, 1 when it died (with the reason), 3 when no result came in time.
 */
import { IntentClient, type ResultObject } from '@intent-bus/sdk';
import { resolveApiKey } from '@intent-bus/sdk/node';

const goal = process.env.GOAL ?? 'word-count';
const waitSeconds = Number(process.env.WAIT_SECONDS ?? 60);
let payload: unknown;
try {
  payload = JSON.parse(process.argv[2] ?? '{"text":"to be or not to be"}');
} catch {
  console.error(`The payload must be JSON, e.g. '{"text":"hello"}'`);
  process.exit(2);
}

const client = new IntentClient({
  baseUrl: process.env.INTENT_BUS_URL ?? 'http://127.0.0.1:8080',
  apiKey: resolveApiKey()?.apiKey,
});

// The SDK adds an idempotency key, so a publish it retries is never published twice.
const { id } = await client.publish(goal, payload, { maxAttempts: 3 });
console.error(`published ${id} (${goal}); waiting up to ${waitSeconds} s for its result`);

// The bus holds each read until the job is fulfilled or dead, up to 60 s.
const deadline = Date.now() + waitSeconds * 1000;
let r: ResultObject;
do {
  const left = Math.ceil((deadline - Date.now()) / 1000);
  r = await client.getResult(id, { waitSeconds: Math.max(0, Math.min(60, left)) });
} while (r.status !== 'fulfilled' && r.status !== 'dead' && Date.now() < deadline);

if (r.status === 'fulfilled') {
  console.log(typeof r.result === 'string' ? r.result : JSON.stringify(r.result, null, 2));
} else if (r.status === 'dead') {
  const reason = r.error ?? (r as { dead_reason?: string }).dead_reason ?? 'unknown';
  console.error(`the job died after ${r.claim_attempts} attempts: ${reason}`);
  process.exitCode = 1;
} else {
  console.error(`no result within ${waitSeconds} s: the job is ${r.status}`);
  process.exitCode = 3;
}
