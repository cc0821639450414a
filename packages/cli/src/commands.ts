/**
 * The client commands of the CLI (PRODUCT.md "The CLI"): each parses its own flags, talks
 * to the bus through the SDK, and prints for people or, with --json, the protocol's JSON.
 * Payloads, results and values go as their exact text, never parsed and written again: a
 * JSON argument is checked and sent as typed, and what is printed is the text the bus sent.
 */
import { followProgress } from './follow.js';
import { publishFile } from './publish-file.js';
import type { ParseArgsConfig } from 'node:util';
import {
  IntentClient,
  withRawMembers,
  type ExactResultObject,
  type StatusObject,
} from '@intent-bus/sdk';
import {
  isLoopbackUrl,
  localBusSecret,
  localSecretsFile,
  resolveAdminToken,
  resolveApiKey,
} from '@intent-bus/sdk/node';
import { makeOut, showJson, SettingError, UsageError, Exit, EXIT, type Out } from './output.js';

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
  /** Where the credential sent came from ("the API key of ~/.apikey"), once one was. */
  credential?: string;
}

/** Flags every client command takes. */
export const GLOBAL_OPTIONS: Options = {
  url: { type: 'string' },
  key: { type: 'string' },
  'admin-token': { type: 'string' },
  db: { type: 'string' },
  json: { type: 'boolean' },
  'no-sign': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

export const GLOBAL_HELP = `Common flags:
  --url URL            the bus (else INTENT_BUS_URL, else http://127.0.0.1:8080)
  --key KEY            the API key; else INTENT_API_KEY, else ~/.apikey, else, when the
                       bus is on this machine (localhost, 127.x.x.x, [::1]), the bus's
                       own BUS_SECRET in its secrets.json
  --admin-token TOKEN  the admin token of admin commands; else INTENT_ADMIN_TOKEN, else
                       BUS_ADMIN_SECRET, else ~/.admintoken, else, when the bus is on this
                       machine, BUS_ADMIN_SECRET in its secrets.json
  --db PATH            where that secrets.json is: beside the bus's SQLite file (else
                       BUS_DB_PATH, else ./intent-bus-data/bus.db, as serve has it)
  --json               print the protocol's JSON answer only
  --no-sign            send requests without the HMAC signature
  -h, --help           this help`;

const DEFAULT_URL = 'http://127.0.0.1:8080';

/** The bus's URL; one without http:// or https:// is refused, naming where it was set. */
export function busUrl(values: Record<string, string | boolean | undefined>): string {
  const flag = values.url as string | undefined;
  const fromEnv = process.env.INTENT_BUS_URL || undefined;
  const url = flag ?? fromEnv ?? DEFAULT_URL;
  let ok = false;
  try {
    ok = ['http:', 'https:'].includes(new URL(url).protocol);
  } catch {
    // not a URL at all, e.g. 127.0.0.1:8080
  }
  if (!ok) {
    const setting = flag !== undefined ? '--url' : 'INTENT_BUS_URL';
    const hostPort = url.replace(/^[a-z][\w+.-]*:\/\//i, '');
    throw new SettingError(
      `${setting}: "${url}" is not an http:// or https:// URL; write e.g. http://${hostPort}`,
    );
  }
  return url;
}

export function makeContext(
  positionals: string[],
  values: Record<string, string | boolean | undefined>,
): Context {
  const out = makeOut(values.json === true);
  const sign = values['no-sign'] !== true;
  const userAgent = 'intent-bus-cli/0.1.0';
  /**
   * A credential as found by the SDK (flag, environment, file in the home folder), else,
   * for a bus on this machine, from the secrets.json `serve` wrote beside its database:
   * whoever can read that file is the bus's operator already.
   */
  const credential = (
    baseUrl: string,
    found: { value: string; source: string; warning?: string } | null,
    what: string,
    secret: 'BUS_SECRET' | 'BUS_ADMIN_SECRET',
    ask: string,
  ): string => {
    if (found?.warning) out.note(`warning: ${found.warning}`);
    if (found) {
      ctx.credential = `the ${what} of ${found.source}`;
      return found.value;
    }
    const file = isLoopbackUrl(baseUrl)
      ? localSecretsFile((values.db as string | undefined) || undefined)
      : null;
    const value = file ? localBusSecret(secret, file) : null;
    if (!value) {
      const local = file
        ? `; or, for the bus on this machine, pass --db with its database (${file} has no ${secret})`
        : '';
      throw new Error(`no ${what}: ${ask}${local}`);
    }
    ctx.credential = `the ${secret} of ${file}`;
    return value;
  };
  const ctx: Context = {
    positionals,
    values,
    out,
    client() {
      const baseUrl = busUrl(values);
      const key = resolveApiKey(values.key as string | undefined);
      const apiKey = credential(
        baseUrl,
        key && {
          ...key,
          value: key.apiKey,
          source: key.source === 'option' ? '--key' : key.source,
        },
        'API key',
        'BUS_SECRET',
        'pass --key, set INTENT_API_KEY or write it to ~/.apikey',
      );
      return new IntentClient({ baseUrl, apiKey, sign, userAgent });
    },
    adminClient() {
      const baseUrl = busUrl(values);
      const token = resolveAdminToken(values['admin-token'] as string | undefined);
      const adminToken = credential(
        baseUrl,
        token && {
          ...token,
          value: token.adminToken,
          source: token.source === 'option' ? '--admin-token' : token.source,
        },
        'admin token',
        'BUS_ADMIN_SECRET',
        'pass --admin-token, set INTENT_ADMIN_TOKEN or write it to ~/.admintoken',
      );
      return new IntentClient({ baseUrl, adminToken, sign, userAgent });
    },
  };
  return ctx;
}

/** Where JSON.parse gave up: the length of the longest prefix some JSON text could start with. */
function jsonErrorPosition(text: string): number {
  // A prefix is fine when it parses, or when what is wrong is only that it ends too soon
  // (V8 then says "end of JSON input", or names the position just past the prefix).
  const fine = (n: number): boolean => {
    try {
      JSON.parse(text.slice(0, n));
      return true;
    } catch (err) {
      const m = (err as Error).message;
      return /end of JSON input/.test(m) || new RegExp(`at position ${n}\\b`).test(m);
    }
  };
  let [lo, hi] = [0, text.length]; // fine(lo) holds; find the last n where it does
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fine(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * Checks a JSON argument and returns its own text, to be sent as typed (JSON.parse would
 * round 12345678901234567890); a mistake names the argument and where in it JSON broke.
 */
export function jsonArg(name: string, text: string): string {
  try {
    JSON.parse(text);
    return text;
  } catch (err) {
    // V8 quotes the whole text ('Unexpected token }, "{"a":}" is not valid JSON') and often
    // no position: keep its first words and say where.
    // Node 24 adds " (line 1 column 8)" after the position.
    const what = (err as Error).message
      .replace(/,\s*"[\s\S]*" is not valid JSON$/, '')
      .replace(/ \(line \d+ column \d+\)$/, '')
      .replace(/ in JSON at position \d+$/, '')
      .replace(/ at position \d+$/, '');
    const at = what.startsWith('Unexpected end') ? null : jsonErrorPosition(text);
    // A bare word is most often meant as a string, whose quotes the shell took.
    const hint = /^[a-z][\w .,:/-]{0,39}$/i.test(text) ? `; a string is written '"${text}"'` : '';
    throw new UsageError(
      `JSON argument ${name}: ${what}${at === null ? '' : ` at position ${at}`}${hint}`,
    );
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

function humanStatus(s: StatusObject | ExactResultObject): string {
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
  if ('resultText' in s && s.status === 'fulfilled')
    lines.push(`result:    ${showJson(s.resultText)}`);
  return lines.join('\n');
}

/** Waits for the end of an intent, with a progress line on stderr for each long wait. */
async function waitForEnd(
  ctx: Context,
  client: IntentClient,
  id: string,
  maxSeconds: number,
): Promise<ExactResultObject> {
  const started = Date.now();
  const left = (): number => maxSeconds - (Date.now() - started) / 1000;
  const round = (): Promise<ExactResultObject> =>
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

/**
 * The JSON text of GET /result's answer: the result spliced in as the bus sent it, last, as
 * the bus writes it (the other members are plain strings, small numbers and nulls).
 */
function resultAnswer(r: ExactResultObject): string {
  const { result, resultText, ...status } = r;
  return withRawMembers(status, { result: resultText });
}

/** Prints a finished result; a dead intent ends with exit 1, an unfinished one with 3. */
function printResult(ctx: Context, r: ExactResultObject): void {
  ctx.out.resultText(resultAnswer(r), () =>
    r.status === 'fulfilled' ? showJson(r.resultText) : humanStatus(r),
  );
  if (r.status === 'dead') throw new Exit(EXIT.error);
  if (r.status !== 'fulfilled') throw new Exit(EXIT.notFound);
}

export const publish: Command = {
  name: 'publish',
  summary: 'publish a job, optionally waiting for its result',
  usage: `intent-bus publish GOAL PAYLOAD [-n NS] [--priority N] [--delay S] [--public]
                   [--target ID] [--capability C] [--max-attempts N] [--backoff-base S]
                   [--ttl S] [--idempotency-key K] [--wait [--follow]] [--wait-timeout S]
       intent-bus publish --file JOBS.jsonl [-n NS]

  PAYLOAD          the job's input as JSON: '{"path":"/data"}', '"text"', 42; sent as
                   typed, every number exact. A negative number goes last, after --:
                   intent-bus publish GOAL --wait -- -42
  --wait           block until the job is fulfilled or dead and print its result
                   (exit 0 fulfilled, 1 dead, 3 still running after --wait-timeout)
  --follow         with --wait: print the job's progress lines (stderr) as they come
  --wait-timeout   seconds --wait may last (default: no limit)
  --file PATH      publish every line of PATH (- for stdin), one publish body per line
                   ({"goal": …, "payload": …, "idempotency_key": …}), in batches of
                   up to 1,000; prints each bad line with its number and a summary
                   (exit 1 when any line failed; in JSON mode, each line's outcome)`,
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
    follow: { type: 'boolean' },
    'wait-timeout': { type: 'string' },
    file: { type: 'string' },
  },
  async run(ctx) {
    if (ctx.values.file !== undefined) return publishFile(ctx, ctx.values.file as string);
    const [goal, json] = need(ctx, 2, 'GOAL and PAYLOAD');
    if (ctx.values.follow && !ctx.values.wait) throw new UsageError('--follow goes with --wait');
    const v = ctx.values;
    const payloadText = jsonArg('PAYLOAD', json!);
    const waitTimeout =
      numberArg('wait-timeout', v['wait-timeout'] as string | undefined) ?? Infinity;
    const client = ctx.client();
    const published = await client.publish(goal!, undefined, {
      payloadText,
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
    const following = new AbortController();
    const followed = v.follow
      ? followProgress(client, published.id, (line) => ctx.out.note(line), following.signal)
      : null;
    try {
      printResult(ctx, await waitForEnd(ctx, client, published.id, waitTimeout));
    } finally {
      following.abort();
      await followed;
    }
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

  VALUE is stored as JSON, exactly as typed, when it parses as JSON, else as a
  string (a negative number goes last, after --: kv set NAME -- -42).
  get prints the value as stored; it exits 3 when the name is absent or expired.`,
  options: { ttl: { type: 'string' } },
  async run(ctx) {
    const [action, name, value] = ctx.positionals;
    if (
      action === 'set' &&
      name !== undefined &&
      value !== undefined &&
      ctx.positionals.length === 3
    ) {
      let valueText: string | undefined;
      try {
        JSON.parse(value);
        valueText = value; // JSON: sent as typed
      } catch {
        // a plain string
      }
      const ttl = numberArg('ttl', ctx.values.ttl as string | undefined);
      await ctx.client().set(name, valueText === undefined ? value : undefined, { ttl, valueText });
      ctx.out.result({ ok: true }, () => `set ${name}`);
      return;
    }
    if (action === 'get' && name !== undefined && ctx.positionals.length === 2) {
      const got = await ctx.client().getText(name);
      if (got === undefined) {
        if (!ctx.out.json) ctx.out.note(`${name}: absent or expired`);
        throw new Exit(EXIT.notFound);
      }
      ctx.out.resultText(withRawMembers({}, { value: got }), () => showJson(got));
      return;
    }
    throw new UsageError('expected: kv set NAME VALUE, or kv get NAME');
  },
};

export { need };
