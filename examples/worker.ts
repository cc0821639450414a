/**
 * A worker in TypeScript with the SDK (IntentClient + WorkerRuntime): it takes jobs of
 * one goal, counts the words of each job's text, and fulfils the job with the counts. The
 * runtime long-polls, extends the lease of a long job, fails a job whose handler throws,
 * and on Ctrl-C or SIGTERM stops claiming and lets the jobs in flight finish.
 *
 * Run it from the repository root (`npm install` builds the packages):
 *
 *   $ npx tsc -p examples --noEmit false
 *   $ node examples/dist/worker.js
 *
 * It reads INTENT_BUS_URL (default http://127.0.0.1:8080), the key from INTENT_API_KEY
 * (else ~/.apikey), GOAL (default "word-count") and CONCURRENCY (default 4). Then give it
 * work, from anywhere:
 *
 *   npx intent-bus publish word-count '{"text":"to be or not to be"}' --wait
 */
import { IntentClient, WorkerRuntime, type Job } from '@intent-bus/sdk';
import { resolveApiKey } from '@intent-bus/sdk/node';

const key = resolveApiKey();
if (!key) {
  console.error('No API key: set INTENT_API_KEY or write it to ~/.apikey');
  process.exit(2);
}
if (key.warning) console.error(`warning: ${key.warning}`);

const client = new IntentClient({
  baseUrl: process.env.INTENT_BUS_URL ?? 'http://127.0.0.1:8080',
  apiKey: key.apiKey,
});

const runtime = new WorkerRuntime({
  client,
  workerId: process.env.WORKER_ID ?? `word-counter-${process.pid}`,
  concurrency: Number(process.env.CONCURRENCY ?? 4),
  // Progress on stderr: "job failed", "lease lost", "bus unreachable, retrying"...
  logger: {
    info: (message, fields) => console.error(message, fields ?? ''),
    warn: (message, fields) => console.error(`warning: ${message}`, fields ?? ''),
    error: (message, fields) => console.error(`error: ${message}`, fields ?? ''),
  },
});

interface Counts {
  words: number;
  distinct: number;
  /** The three most frequent words, with their counts. */
  top: Record<string, number>;
}

/** The handler: its return value is the job's JSON result; what it throws fails the job. */
function countWords(job: Job): Counts {
  const { text } = (job.payload ?? {}) as { text?: unknown };
  if (typeof text !== 'string') throw new Error('payload.text must be a string');
  const counts = new Map<string, number>();
  const words = text.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? [];
  for (const w of words) counts.set(w, (counts.get(w) ?? 0) + 1);
  const top = Object.fromEntries(
    [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, 3),
  );
  console.log(`job ${job.id} (attempt ${job.claim_attempts}): ${words.length} words`);
  return { words: words.length, distinct: counts.size, top };
}

const goal = process.env.GOAL ?? 'word-count';
console.error(`listening for ${goal} on ${client.baseUrl} (Ctrl-C to stop)`);
const summary = await runtime.listen({ goal, handler: countWords });
console.error(`stopped: ${summary.fulfilled} fulfilled, ${summary.failed} failed`);
