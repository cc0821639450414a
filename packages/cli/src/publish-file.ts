/**
 * `intent-bus publish --file JOBS.jsonl` [ext] (issue 21): one publish body per line
 * (PROTOCOL.md §5.1, plus `idempotency_key`), sent in batches of up to 1,000 (POST
 * /intents). Each payload goes as its exact text. A line that is not a JSON object is
 * reported with its number and not sent; the others are answered one by one by the bus.
 */
import { readFileSync } from 'node:fs';
import { rawMember, type IntentClient, type PublishManyItem } from '@intent-bus/sdk';
import { EXIT, Exit, UsageError, type Out } from './output.js';

/** What of a command's context this needs (commands.ts Context has it). */
interface Context {
  positionals: string[];
  values: Record<string, string | boolean | undefined>;
  out: Out;
  client(): IntentClient;
}

const BATCH = 1000;

/** The members of a line's publish body, by the SDK's option names. */
const OPTIONS: Array<[string, keyof PublishManyItem]> = [
  ['namespace', 'namespace'],
  ['visibility', 'visibility'],
  ['priority', 'priority'],
  ['delay', 'delay'],
  ['max_attempts', 'maxAttempts'],
  ['backoff_base', 'backoffBase'],
  ['target_worker', 'targetWorker'],
  ['required_capability', 'requiredCapability'],
  ['ttl', 'ttl'],
  ['idempotency_key', 'idempotencyKey'],
];

interface LineOutcome {
  line: number;
  status: number;
  id?: string;
  error?: { code: string; message: string };
}

function itemOf(text: string, namespace: string | undefined): PublishManyItem | string {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return 'not valid JSON';
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return 'not a JSON object (a publish body)';
  }
  const b = body as Record<string, unknown>;
  const item: Record<string, unknown> = { goal: b.goal };
  const payloadText = rawMember(text, 'payload');
  if (payloadText !== undefined) item.payloadText = payloadText;
  for (const [from, to] of OPTIONS) if (b[from] !== undefined) item[to] = b[from];
  if (item.namespace === undefined && namespace !== undefined) item.namespace = namespace;
  return item as unknown as PublishManyItem;
}

export async function publishFile(ctx: Context, path: string): Promise<void> {
  if (ctx.positionals.length > 0) throw new UsageError('--file takes no GOAL or PAYLOAD');
  let text: string;
  try {
    text = readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (err) {
    throw new UsageError(`--file ${path}: ${(err as Error).message}`);
  }
  const namespace = ctx.values.namespace as string | undefined;
  const outcomes: LineOutcome[] = [];
  const pending: Array<{ line: number; item: PublishManyItem }> = [];
  const client = ctx.client();
  const send = async (): Promise<void> => {
    if (pending.length === 0) return;
    const answers = await client.publishMany(pending.map((p) => p.item));
    answers.forEach((a, i) => {
      const line = pending[i]!.line;
      if (a.ok) outcomes.push({ line, status: a.status, id: a.value.id });
      else
        outcomes.push({
          line,
          status: a.status,
          error: { code: a.error.code, message: a.error.message },
        });
    });
    pending.length = 0;
  };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '') continue;
    const item = itemOf(raw, namespace);
    if (typeof item === 'string') {
      outcomes.push({ line: i + 1, status: 0, error: { code: 'bad_line', message: item } });
      continue;
    }
    pending.push({ line: i + 1, item });
    if (pending.length === BATCH) await send();
  }
  await send();
  outcomes.sort((a, b) => a.line - b.line);
  const failed = outcomes.filter((o) => o.error !== undefined);
  ctx.out.result(outcomes, () => {
    const lines = failed.map((o) => `line ${o.line}: ${o.error!.code}: ${o.error!.message}`);
    lines.push(
      `published ${outcomes.length - failed.length} of ${outcomes.length} lines, ${failed.length} failed`,
    );
    return lines.join('\n');
  });
  if (failed.length > 0) throw new Exit(EXIT.error);
}
