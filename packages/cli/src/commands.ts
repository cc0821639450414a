/**
 * The client commands of the CLI (PRODUCT.md "The CLI"): each parses its own flags, talks
 * to the bus through the SDK, and prints for people or, with --json, the protocol's JSON.
 */
import type { ParseArgsConfig } from 'node:util';
import { IntentClient, type ResultObject, type StatusObject } from '@intent-bus/sdk';
import { resolveApiKey } from '@intent-bus/sdk/node';
import { makeOut, show, UsageError, Exit, EXIT, type Out } from './output.js';

type Options = NonNullable<ParseArgsConfig['options']>;

export interface Command {
  name: string;
  summary: string;
  usage: string;
  options: Options;
  run(ctx: Context): Promise<void>;
}

export interface Context {
  positionals: string[];
  values: Record<string, string | boolean | undefined>;
  out: Out;
  client(): IntentClient;
  adminClient(): IntentClient;
}

/** Flags every client command takes. */
export const GLOBAL_OPTIONS: Options = {
  url: { type: 'string' },
  key: { type: 'string' },
  'admin-token': { type: 'string' },
  json: { type: 'boolean' },
  'no-sign': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

export const GLOBAL_HELP = `Common flags:
  --url URL            the bus (INTENT_BUS_URL, default http://127.0.0.1:8080)
  --key KEY            API key (else INTENT_API_KEY, else ~/.apikey)
  --admin-token TOKEN  for admin commands (else INTENT_ADMIN_TOKEN, else BUS_ADMIN_SECRET)
  --json               print the protocol's JSON answer only
  --no-sign            send requests without the HMAC signature
  -h, --help           this help`;

export function makeContext(
  positionals: string[],
  values: Record<string, string | boolean | undefined>,
): Context {
  const out = makeOut(values.json === true);
  const baseUrl =
    (values.url as string | undefined) ?? process.env.INTENT_BUS_URL ?? 'http://127.0.0.1:8080';
  const sign = values['no-sign'] !== true;
  const userAgent = 'intent-bus-cli/0.1.0';
  return {
    positionals,
    values,
    out,
    client() {
      const key = resolveApiKey(values.key as string | undefined);
      if (!key)
        throw new UsageError('no API key: pass --key, set INTENT_API_KEY or write it to ~/.apikey');
      if (key.warning) out.note(`warning: ${key.warning}`);
      return new IntentClient({ baseUrl, apiKey: key.apiKey, sign, userAgent });
    },
    adminClient() {
      const adminToken =
        (values['admin-token'] as string | undefined) ??
        process.env.INTENT_ADMIN_TOKEN ??
        process.env.BUS_ADMIN_SECRET;
      if (!adminToken) {
        throw new UsageError('no admin token: pass --admin-token or set INTENT_ADMIN_TOKEN');
      }
      return new IntentClient({ baseUrl, adminToken, sign, userAgent });
    },
  };
}

/** Parses a JSON argument; a plain word is refused with a hint. */
export function jsonArg(name: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError(`${name} must be JSON, e.g. '{"path":"/data"}' or '"text"'`);
  }
}

export function numberArg(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name} must be a number`);
  return n;
}

function need(ctx: Context, count: number, names: string): string[] {
  if (ctx.positionals.length !== count) throw new UsageError(`expected ${names}`);
  return ctx.positionals;
}

const isFinal = (s: StatusObject): boolean => s.status === 'fulfilled' || s.status === 'dead';

function humanStatus(s: StatusObject | ResultObject): string {
  const lines = [
    `id:        ${s.id}`,
    `goal:      ${s.goal} (namespace ${s.namespace})`,
    `status:    ${s.status}`,
    `attempts:  ${s.claim_attempts} of ${s.max_attempts}`,
    `priority:  ${s.priority}, ${s.visibility}`,
    `created:   ${new Date(s.created_at * 1000).toISOString()}`,
    `run at:    ${new Date(s.run_at * 1000).toISOString()}`,
  ];
  if (s.worker_id) lines.push(`worker:    ${s.worker_id}`);
  if (s.error) lines.push(`error:     ${s.error}`);
  // Why it is dead when no worker said (cancelled, expired, lease expired): the bus adds
  // `dead_reason` to the status object.
  const reason = (s as { dead_reason?: unknown }).dead_reason;
  if (s.status === 'dead' && typeof reason === 'string' && reason !== s.error)
    lines.push(`reason:    ${reason}`);
  if ('result' in s && s.status === 'fulfilled') lines.push(`result:    ${show(s.result)}`);
  return lines.join('\n');
}

/** Waits for the end of an intent, with a progress line on stderr for each long wait. */
async function waitForEnd(
  ctx: Context,
  client: IntentClient,
  id: string,
  maxSeconds: number,
): Promise<ResultObject> {
  const started = Date.now();
  const left = (): number => maxSeconds - (Date.now() - started) / 1000;
  const round = (): Promise<ResultObject> =>
    client.getResult(id, { waitSeconds: Math.max(0, Math.min(30, Math.ceil(left()))) });
  let r = await round();
  while (!isFinal(r) && left() > 0) {
    ctx.out.note(
      `still waiting for ${id}: ${r.status}, ${Math.round((Date.now() - started) / 1000)} s so far`,
    );
    r = await round();
  }
  return r;
}

/** Prints a finished result; a dead intent ends with exit 1, an unfinished one with 3. */
function printResult(ctx: Context, r: ResultObject): void {
  ctx.out.result(r, () => (r.status === 'fulfilled' ? show(r.result) : humanStatus(r)));
  if (r.status === 'dead') throw new Exit(EXIT.error);
  if (r.status !== 'fulfilled') throw new Exit(EXIT.notFound);
}

export const publish: Command = {
  name: 'publish',
  summary: 'publish a job, optionally waiting for its result',
  usage: `intent-bus publish GOAL JSON [-n NS] [--priority N] [--delay S] [--public] [--target ID]
                   [--capability C] [--max-attempts N] [--backoff-base S] [--ttl S]
                   [--idempotency-key K] [--wait] [--wait-timeout S]

  --wait           block until the job is fulfilled or dead and print its result
                   (exit 0 fulfilled, 1 dead, 3 still running after --wait-timeout)
  --wait-timeout   seconds --wait may last (default: no limit)`,
  options: {
    namespace: { type: 'string', short: 'n' },
    priority: { type: 'string' },
    delay: { type: 'string' },
    public: { type: 'boolean' },
    target: { type: 'string' },
    capability: { type: 'string' },
    'max-attempts': { type: 'string' },
    'backoff-base': { type: 'string' },
    ttl: { type: 'string' },
    'idempotency-key': { type: 'string' },
    wait: { type: 'boolean' },
    'wait-timeout': { type: 'string' },
  },
  async run(ctx) {
    const [goal, json] = need(ctx, 2, 'GOAL and JSON');
    const v = ctx.values;
    const payload = jsonArg('JSON', json!);
    const waitTimeout =
      numberArg('wait-timeout', v['wait-timeout'] as string | undefined) ?? Infinity;
    const client = ctx.client();
    const published = await client.publish(goal!, payload, {
      namespace: v.namespace as string | undefined,
      priority: numberArg('priority', v.priority as string | undefined),
      delay: numberArg('delay', v.delay as string | undefined),
      visibility: v.public ? 'public' : undefined,
      targetWorker: v.target as string | undefined,
      requiredCapability: v.capability as string | undefined,
      maxAttempts: numberArg('max-attempts', v['max-attempts'] as string | undefined),
      backoffBase: numberArg('backoff-base', v['backoff-base'] as string | undefined),
      ttl: numberArg('ttl', v.ttl as string | undefined),
      idempotencyKey: v['idempotency-key'] as string | undefined,
    });
    if (!v.wait) {
      ctx.out.result(
        published,
        () => `published ${published.id} (namespace ${published.namespace})`,
      );
      return;
    }
    if (!ctx.out.json) ctx.out.note(`published ${published.id}, waiting for its result`);
    printResult(ctx, await waitForEnd(ctx, client, published.id, waitTimeout));
  },
};

export const result: Command = {
  name: 'result',
  summary: "print a job's result",
  usage: `intent-bus result ID [--wait S]

  --wait S   hold up to S seconds for the job to finish
  Exit 0 fulfilled, 1 dead, 3 unknown or not finished.`,
  options: { wait: { type: 'string' } },
  async run(ctx) {
    const [id] = need(ctx, 1, 'ID');
    const wait = numberArg('wait', ctx.values.wait as string | undefined) ?? 0;
    printResult(ctx, await waitForEnd(ctx, ctx.client(), id!, wait));
  },
};

export const status: Command = {
  name: 'status',
  summary: "print a job's status",
  usage: `intent-bus status ID

  Exit 0, or 3 when the id is unknown to this key.`,
  options: {},
  async run(ctx) {
    const [id] = need(ctx, 1, 'ID');
    const s = await ctx.client().getStatus(id!);
    ctx.out.result(s, () => humanStatus(s));
  },
};

export const kv: Command = {
  name: 'kv',
  summary: 'set or get a value in the key-value store',
  usage: `intent-bus kv set NAME VALUE [--ttl S]
intent-bus kv get NAME

  VALUE is stored as JSON when it parses as JSON, else as a string.
  get exits 3 when the name is absent or expired.`,
  options: { ttl: { type: 'string' } },
  async run(ctx) {
    const [action, name, value] = ctx.positionals;
    if (
      action === 'set' &&
      name !== undefined &&
      value !== undefined &&
      ctx.positionals.length === 3
    ) {
      let v: unknown = value;
      try {
        v = JSON.parse(value);
      } catch {
        // a plain string
      }
      const ttl = numberArg('ttl', ctx.values.ttl as string | undefined);
      await ctx.client().set(name, v, ttl === undefined ? {} : { ttl });
      ctx.out.result({ ok: true }, () => `set ${name}`);
      return;
    }
    if (action === 'get' && name !== undefined && ctx.positionals.length === 2) {
      const got = await ctx.client().get(name);
      if (got === undefined) {
        if (!ctx.out.json) ctx.out.note(`${name}: absent or expired`);
        throw new Exit(EXIT.notFound);
      }
      ctx.out.result({ value: got }, () => show(got));
      return;
    }
    throw new UsageError('expected: kv set NAME VALUE, or kv get NAME');
  },
};

export { need };
