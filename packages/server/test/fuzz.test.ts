/**
 * Property-based fuzzing of every endpoint of PROTOCOL.md §5 and §6 over real HTTP.
 *
 * Requests are generated with fast-check (methods, paths and path parameters, query strings,
 * headers, credentials, content types and bodies, signed or not) and sent to one real bus
 * with fetch, or with node:http where fetch cannot say it (a body on GET/HEAD, a raw path,
 * chunked bodies). Every answer must hold:
 *
 * - an answer at all, that the client can parse (no reset, no hang, no malformed response);
 * - never a 5xx;
 * - the headers of §5 (X-Intent-Version: 2.1, X-Content-Type-Options: nosniff, and the
 *   other three) on every response, errors included;
 * - every non-2xx answer (but to HEAD, which has no body) is exactly
 *   {"error": {"code", "message", ...}} with a code of ERROR_CODES whose status is the
 *   HTTP status; a 2xx answer labelled JSON parses as JSON;
 * - the bus keeps serving: GET /health answers 200 after each property.
 *
 * Generated payloads often carry PAYLOAD_CANARY: scripts/check-test-logs.mjs then proves
 * that no payload reached the logs.
 *
 * FUZZ_SEED=<int> replays a run; FUZZ_RUNS=<n> sets the runs of every property (long local
 * runs); FUZZ_STATS=1 prints how many answers of each method, path and status were seen.
 */
import { createHmac, randomBytes } from 'node:crypto';
import {
  request as httpRequest,
  validateHeaderName,
  validateHeaderValue,
  type ClientRequest,
} from 'node:http';
import fc from 'fast-check';
import { ERROR_CODES, canonicalPath, signingPrefix, splitTarget } from '@intent-bus/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  DASHBOARD_PASSWORD,
  MAIN_KEY,
  publish,
  startTestBus,
  type TestBus,
} from './helpers.js';

// ---------------------------------------------------------------------------------------
// Run settings
// ---------------------------------------------------------------------------------------

// CI replays one fixed seed so that a submission lands or fails on its own merits; local
// runs and `npm run test:fuzz` explore new cases (a failure prints its seed).
const SEED = process.env.FUZZ_SEED
  ? Number(process.env.FUZZ_SEED)
  : process.env.CI
    ? 20261127
    : undefined;
const RUNS = process.env.FUZZ_RUNS ? Number(process.env.FUZZ_RUNS) : undefined;
/** Per-test timeout: generous, since a failing property shrinks over real HTTP. */
const TEST_TIMEOUT = RUNS ? Math.max(120_000, RUNS * 200) : 120_000;

function settings(defaultRuns: number): fc.Parameters<unknown> {
  return {
    numRuns: RUNS ?? defaultRuns,
    ...(SEED !== undefined && Number.isFinite(SEED) ? { seed: SEED } : {}),
  };
}

const CANARY = 'PAYLOAD_CANARY';

// ---------------------------------------------------------------------------------------
// Requests and responses
// ---------------------------------------------------------------------------------------

type Transport = 'fetch' | 'http';
/** How a request is signed (§3), computed at send time over the exact bytes sent. */
type SignMode = 'none' | 'valid' | 'stale' | 'replay' | 'wrong-key';

interface ReqSpec {
  transport: Transport;
  method: string;
  /** The request target: path and query, as generated (fetch may normalise it). */
  target: string;
  headers: Array<[string, string]>;
  body: Uint8Array | null;
  /** node:http only: send the body with Transfer-Encoding: chunked. */
  chunked: boolean;
  sign: SignMode;
}

interface Resp {
  status: number;
  headers: Record<string, string>;
  text: string;
}

/** The headers of §5 that every response carries, errors included. */
const SPEC_HEADERS: Record<string, string> = {
  'x-intent-version': '2.1',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

/** What check-test-logs.mjs refuses to find in a log line. */
const LOG_FORBIDDEN = [
  /(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])/,
  /(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])/i,
  /x-api-key|x-admin-token|x-signature|authorization/i,
  /"payload"|PAYLOAD_CANARY/,
  /tk_[0-9a-f]{32}/,
  /k_main_test|admin_test|dash-test-password/,
];
const REQUEST_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

/**
 * A valid X-Request-ID is the request's log id by design. One that looks like a secret
 * would trip the log scan without any leak, so such ids are replaced before sending.
 */
function logSafe(name: string, value: string): string {
  // The server sees the value trimmed, as HTTP header values are.
  if (name.toLowerCase() !== 'x-request-id' || !REQUEST_ID.test(value.trim())) return value;
  return LOG_FORBIDDEN.some((re) => re.test(value)) ? 'fuzz-request-id' : value;
}

const show = (s: string, max = 400): string =>
  JSON.stringify(s.length > max ? `${s.slice(0, max)}…(${s.length} chars)` : s);

function describeExchange(req: ReqSpec, sentTarget: string, res: Resp | null): string {
  const body =
    req.body === null ? 'none' : show(Buffer.from(req.body).toString('utf8'), 300) + ' (utf8)';
  const lines = [
    `request: ${req.method} ${show(sentTarget, 300)} via ${req.transport}` +
      `${req.chunked ? ' chunked' : ''}, sign=${req.sign}`,
    `  headers: ${show(JSON.stringify(req.headers), 600)}`,
    `  body: ${body}`,
  ];
  if (res) {
    lines.push(
      `response: ${res.status}`,
      `  headers: ${show(JSON.stringify(res.headers), 600)}`,
      `  body: ${show(res.text, 600)}`,
    );
  }
  return lines.join('\n');
}

/** The request target the server receives: fetch normalises the URL, node:http does not. */
function sentTargetOf(base: string, req: ReqSpec): string | null {
  if (req.transport === 'http') return req.target;
  try {
    const u = new URL(base + req.target);
    return u.pathname + u.search;
  } catch {
    return null;
  }
}

/** Long polls would make the run slow: a request whose `wait` is a real wait is skipped. */
function waitsLong(sentTarget: string): boolean {
  const { query } = splitTarget(sentTarget);
  if (query === '') return false;
  let params: URLSearchParams;
  try {
    params = new URLSearchParams(query);
  } catch {
    return false;
  }
  for (const [k, v] of params) {
    if (k === 'wait' && Number(v) > 0.1) return true;
  }
  // Raw values too, in case the server decodes differently from URLSearchParams.
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    if (eq >= 0 && Number(pair.slice(eq + 1)) > 0.1 && /wait/i.test(pair.slice(0, eq))) return true;
  }
  return false;
}

const lastNonce = new Map<string, string>();

function hmac(
  key: string,
  method: string,
  target: string,
  ts: string,
  nonce: string,
  body: Uint8Array | null,
): string {
  const { path, query } = splitTarget(target);
  const h = createHmac('sha256', key).update(
    signingPrefix(method, canonicalPath(path, query), ts, nonce),
  );
  if (body && body.length > 0) h.update(body);
  return h.digest('hex');
}

/** Adds X-Timestamp, X-Nonce and X-Signature for the given mode. */
function signatureHeaders(req: ReqSpec, sentTarget: string): Array<[string, string]> {
  if (req.sign === 'none') return [];
  const key = req.headers.find(([k]) => k.toLowerCase() === 'x-api-key')?.[1] ?? 'no-key';
  const now = Math.floor(Date.now() / 1000);
  const ts = String(req.sign === 'stale' ? now - 1000 : now);
  let nonce = randomBytes(16).toString('hex');
  if (req.sign === 'replay') nonce = lastNonce.get(key) ?? nonce;
  lastNonce.set(key, nonce);
  const signingKey = req.sign === 'wrong-key' ? `${key}x` : key;
  const sig = hmac(signingKey, req.method, sentTarget, ts, nonce, req.body);
  return [
    ['X-Timestamp', ts],
    ['X-Nonce', nonce],
    ['X-Signature', sig],
  ];
}

type Sent = { res: Resp; sentTarget: string } | null;

/** Sends one request; null when the client itself refuses to send it (not the server's fault). */
async function send(base: string, req: ReqSpec): Promise<Sent> {
  const sentTarget = sentTargetOf(base, req);
  if (sentTarget === null) return null;
  // node:http refuses a path with spaces, controls or non-Latin-1 characters.
  if (req.transport === 'http' && /[^\u0021-\u00ff]/.test(sentTarget)) return null;
  const headers = [...req.headers, ...signatureHeaders(req, sentTarget)].map(
    ([k, v]) => [k, logSafe(k, v)] as [string, string],
  );
  return req.transport === 'fetch'
    ? viaFetch(base, req, headers, sentTarget)
    : viaHttp(base, req, headers, sentTarget);
}

async function viaFetch(
  base: string,
  req: ReqSpec,
  headerList: Array<[string, string]>,
  sentTarget: string,
): Promise<Sent> {
  let request: Request;
  try {
    const headers = new Headers();
    for (const [k, v] of headerList) headers.append(k, v);
    request = new Request(base + req.target, {
      method: req.method,
      headers,
      body: req.body ?? undefined,
    });
  } catch {
    return null; // fetch refuses this header value, method or body client-side
  }
  let res: Response;
  try {
    res = await fetch(request, { signal: AbortSignal.timeout(15_000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    if (cause?.code === 'UND_ERR_INVALID_ARG' || cause?.code === 'UND_ERR_NOT_SUPPORTED')
      return null;
    throw new Error(
      `no answer (${String(err)}; cause ${String(cause)})\n${describeExchange(req, sentTarget, null)}`,
      { cause: err },
    );
  }
  const text = await res.text();
  const headers: Record<string, string> = {};
  res.headers.forEach((v, k) => (headers[k] = v));
  return { res: { status: res.status, headers, text }, sentTarget };
}

function viaHttp(
  base: string,
  req: ReqSpec,
  headerList: Array<[string, string]>,
  sentTarget: string,
): Promise<Sent> {
  const { hostname, port } = new URL(base);
  const headers: Record<string, string | string[]> = {};
  try {
    for (const [k, v] of headerList) {
      validateHeaderName(k);
      validateHeaderValue(k, v);
      const prior = headers[k];
      headers[k] = prior === undefined ? v : [prior, v].flat();
    }
  } catch {
    return Promise.resolve(null);
  }
  if (req.body !== null) {
    if (req.chunked) headers['Transfer-Encoding'] = 'chunked';
    else headers['Content-Length'] = String(req.body.length);
  }
  return new Promise<Sent>((resolve, reject) => {
    let done = false;
    let r: ClientRequest;
    try {
      r = httpRequest(
        {
          host: hostname,
          port: Number(port),
          method: req.method,
          path: req.target,
          headers,
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (err) => {
            if (!done) reject(err);
          });
          res.on('end', () => {
            done = true;
            const out: Record<string, string> = {};
            for (const [k, v] of Object.entries(res.headers)) {
              if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
            }
            resolve({
              res: {
                status: res.statusCode ?? 0,
                headers: out,
                text: Buffer.concat(chunks).toString('utf8'),
              },
              sentTarget,
            });
          });
        },
      );
    } catch {
      resolve(null); // node:http refuses this path or method client-side
      return;
    }
    r.setTimeout(15_000, () => r.destroy(new Error('request timed out')));
    r.on('error', (err) => {
      if (done) return;
      done = true;
      reject(new Error(`no answer (${String(err)})\n${describeExchange(req, sentTarget, null)}`));
    });
    if (req.body !== null && req.chunked) {
      const half = Math.floor(req.body.length / 2);
      r.write(req.body.subarray(0, half));
      r.end(req.body.subarray(half));
    } else r.end(req.body ?? undefined);
  });
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

/** The properties every answer must hold. Throws with the whole exchange on a violation. */
function verify(req: ReqSpec, sent: NonNullable<Sent>): void {
  const { res, sentTarget } = sent;
  const fail = (what: string): never => {
    throw new Error(`${what}\n${describeExchange(req, sentTarget, res)}`);
  };
  if (!(res.status >= 100 && res.status < 500)) fail(`status ${res.status} (must be < 500)`);
  if (res.status >= 200 && res.status < 300 && malformedText(req.body)) {
    fail('a body that is not UTF-8, or holds a lone surrogate, was accepted');
  }
  for (const [name, value] of Object.entries(SPEC_HEADERS)) {
    if (res.headers[name] !== value)
      fail(`header ${name} is ${show(String(res.headers[name]))}, not ${value}`);
  }
  if (req.method === 'HEAD') return;
  const ok = res.status >= 200 && res.status < 300;
  if (ok) {
    // A JSON answer must be JSON (the KV store splices stored text into its answer).
    if (/^application\/json/i.test(res.headers['content-type'] ?? '') && res.text !== '') {
      try {
        JSON.parse(res.text);
      } catch {
        fail('a 2xx answer labelled JSON that does not parse');
      }
    }
    return;
  }
  let body: unknown;
  try {
    body = JSON.parse(res.text);
  } catch {
    return fail('an error answer that is not JSON');
  }
  if (!isObject(body) || Object.keys(body).length !== 1 || !isObject(body.error)) {
    return fail('not the error shape {"error": {...}}');
  }
  const { code, message } = body.error;
  if (typeof code !== 'string' || typeof message !== 'string') {
    return fail('error.code and error.message must be strings');
  }
  if (!Object.hasOwn(ERROR_CODES, code)) return fail(`error code ${code} is not in ERROR_CODES`);
  const expected = ERROR_CODES[code as keyof typeof ERROR_CODES].status;
  if (expected !== res.status) fail(`error code ${code} has status ${expected}, not ${res.status}`);
}

/** Whether a body is text that no endpoint may accept: not UTF-8, or a JSON lone surrogate. */
function malformedText(body: Uint8Array | null): boolean {
  if (!body || body.length === 0) return false;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    return true;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return false;
  }
  const whole = (v: unknown): boolean =>
    typeof v === 'string'
      ? v.isWellFormed()
      : Array.isArray(v)
        ? v.every(whole)
        : v !== null && typeof v === 'object'
          ? Object.entries(v).every(([k, x]) => k.isWellFormed() && whole(x))
          : true;
  return !whole(value);
}

// ---------------------------------------------------------------------------------------
// Bodies: JSON with raw tokens (numbers JSON.stringify cannot write, deep nesting)
// ---------------------------------------------------------------------------------------

/** Text spliced into a generated JSON body as is. */
class Raw {
  constructor(readonly text: string) {}
  toJSON(): string {
    return `Raw(${this.text.length > 40 ? `${this.text.slice(0, 40)}…` : this.text})`;
  }
}

function toJsonText(v: unknown): string {
  if (v instanceof Raw) return v.text;
  if (Array.isArray(v)) return `[${v.map(toJsonText).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.entries(v)
      .map(([k, x]) => `${JSON.stringify(k)}:${toJsonText(x)}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

const utf8 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));

/** No lone surrogate in any string or key of a JSON value (a Raw is sent as it is). */
function wellFormed(v: unknown): boolean {
  const ok = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();
  if (typeof v === 'string') return ok(v);
  if (v === null || typeof v !== 'object' || v instanceof Raw) return true;
  if (Array.isArray(v)) return v.every(wellFormed);
  return Object.entries(v).every(([k, x]) => ok(k) && wellFormed(x));
}

const HEX = '0123456789abcdef'.split('');
const hexString = (len: number): fc.Arbitrary<string> =>
  fc.string({ unit: fc.constantFrom(...HEX), minLength: len, maxLength: len });
const hex32 = hexString(32);

const boundaryNumber = fc.constantFrom(
  0,
  -0,
  1,
  -1,
  0.5,
  0.1,
  1e-7,
  5e-324,
  9,
  9.999,
  10,
  11,
  19,
  20,
  21,
  30,
  30.001,
  31,
  59,
  60,
  61,
  99,
  100,
  101,
  128,
  129,
  255,
  256,
  257,
  999,
  1000,
  1001,
  3599,
  3600,
  3600.5,
  3601,
  86_399,
  86_400,
  86_401,
  2_591_999,
  2_592_000,
  2_592_001,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32,
  2 ** 53 - 1,
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 53),
  1e21,
  1e308,
  -1e308,
  Number.MAX_VALUE,
  -Number.MAX_VALUE,
);

/** Number tokens JSON.stringify never writes: overflow to ±Infinity, -0, huge integers. */
const rawNumber = fc
  .constantFrom(
    '1e999',
    '-1e999',
    '1E+2',
    '-0',
    '-0.0',
    '0.0000001',
    '1e-400',
    '10.0',
    '3600.0000000001',
    '123456789012345678901234567890',
    '9007199254740993',
    '-9007199254740993',
    '2.5e1',
    '1e3',
  )
  .map((t) => new Raw(t));

/** Arrays or objects nested around a leaf: near the 10-level limit and far past it. */
const deepRaw = fc
  .tuple(
    fc.constantFrom('array', 'object', 'mixed'),
    fc.oneof(fc.integer({ min: 8, max: 14 }), fc.integer({ min: 15, max: 12_000 })),
  )
  .map(([kind, depth]) => {
    if (kind === 'array') return new Raw(`${'['.repeat(depth)}"${CANARY}"${']'.repeat(depth)}`);
    if (kind === 'object') return new Raw(`${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`);
    return new Raw(`${'[{"a":'.repeat(depth)}1${'}]'.repeat(depth)}`);
  });

const longString = fc
  .constantFrom(64, 65, 127, 128, 129, 255, 256, 257, 500, 501, 2048, 2049, 8192, 65_536, 70_000)
  .chain((n) => fc.constantFrom('x', 'é', '💥', '\u0000', ' ').map((c) => c.repeat(n)));

const nastyStrings = fc.constantFrom(
  '',
  ' ',
  '  padded  ',
  '\t\n',
  '\u0000',
  '\u00a0',
  '\u2028\u2029',
  '\ufeff',
  '\ud800',
  '\udfff',
  '💥',
  'é',
  'e\u0301',
  '\u202e\u0644\u0627',
  'NaN',
  'Infinity',
  '-Infinity',
  '-1',
  '0',
  '1e999',
  '0x10',
  'null',
  'true',
  'false',
  '[]',
  '{}',
  '__proto__',
  'constructor',
  'prototype',
  '%zz',
  '%00',
  '../../etc/passwd',
  "'; DROP TABLE intents;--",
  '<script>',
  'default',
  'main',
  'json',
  'text',
  'public',
  'private',
  'kid_0000000000000000',
  `tk_${'0'.repeat(32)}`,
  CANARY,
  `${CANARY} ${CANARY}`,
  'a,b',
  ' a , b ',
);

const evilString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme' }),
  fc.string({ unit: 'binary' }),
  nastyStrings,
  hex32,
  longString,
);

/** A value of any JSON type, bent towards what breaks validators. */
const evilValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 2, arbitrary: boundaryNumber },
  { weight: 1, arbitrary: rawNumber },
  { weight: 3, arbitrary: evilString },
  {
    weight: 1,
    arbitrary: fc.constantFrom<unknown>(null, true, false, [], {}, [null], { '': null }, [CANARY]),
  },
  { weight: 1, arbitrary: deepRaw },
);

/** A field: sometimes a valid value (to reach the handler), often a wrong one. */
const field = (valid: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> =>
  fc.oneof({ weight: 2, arbitrary: valid }, { weight: 1, arbitrary: evilValue });

const NS_CHARS = 'abcXYZ019_.-'.split('');
const WORKER_CHARS = 'abcXYZ019_.:-'.split('');
const validNamespace = fc.oneof(
  fc.constantFrom('default', 'fz-a', 'fz-b'),
  fc.string({ unit: fc.constantFrom(...NS_CHARS), minLength: 1, maxLength: 64 }),
);
const validWorker = fc.string({
  unit: fc.constantFrom(...WORKER_CHARS),
  minLength: 1,
  maxLength: 64,
});
const payloadValue = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  { weight: 1, arbitrary: fc.constant({ note: CANARY }) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => ({ canary: CANARY, v })) },
  { weight: 1, arbitrary: deepRaw },
);
const smallPositive = (min: number, max: number): fc.Arbitrary<number> =>
  fc.oneof(fc.integer({ min, max }), fc.double({ min, max, noNaN: true }));

/** The real body fields of every route that takes one (§5, §5.1, §6). */
type BodyKind =
  | 'publish'
  | 'extend'
  | 'fulfill'
  | 'fail'
  | 'kvset'
  | 'generate_key'
  | 'revoke_key'
  | 'purge'
  // [ext] Batches (issue 21): lists of the single bodies, each item fuzzed as they are.
  | 'publish_batch'
  | 'fulfill_batch'
  | 'fail_batch';

interface State {
  tester: string;
  testerKeyId: string;
  victim: string;
  victimKeyId: string;
  ids: string[];
  tokens: string[];
  names: string[];
}

/** The real fields of a body kind, each with valid values, and which are required. */
function bodyFields(
  kind: BodyKind,
  s: State,
): { fields: Record<string, fc.Arbitrary<unknown>>; required: string[] } {
  const token = fc.oneof(fc.constantFrom(...s.tokens), hex32);
  switch (kind) {
    case 'publish':
      return {
        required: ['goal', 'payload'],
        fields: {
          goal: fc.oneof(
            fc.constantFrom('fz', ' fz ', 'g'.repeat(256)),
            fc.string({ minLength: 1 }),
          ),
          payload: payloadValue,
          namespace: fc.oneof(
            { weight: 3, arbitrary: fc.constantFrom('default', 'fz-a', 'fz-b') },
            { weight: 1, arbitrary: validNamespace },
          ),
          visibility: fc.constantFrom('private', 'public'),
          priority: fc.integer({ min: 0, max: 1000 }),
          delay: fc.constantFrom(0, 0, 0.5, 2_592_000),
          max_attempts: fc.integer({ min: 1, max: 20 }),
          backoff_base: smallPositive(1, 3600),
          target_worker: fc.oneof(fc.constant(null), fc.constant('w1'), validWorker),
          required_capability: fc.oneof(fc.constant(null), fc.constant('cap-a'), validWorker),
          ttl: smallPositive(1, 2_592_000),
        },
      };
    case 'extend':
      return {
        required: ['claim_token', 'seconds'],
        fields: { claim_token: token, seconds: smallPositive(10, 3600) },
      };
    case 'fulfill':
      return {
        required: ['claim_token'],
        fields: {
          claim_token: token,
          result: payloadValue,
          result_type: fc.constantFrom('json', 'text'),
        },
      };
    case 'fail':
      return {
        required: ['claim_token'],
        fields: { claim_token: token, error: fc.oneof(fc.constant(null), evilString) },
      };
    case 'kvset':
      return {
        required: ['value'],
        // Any number is a valid ttl: out of range is clamped.
        fields: { value: payloadValue, ttl: fc.oneof(boundaryNumber, rawNumber) },
      };
    case 'generate_key':
      return {
        required: ['owner'],
        fields: { owner: fc.string({ minLength: 1, maxLength: 128 }) },
      };
    case 'revoke_key':
      return {
        required: [],
        fields: {
          api_key: fc.constantFrom(s.victim, MAIN_KEY, `tk_${'0'.repeat(32)}`),
          key_id: fc.constantFrom(s.victimKeyId, 'main', 'kid_0000000000000000'),
        },
      };
    case 'publish_batch':
      return {
        required: ['intents'],
        fields: {
          intents: fc.array(
            fc.oneof(
              { weight: 4, arbitrary: fieldBody('publish', s) },
              { weight: 1, arbitrary: evilValue },
            ),
            { minLength: 1, maxLength: 4 },
          ),
        },
      };
    case 'fulfill_batch':
    case 'fail_batch': {
      const id = fc.oneof(fc.constantFrom(...s.ids), hex32, evilString);
      const single = kind === 'fulfill_batch' ? 'fulfill' : 'fail';
      return {
        required: ['items'],
        fields: {
          items: fc.array(
            fc.tuple(id, fieldBody(single, s)).map(([i, b]) => ({ id: i, ...b })),
            { minLength: 1, maxLength: 4 },
          ),
        },
      };
    }
    case 'purge':
      // A purge of everything is rare, so the seeded ids stay around most of the time.
      return {
        required: [],
        fields: {
          confirm: fc.oneof(
            { weight: 1, arbitrary: fc.constant(true) },
            { weight: 4, arbitrary: fc.constant(false) },
          ),
          namespace: validNamespace,
        },
      };
  }
}

const DROP = Symbol('drop');

/**
 * An object with the route's real field names: a valid body, then up to three fields given
 * a wrong value (any JSON type, boundary or raw numbers, nasty strings, deep nesting) or
 * dropped, and sometimes unknown fields beside them.
 */
function fieldBody(kind: BodyKind, s: State): fc.Arbitrary<Record<string, unknown>> {
  const { fields, required } = bodyFields(kind, s);
  const names = Object.keys(fields);
  const mutation = fc.tuple(
    fc.constantFrom(...names),
    fc.oneof({ weight: 4, arbitrary: evilValue }, { weight: 1, arbitrary: fc.constant(DROP) }),
  );
  return fc
    .tuple(
      fc.record(fields, { requiredKeys: required }),
      fc.oneof(
        { weight: 2, arbitrary: fc.constant([]) },
        { weight: 3, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }) },
      ),
      fc.option(fc.dictionary(fc.string({ maxLength: 12 }), evilValue, { maxKeys: 3 }), {
        freq: 4,
      }),
      fc.boolean(),
    )
    .map(([valid, mutations, extra, extraFirst]) => {
      const body: Record<string, unknown> = { ...valid };
      for (const [name, value] of mutations) {
        if (value === DROP) delete body[name];
        else body[name] = value;
      }
      if (!extra) return body;
      return extraFirst ? { ...extra, ...body } : { ...body, ...extra };
    });
}

/**
 * Valid JSON objects whose members are repeated, spelled with escapes, padded with
 * whitespace or hold exact numbers: payloads, results and KV values are kept as the exact
 * text of the request, so the raw member must be the one JSON.parse picked.
 */
const RAW_MEMBER_BODIES = [
  '{"value":1,"value":{"a":[1,"]}"]}}',
  '{"\\u0076alue":"x","value":1e999}',
  '{"value":1e999,"\\u0076alue":[1.0,-0,"\\"}"]}',
  ' \t\r\n{ "value" : 10.50 , "ttl" : 1 } \n',
  '{"value":"\\ud800\\u2028","value":{"k":"\\\\"}}',
  '{"va\\"lue":1,"value":123456789012345678901234567890}',
  `{"goal":"fz","payload":1,"payload":{"b":"}"},"payload":1.0,"note":"${CANARY}"}`,
  '{"goal":"fz","\\u0070ayload":12345678901234567890,"namespace":"fz-a"}',
  '{"goal":"fz","payload":{"payload":{"payload":1}},"visibility":"public","namespace":"fz-b"}',
  '{"claim_token":"x","result":"a\\"b","result":-0.0,"result_type":"json"}',
  '{"claim_token":"x","result":[1e999],"result_type":"text"}',
  '{"owner":"o","owner":"\\u0000"}',
];

/** Bodies as bytes, or null for none. */
function bodyBytes(kind: BodyKind | undefined, s: State): fc.Arbitrary<Uint8Array | null> {
  const texts: Array<fc.WeightedArbitrary<string>> = [
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: deepRaw.map((r) => r.text) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '',
        ' ',
        '\r\n',
        '{',
        '}',
        '{"goal":',
        '{"a":1}garbage',
        '{"a":1}{"a":2}',
        'null',
        '[]',
        '"x"',
        '1',
        'true',
        '{}',
        '\ufeff{}',
        "{'goal': 1}",
        '{"goal":"x","payload":NaN}',
        '{"__proto__":{"goal":1}}',
        '{"constructor":{"prototype":{"x":1}}}',
        `{"goal":"fz","payload":"${CANARY}"}`,
        'goal=fz&payload=1',
        '--x\r\n\r\n--x--',
        // Lone surrogates, escaped: not whole Unicode, refused (PROTOCOL.md §1).
        '{"goal":"s\\ud800","payload":1}',
        `{"goal":"fz","payload":{"t":"\\udc00${CANARY}"}}`,
        '{"\\uD83D":1,"goal":"fz","payload":1}',
        ...RAW_MEMBER_BODIES,
      ),
    },
    { weight: 1, arbitrary: fc.string({ unit: 'binary' }) },
    { weight: 1, arbitrary: longString.map((x) => JSON.stringify({ payload: x, goal: 'fz' })) },
  ];
  if (kind) texts.push({ weight: 6, arbitrary: fieldBody(kind, s).map(toJsonText) });
  return fc.oneof(
    { weight: 8, arbitrary: fc.oneof(...texts).map(utf8) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
    {
      weight: 1,
      // Invalid UTF-8 inside an otherwise valid JSON string.
      arbitrary: fc
        .uint8Array({ minLength: 1, maxLength: 8 })
        .map(
          (b) =>
            new Uint8Array(
              Buffer.concat([Buffer.from('{"goal":"'), b, Buffer.from(`","payload":"${CANARY}"}`)]),
            ),
        ),
    },
    { weight: 3, arbitrary: fc.constant(null) },
  );
}

const contentType = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom<string | null>(
      'application/json',
      'application/json; charset=utf-8',
      'application/json;charset=UTF-8',
      'APPLICATION/JSON',
      'application/vnd.api+json',
      null,
    ),
  },
  {
    weight: 3,
    arbitrary: fc.constantFrom<string | null>(
      'text/plain',
      'text/plain;charset=UTF-8',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/xml',
      'application/octet-stream',
      '',
      ';',
      '*/*',
      'json',
      'application/',
      'application/json, text/plain',
      'application/json; charset=latin1',
      'application/json; charset="utf-8"; x=',
      'application/json;;;',
      ' application/json ',
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
);

// ---------------------------------------------------------------------------------------
// Routes, paths and query strings
// ---------------------------------------------------------------------------------------

type Auth = 'key' | 'admin' | 'none';

interface RouteDef {
  name: string;
  method: 'GET' | 'POST';
  path: (param: string) => string;
  param?: 'id' | 'name';
  body?: BodyKind;
  query?: readonly string[];
  auth: Auth;
}

const CLAIM_QUERY = [
  'goal',
  'namespace',
  'publisher',
  'worker_id',
  'capabilities',
  'capability',
  'wait',
  'max',
];

const ROUTES: readonly RouteDef[] = [
  { name: 'health', method: 'GET', path: () => '/health', auth: 'none' },
  { name: 'intent', method: 'POST', path: () => '/intent', body: 'publish', auth: 'key' },
  { name: 'claim', method: 'POST', path: () => '/claim', query: CLAIM_QUERY, auth: 'key' },
  {
    name: 'publish_batch',
    method: 'POST',
    path: () => '/intents',
    body: 'publish_batch',
    auth: 'key',
  },
  {
    name: 'fulfill_batch',
    method: 'POST',
    path: () => '/fulfill',
    body: 'fulfill_batch',
    auth: 'key',
  },
  { name: 'fail_batch', method: 'POST', path: () => '/fail', body: 'fail_batch', auth: 'key' },
  {
    name: 'extend',
    method: 'POST',
    path: (p) => `/extend_claim/${p}`,
    param: 'id',
    body: 'extend',
    auth: 'key',
  },
  {
    name: 'fulfill',
    method: 'POST',
    path: (p) => `/fulfill/${p}`,
    param: 'id',
    body: 'fulfill',
    auth: 'key',
  },
  {
    name: 'fail',
    method: 'POST',
    path: (p) => `/fail/${p}`,
    param: 'id',
    body: 'fail',
    auth: 'key',
  },
  {
    name: 'result',
    method: 'GET',
    path: (p) => `/result/${p}`,
    param: 'id',
    query: ['wait'],
    auth: 'key',
  },
  { name: 'status', method: 'GET', path: (p) => `/status/${p}`, param: 'id', auth: 'key' },
  {
    name: 'set',
    method: 'POST',
    path: (p) => `/set/${p}`,
    param: 'name',
    body: 'kvset',
    auth: 'key',
  },
  { name: 'get', method: 'GET', path: (p) => `/get/${p}`, param: 'name', auth: 'key' },
  {
    name: 'generate_key',
    method: 'POST',
    path: () => '/admin/generate_key',
    body: 'generate_key',
    auth: 'admin',
  },
  {
    name: 'revoke_key',
    method: 'POST',
    path: () => '/admin/revoke_key',
    body: 'revoke_key',
    auth: 'admin',
  },
  { name: 'keys', method: 'GET', path: () => '/admin/keys', auth: 'admin' },
  { name: 'purge', method: 'POST', path: () => '/admin/purge', body: 'purge', auth: 'admin' },
  { name: 'cleanup', method: 'POST', path: () => '/admin/cleanup', auth: 'admin' },
  {
    name: 'admin_intent',
    method: 'GET',
    path: (p) => `/admin/intents/${p}`,
    param: 'id',
    auth: 'admin',
  },
  {
    name: 'cancel',
    method: 'POST',
    path: (p) => `/admin/intents/${p}/cancel`,
    param: 'id',
    auth: 'admin',
  },
  {
    name: 'retry',
    method: 'POST',
    path: (p) => `/admin/intents/${p}/retry`,
    param: 'id',
    auth: 'admin',
  },
  {
    name: 'dead',
    method: 'GET',
    path: () => '/admin/dead',
    query: ['namespace', 'limit'],
    auth: 'admin',
  },
  { name: 'dead_one', method: 'GET', path: (p) => `/admin/dead/${p}`, param: 'id', auth: 'admin' },
];

/** Paths beside the routes above: unknown ones, near misses, traversal, and the other routes. */
const OTHER_PATHS = [
  '/',
  '/metrics',
  '/openapi.json',
  '/admin',
  '/admin/',
  '/admin/stats',
  '/admin/intents',
  '/admin/dashboard',
  '/intent/',
  '/claim/',
  '//claim',
  '/health/',
  '/HEALTH',
  '/status',
  '/status/',
  '/get/',
  '/set/',
  '/admin/intents//cancel',
  '/admin/dead/',
  '/result',
  '/%2Fhealth',
  '/intent%00',
  '/..%2Fhealth',
  '/./health',
  '/admin/../health',
  '/extend_claim',
  '/fail/',
  '/admin/keys/x',
  '/admin/generate_key/',
  '/*',
  '/%',
  '/%zz',
  '/?',
  '/health?',
  // Only node:http sends these as they are: asterisk and absolute forms, no leading slash.
  '*',
  'health',
  'http://127.0.0.1/health',
  'http://evil.example/admin/keys',
  '/\\health',
];

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'] as const;
/** Methods no route has: WebDAV and friends, and one Node's parser does not know. */
const ODD_METHODS = ['TRACE', 'PROPFIND', 'SEARCH', 'QUERY', 'LOCK', 'PURGE', 'FOO'] as const;

type Encoding = 'component' | 'raw' | 'plus' | 'mangle';

function encode(s: string, mode: Encoding, at: number): string {
  let enc: string;
  try {
    enc = encodeURIComponent(s);
  } catch {
    enc = s; // a lone surrogate: send it raw (the client may refuse it)
  }
  switch (mode) {
    case 'component':
      return enc;
    case 'raw':
      return s;
    case 'plus':
      return enc.replace(/%20/g, '+');
    case 'mangle': {
      const i = enc.length === 0 ? 0 : at % (enc.length + 1);
      const bad = ['%zz', '%', '%2', '%ZZ', '%ff', '%C0%AF', '%E2%82', '%ED%A0%80', '%00', '%25'][
        at % 10
      ]!;
      return enc.slice(0, i) + bad + enc.slice(i);
    }
  }
}

const encoding = fc.constantFrom<Encoding>('component', 'component', 'raw', 'plus', 'mangle');

function paramValue(s: State): fc.Arbitrary<string> {
  const text = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...s.ids) },
    { weight: 2, arbitrary: hex32 },
    { weight: 2, arbitrary: fc.constantFrom(...s.names) },
    {
      weight: 1,
      arbitrary: fc.oneof(
        hexString(31),
        hexString(33),
        hex32.map((h) => h.toUpperCase()),
      ),
    },
    { weight: 2, arbitrary: evilString.filter((x) => x.length <= 10_000) },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(255, 256, 257, 1000, 8191, 8192, 8193, 12_000, 20_000)
        .map((n) => 'a'.repeat(n)),
    },
    { weight: 1, arbitrary: fc.constantFrom('', '.', '..', 'a/b', '%2F', '%252F', '%2e%2e', ' ') },
  );
  // Names that sign like a query or a fragment (PROTOCOL.md §3, ambiguous requests), as
  // they are on the request line.
  const signsLikeAQuery = fc.constantFrom('x%3Fq=1', 'x%3fz=', 'x%23y', 'x?q=1', 'x#y', '%3F');
  return fc.oneof(
    {
      weight: 12,
      arbitrary: fc.tuple(text, encoding, fc.nat()).map(([v, m, at]) => encode(v, m, at)),
    },
    { weight: 1, arbitrary: signsLikeAQuery },
  );
}

const queryText = fc.oneof(
  { weight: 3, arbitrary: evilString.filter((x) => x.length <= 3000) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '',
      ' ',
      '+',
      '%',
      'default',
      'fz-a',
      'main',
      'kid_0',
      'NaN',
      'Infinity',
      '-1',
      '0',
      '0.05',
      '0.1',
      '1e-9',
      '+0',
      ' 0 ',
      '0x0',
      '0x3',
      '3e0',
      ' 3',
      '1e3',
      '100',
      '101',
      '200',
      'true',
      '[]',
      ',',
      ',,,',
      ' a , b ',
      'a,'.repeat(40),
      'w1',
      'cap-a,cap-b',
      'fz',
      CANARY,
    ),
  },
  { weight: 1, arbitrary: validNamespace },
  { weight: 1, arbitrary: validWorker },
);

function queryString(names: readonly string[]): fc.Arbitrary<string> {
  const key = fc.oneof(
    {
      weight: 5,
      arbitrary: fc.constantFrom(...names, 'goal', 'namespace', 'limit', 'status', 'cursor'),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
  );
  const pair = fc
    .tuple(
      key,
      queryText,
      encoding,
      encoding,
      fc.nat(),
      fc.constantFrom('k=v', 'k=v', 'k', '=v', 'k=v=w'),
    )
    .map(([k, v, km, vm, at, shape]) => {
      const ek = encode(k, km === 'mangle' ? 'component' : km, at);
      const ev = encode(v, vm, at);
      if (shape === 'k') return ek;
      if (shape === '=v') return `=${ev}`;
      if (shape === 'k=v=w') return `${ek}=${ev}=${ev}`;
      return `${ek}=${ev}`;
    });
  return fc.oneof(
    { weight: 1, arbitrary: fc.constant('') },
    {
      weight: 6,
      arbitrary: fc.array(pair, { minLength: 1, maxLength: 6 }).map((ps) => `?${ps.join('&')}`),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '?',
        '??',
        '?&&',
        '?=',
        '?&=&',
        '?%',
        '?wait',
        '?a=%zz&',
        '?#frag',
        '?;',
      ),
    },
  );
}

// ---------------------------------------------------------------------------------------
// Headers and credentials
// ---------------------------------------------------------------------------------------

const basic = (user: string, pass: string): string =>
  `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

function credentials(s: State): fc.Arbitrary<Array<[string, string]>> {
  return fc.constantFrom<Array<[string, string]>>(
    [['X-API-KEY', MAIN_KEY]],
    [['X-API-KEY', s.tester]],
    [['X-API-KEY', s.victim]],
    [['X-Admin-Token', ADMIN_TOKEN]],
    [['Authorization', basic('admin', DASHBOARD_PASSWORD)]],
    [['Authorization', basic('admin', 'wrong')]],
    [],
    [['X-API-KEY', `tk_${'0'.repeat(32)}`]],
    [['X-API-KEY', ADMIN_TOKEN]],
    [['X-Admin-Token', MAIN_KEY]],
    [
      ['X-API-KEY', MAIN_KEY],
      ['X-Admin-Token', ADMIN_TOKEN],
    ],
    [
      ['X-Admin-Token', 'wrong'],
      ['Authorization', basic('admin', DASHBOARD_PASSWORD)],
    ],
  );
}

/** The credentials a route needs (so the request reaches its validation and handler). */
function rightCredentials(route: RouteDef, s: State): fc.Arbitrary<Array<[string, string]>> {
  if (route.auth === 'admin') {
    return fc.constantFrom<Array<[string, string]>>(
      [['X-Admin-Token', ADMIN_TOKEN]],
      [['Authorization', basic('admin', DASHBOARD_PASSWORD)]],
    );
  }
  return fc.constantFrom<Array<[string, string]>>(
    [['X-API-KEY', MAIN_KEY]],
    [['X-API-KEY', s.tester]],
  );
}

const FUZZ_HEADERS = [
  'X-Worker-ID',
  'X-Worker-Capabilities',
  'X-Worker-Capability',
  'Idempotency-Key',
  'X-Request-ID',
  'X-Timestamp',
  'X-Nonce',
  'X-Signature',
  'X-API-KEY',
  'X-Admin-Token',
  'Authorization',
  'Origin',
  'Sec-Fetch-Site',
  'Accept',
  'Accept-Encoding',
  'Content-Encoding',
  'X-Forwarded-For',
  'X-Forwarded-Proto',
  'Forwarded',
  'Cookie',
  'User-Agent',
  'x-worker-id',
  'x-api-key',
  'Range',
  'If-None-Match',
];

function headerValue(s: State): fc.Arbitrary<string> {
  const now = (): string => String(Math.floor(Date.now() / 1000));
  return fc.oneof(
    { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 40 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
    {
      weight: 3,
      arbitrary: fc.constantFrom(
        '',
        ' ',
        '0',
        '-1',
        'NaN',
        '1e3',
        '1.5',
        '9999999999999',
        '99999999999999999999',
        'abc',
        'a,b',
        ' , ',
        'w1',
        'cap-a, cap-b',
        ',,,',
        'x'.repeat(64),
        'x'.repeat(65),
        'x'.repeat(128),
        'x'.repeat(129),
        'x'.repeat(300),
        'x'.repeat(5000),
        `tk_${'0'.repeat(32)}`,
        `${MAIN_KEY} `,
        ` ${MAIN_KEY}`,
        MAIN_KEY,
        s.tester,
        s.victim,
        ADMIN_TOKEN,
        'Basic ',
        'Basic !!!',
        `Basic ${Buffer.from('admin').toString('base64')}`,
        basic('admin', DASHBOARD_PASSWORD),
        basic('', ''),
        basic('admin:x', DASHBOARD_PASSWORD),
        'Bearer x',
        'null',
        'http://evil.example',
        'null',
        'http://127.0.0.1',
        'cross-site',
        'same-origin',
        'none',
        'gzip',
        'br',
        'identity',
        'fz-idem-1',
        'fz-idem-2',
        CANARY,
        'bytes=0-1',
        '*',
        // Past Node's 16 KiB header limit: answered by the client error handler.
        'x'.repeat(20_000),
      ),
    },
    { weight: 1, arbitrary: fc.constant(null).map(now) },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: -400, max: 400 })
        .map((d) => String(Math.floor(Date.now() / 1000) + d)),
    },
    { weight: 1, arbitrary: fc.oneof(hex32, hexString(64)) },
  );
}

function fuzzHeaders(s: State, maxLength = 4): fc.Arbitrary<Array<[string, string]>> {
  return fc.array(fc.tuple(fc.constantFrom(...FUZZ_HEADERS), headerValue(s)), { maxLength });
}

const signMode = fc.constantFrom<SignMode>(
  'none',
  'none',
  'none',
  'valid',
  'stale',
  'replay',
  'wrong-key',
);

// ---------------------------------------------------------------------------------------
// Whole requests
// ---------------------------------------------------------------------------------------

interface Parts {
  route: RouteDef | null;
  otherPath: string;
  method: string;
  param: string;
  query: string;
  creds: Array<[string, string]>;
  extra: Array<[string, string]>;
  type: string | null;
  body: Uint8Array | null;
  transport: Transport;
  chunked: boolean;
  sign: SignMode;
}

function assemble(p: Parts): ReqSpec {
  const path = p.route ? p.route.path(p.param) : p.otherPath;
  const headers: Array<[string, string]> = [...p.creds, ...p.extra];
  if (p.type !== null) headers.push(['Content-Type', p.type]);
  // fetch cannot put a body on GET or HEAD: node:http can.
  const bodyOnGet = p.body !== null && (p.method === 'GET' || p.method === 'HEAD');
  return {
    transport: bodyOnGet ? 'http' : p.transport,
    method: p.method,
    target: path + p.query,
    headers,
    body: p.body,
    chunked: p.chunked && p.body !== null && (bodyOnGet || p.transport === 'http'),
    sign: p.sign,
  };
}

const transport = fc.constantFrom<Transport>('fetch', 'fetch', 'http');

describe('fuzzing every endpoint over real HTTP', () => {
  let t: TestBus;
  let tester: { api_key: string; key_id: string };
  let seq = 0;

  beforeAll(async () => {
    t = await startTestBus({
      env: { BUS_RATE_LIMIT_PER_MINUTE: '1000000', BUS_MAX_OPEN_PER_KEY: '1000000' },
    });
    tester = await t.newKey('fuzz-tester');
  });
  afterAll(async () => t?.close());

  /** Publishes `body` and claims it; returns the id and claim token. */
  async function publishAndClaim(
    body: Record<string, unknown>,
    key: string,
  ): Promise<{ id: string; token: string }> {
    const ns = `fz-seed-${++seq}`;
    const r = await t.api('POST', '/intent', {
      key,
      raw: toJsonText({ goal: 'fz', payload: { note: CANARY }, ...body, namespace: ns }),
      headers: { 'content-type': 'application/json' },
    });
    if (r.status !== 201) throw new Error(`seed publish: ${r.status} ${r.text}`);
    const id = r.json.id as string;
    const claim = await t.api('POST', `/claim?namespace=${ns}`, { key });
    if (claim.status !== 200) throw new Error(`seed claim: ${claim.status} ${claim.text}`);
    return { id, token: claim.json.claim_token as string };
  }

  /** Fresh intents in every state, a revocable key and KV names: what "existing" means. */
  async function seed(): Promise<State> {
    const victim = await t.newKey('fuzz-victim');
    const open = await publish(t.api, {
      goal: 'fz',
      payload: { note: CANARY },
      namespace: `fz-seed-${++seq}`,
      visibility: 'public',
    });
    const testers = await publish(
      t.api,
      { goal: 'fz', payload: [CANARY], namespace: `fz-seed-${++seq}` },
      tester.api_key,
    );
    const claimed = await publishAndClaim({}, MAIN_KEY);
    const claimedByTester = await publishAndClaim({}, tester.api_key);
    const fulfilled = await publishAndClaim({}, MAIN_KEY);
    await t.api('POST', `/fulfill/${fulfilled.id}`, {
      body: { claim_token: fulfilled.token, result: { note: CANARY } },
    });
    const dead = await publishAndClaim({ max_attempts: 1 }, MAIN_KEY);
    await t.api('POST', `/fail/${dead.id}`, { body: { claim_token: dead.token, error: CANARY } });
    const cancelled = await publish(t.api, {
      goal: 'fz',
      payload: {},
      namespace: `fz-seed-${++seq}`,
    });
    await t.api('POST', `/admin/intents/${cancelled}/cancel`, { admin: true });
    const names = ['fz-name', 'a b', 'ünï', 'x'.repeat(256)];
    for (const name of names) {
      for (const key of [MAIN_KEY, tester.api_key]) {
        await t.api('POST', `/set/${encodeURIComponent(name)}`, {
          key,
          body: { value: { note: CANARY } },
        });
      }
    }
    return {
      tester: tester.api_key,
      testerKeyId: tester.key_id,
      victim: victim.api_key,
      victimKeyId: victim.key_id,
      ids: [open, testers, claimed.id, claimedByTester.id, fulfilled.id, dead.id, cancelled],
      tokens: [claimed.token, claimedByTester.token, fulfilled.token, dead.token],
      names,
    };
  }

  let sent = 0;
  let skipped = 0;
  /** Answers seen, by method, route template and status: shows what the fuzz reached. */
  const seen = new Map<string, number>();

  async function exchange(req: ReqSpec): Promise<Sent> {
    const target = sentTargetOf(t.url, req);
    // Skipped, not sent: a `wait` that would hold the request open for seconds.
    if (target !== null && waitsLong(target)) {
      skipped++;
      return null;
    }
    const out = await send(t.url, req);
    if (out === null) {
      skipped++;
      return null;
    }
    sent++;
    const code = /"code":"([a-z_]+)"/.exec(out.res.text)?.[1] ?? '';
    const route = out.sentTarget
      .split('?')[0]!
      .replace(/\/[^/]{20,}/g, '/:p')
      .slice(0, 40);
    const where = `${req.method} ${route} ${out.res.status} ${code} sign=${req.sign}`;
    seen.set(where, (seen.get(where) ?? 0) + 1);
    verify(req, out);
    return out;
  }

  /** Sends every generated request, checks each answer, then that the bus is still up. */
  async function checkRequests(parts: fc.Arbitrary<Parts>, runs: number): Promise<void> {
    await fc.assert(
      fc.asyncProperty(parts, async (p) => {
        await exchange(assemble(p));
      }),
      settings(runs),
    );
    await expectHealthy();
  }

  async function expectHealthy(): Promise<void> {
    const r = await fetch(`${t.url}/health`);
    const text = await r.text();
    expect(r.status, text).toBe(200);
    expect(JSON.parse(text)).toMatchObject({ ok: true });
    expect(r.headers.get('x-intent-version')).toBe('2.1');
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
  }

  afterAll(() => {
    console.log(`fuzz: ${sent} requests checked, ${skipped} refused client-side or skipped`);
    if (process.env.FUZZ_STATS)
      console.log(
        [...seen]
          .sort()
          .map(([k, n]) => `${k}: ${n}`)
          .join('\n'),
      );
  });

  it(
    'any route, method, credentials, headers, query, content type and body',
    async () => {
      const s = await seed();
      const route = fc.oneof(
        { weight: 6, arbitrary: fc.constantFrom(...ROUTES) },
        { weight: 1, arbitrary: fc.constant(null) },
      );
      const parts = route.chain((r) =>
        fc.record<Parts>({
          route: fc.constant(r),
          otherPath: fc.constantFrom(...OTHER_PATHS),
          method: fc.oneof(
            { weight: 2, arbitrary: fc.constant(r?.method ?? 'GET') },
            { weight: 3, arbitrary: fc.constantFrom(...METHODS) },
            { weight: 1, arbitrary: fc.constantFrom(...ODD_METHODS) },
          ),
          param: paramValue(s),
          query: r?.query ? queryString(r.query) : fc.oneof(fc.constant(''), queryString(['x'])),
          creds: fc.oneof(credentials(s), r ? rightCredentials(r, s) : credentials(s)),
          extra: fuzzHeaders(s, 2),
          type: contentType,
          body: bodyBytes(r?.body, s),
          transport,
          chunked: fc.boolean(),
          sign: signMode,
        }),
      );
      await checkRequests(parts, 600);
    },
    TEST_TIMEOUT,
  );

  it(
    'bodies: real field names with wrong types, boundary and raw numbers, deep nesting, unicode, bad bytes',
    async () => {
      const s = await seed();
      const withBody = ROUTES.filter((r) => r.body !== undefined);
      const parts = fc.constantFrom(...withBody).chain((r) =>
        fc.record<Parts>({
          route: fc.constant(r),
          otherPath: fc.constant('/'),
          method: fc.constant(r.method),
          param: fc.oneof(fc.constantFrom(...s.ids, ...s.names), paramValue(s)),
          query: fc.constant(''),
          creds: rightCredentials(r, s),
          extra: fc.oneof(
            { weight: 3, arbitrary: fc.constant([]) },
            { weight: 1, arbitrary: fuzzHeaders(s, 2) },
          ),
          type: fc.oneof(
            { weight: 4, arbitrary: fc.constant('application/json') },
            { weight: 1, arbitrary: contentType },
          ),
          body: fc.oneof(
            { weight: 4, arbitrary: fieldBody(r.body!, s).map((b) => utf8(toJsonText(b))) },
            { weight: 1, arbitrary: bodyBytes(r.body, s) },
          ),
          transport,
          chunked: fc.boolean(),
          sign: fc.constantFrom<SignMode>('none', 'none', 'valid'),
        }),
      );
      await checkRequests(parts, 500);
    },
    TEST_TIMEOUT,
  );

  it(
    'query strings: real parameter names with arbitrary values, repeats, +, malformed %',
    async () => {
      const s = await seed();
      const queried = ROUTES.filter((r) => r.query !== undefined);
      const parts = fc
        .oneof(
          { weight: 3, arbitrary: fc.constantFrom(...queried) },
          { weight: 1, arbitrary: fc.constantFrom(...ROUTES) },
        )
        .chain((r) =>
          fc.record<Parts>({
            route: fc.constant(r),
            otherPath: fc.constant('/'),
            method: fc.oneof(
              { weight: 5, arbitrary: fc.constant(r.method) },
              { weight: 1, arbitrary: fc.constantFrom(...METHODS) },
            ),
            param: fc.oneof(fc.constantFrom(...s.ids), paramValue(s)),
            query: queryString(r.query ?? CLAIM_QUERY),
            creds: fc.oneof(
              { weight: 4, arbitrary: rightCredentials(r, s) },
              { weight: 1, arbitrary: credentials(s) },
            ),
            extra: fc.oneof(
              { weight: 3, arbitrary: fc.constant([]) },
              { weight: 1, arbitrary: fuzzHeaders(s, 2) },
            ),
            type: fc.constantFrom<string | null>(null, 'application/json'),
            body: fc.oneof(
              { weight: 4, arbitrary: fc.constant(null) },
              {
                weight: 1,
                arbitrary: r.body
                  ? fieldBody(r.body, s).map((b) => utf8(toJsonText(b)))
                  : fc.constant(null),
              },
            ),
            transport,
            chunked: fc.constant(false),
            sign: fc.constantFrom<SignMode>('none', 'none', 'valid'),
          }),
        );
      await checkRequests(parts, 400);
    },
    TEST_TIMEOUT,
  );

  it(
    'headers: worker id, capabilities, Idempotency-Key, X-Request-ID, signature and key junk',
    async () => {
      const s = await seed();
      const parts = fc.constantFrom(...ROUTES).chain((r) =>
        fc.record<Parts>({
          route: fc.constant(r),
          otherPath: fc.constant('/'),
          method: fc.oneof(
            { weight: 5, arbitrary: fc.constant(r.method) },
            { weight: 1, arbitrary: fc.constantFrom(...METHODS) },
          ),
          param: fc.oneof(fc.constantFrom(...s.ids, ...s.names), paramValue(s)),
          query: r.query ? fc.oneof(fc.constant(''), queryString(r.query)) : fc.constant(''),
          creds: fc.oneof(
            { weight: 3, arbitrary: rightCredentials(r, s) },
            { weight: 2, arbitrary: credentials(s) },
          ),
          extra: fc
            .tuple(
              fuzzHeaders(s, 6),
              fc.option(fc.constantFrom('fz-idem-1', 'fz-idem-2', 'fz-idem-3'), { freq: 2 }),
            )
            .map(([h, idem]) =>
              idem === null ? h : [...h, ['Idempotency-Key', idem] as [string, string]],
            ),
          type: fc.oneof(
            { weight: 4, arbitrary: fc.constant('application/json') },
            { weight: 1, arbitrary: contentType },
          ),
          body: r.body
            ? fc.oneof(
                { weight: 3, arbitrary: fieldBody(r.body, s).map((b) => utf8(toJsonText(b))) },
                { weight: 1, arbitrary: fc.constant(null) },
              )
            : fc.constant(null),
          transport,
          chunked: fc.boolean(),
          sign: signMode,
        }),
      );
      await checkRequests(parts, 400);
    },
    TEST_TIMEOUT,
  );

  it(
    'path parameters: arbitrary, percent-encoded, malformed, very long, 32-hex and existing ids',
    async () => {
      const s = await seed();
      const withParam = ROUTES.filter((r) => r.param !== undefined);
      const parts = fc.constantFrom(...withParam).chain((r) =>
        fc.record<Parts>({
          route: fc.constant(r),
          otherPath: fc.constant('/'),
          method: fc.oneof(
            { weight: 3, arbitrary: fc.constant(r.method) },
            { weight: 1, arbitrary: fc.constantFrom(...METHODS) },
          ),
          param: paramValue(s),
          query: fc.constant(''),
          creds: fc.oneof(
            { weight: 3, arbitrary: rightCredentials(r, s) },
            { weight: 1, arbitrary: credentials(s) },
          ),
          extra: fc.constant([]),
          type: fc.constant('application/json'),
          body: r.body
            ? fc.oneof(
                { weight: 3, arbitrary: fieldBody(r.body, s).map((b) => utf8(toJsonText(b))) },
                { weight: 1, arbitrary: fc.constant(null) },
              )
            : fc.constant(null),
          transport,
          chunked: fc.constant(false),
          sign: fc.constantFrom<SignMode>('none', 'none', 'valid'),
        }),
      );
      await checkRequests(parts, 400);
    },
    TEST_TIMEOUT,
  );

  it(
    'live claims: sequences of extend, fulfill, fail, result, status and admin actions with live, stale and foreign tokens',
    async () => {
      const s = await seed();
      const step = fc.record({
        action: fc.constantFrom(
          'extend',
          'fulfill',
          'fail',
          'result',
          'status',
          'admin_intent',
          'cancel',
          'retry',
          'dead_one',
        ),
        token: fc.constantFrom('live', 'live', 'live', 'foreign', 'junk', 'missing', 'typed'),
        typed: evilValue,
        caller: fc.constantFrom(
          'same',
          'same',
          'same',
          'main',
          'tester',
          'victim',
          'admin',
          'none',
        ),
        extra: fc.record(
          {
            seconds: field(smallPositive(10, 3600)),
            result: field(payloadValue),
            result_type: field(fc.constantFrom('json', 'text')),
            error: field(fc.oneof(fc.constant(null), evilString)),
          },
          { requiredKeys: [] },
        ),
        query: fc.oneof(fc.constant(''), queryString(['wait'])),
        transport,
        sign: fc.constantFrom<SignMode>('none', 'none', 'valid'),
      });
      // A valid publish (so that the claim gets it) with fuzzed goal, payload and settings.
      const published = fc.record(
        {
          goal: fc
            .oneof(fc.string({ unit: 'binary', maxLength: 200 }), nastyStrings, fc.constant('fz'))
            .filter((g) => g.trim().length > 0 && g.trim().length <= 256),
          payload: fc.oneof(
            fc.jsonValue({ maxDepth: 4 }),
            fc.constant({ note: CANARY }),
            rawNumber,
            evilString.filter((x) => x.length < 10_000),
          ),
          visibility: fc.constantFrom('private', 'public'),
          priority: fc.integer({ min: 0, max: 1000 }),
          max_attempts: fc.integer({ min: 1, max: 3 }),
          backoff_base: smallPositive(1, 3600),
          ttl: smallPositive(1, 2_592_000),
        },
        { requiredKeys: ['goal', 'payload'] },
      );
      // The bus refuses a lone surrogate anywhere in a body (400 invalid_json).
      const validPublish = published.filter((p) => wellFormed(p));
      const scenario = fc.record({
        publisher: fc.constantFrom('main', 'tester'),
        published: validPublish,
        before: fc.constantFrom('none', 'none', 'fulfill', 'fail', 'cancel', 'retry', 'extend'),
        steps: fc.array(step, { minLength: 1, maxLength: 3 }),
      });
      await fc.assert(
        fc.asyncProperty(scenario, async (sc) => {
          const key = sc.publisher === 'main' ? MAIN_KEY : s.tester;
          const live = await publishAndClaim(sc.published, key);
          if (sc.before === 'fulfill' || sc.before === 'fail' || sc.before === 'extend') {
            const path = sc.before === 'extend' ? 'extend_claim' : sc.before;
            const r = await t.api('POST', `/${path}/${live.id}`, {
              key,
              body: { claim_token: live.token, seconds: 60, result: CANARY, error: CANARY },
            });
            if (r.status !== 200) throw new Error(`${sc.before}: ${r.status} ${r.text}`);
          } else if (sc.before !== 'none') {
            const r = await t.api('POST', `/admin/intents/${live.id}/${sc.before}`, {
              admin: true,
            });
            if (r.status !== 200) throw new Error(`${sc.before}: ${r.status} ${r.text}`);
          }
          for (const st of sc.steps) {
            const route = ROUTES.find((r) => r.name === st.action)!;
            const body: Record<string, unknown> = { ...st.extra };
            if (st.token === 'live') body.claim_token = live.token;
            else if (st.token === 'foreign') body.claim_token = s.tokens[0];
            else if (st.token === 'junk') body.claim_token = randomBytes(16).toString('hex');
            else if (st.token === 'typed') body.claim_token = st.typed;
            const callerKey: Record<string, string> = {
              main: MAIN_KEY,
              tester: s.tester,
              victim: s.victim,
            };
            const creds: Array<[string, string]> =
              st.caller === 'admin' || (st.caller === 'same' && route.auth === 'admin')
                ? [['X-Admin-Token', ADMIN_TOKEN]]
                : st.caller === 'same'
                  ? [['X-API-KEY', key]]
                  : st.caller === 'none'
                    ? []
                    : [['X-API-KEY', callerKey[st.caller]!]];
            const hasBody = route.method === 'POST' && route.body !== undefined;
            await exchange({
              transport: st.transport,
              method: route.method,
              target: route.path(live.id) + (route.query ? st.query : ''),
              headers: hasBody ? [...creds, ['Content-Type', 'application/json']] : creds,
              body: hasBody ? utf8(toJsonText(body)) : null,
              chunked: false,
              sign: st.sign,
            });
          }
        }),
        settings(200),
      );
      await expectHealthy();
    },
    TEST_TIMEOUT,
  );

  it(
    'KV round trips: set then get under fuzzed names, values and ttls',
    async () => {
      const s = await seed();
      const scenario = fc.record({
        name: paramValue(s),
        body: fc.oneof(
          { weight: 4, arbitrary: fieldBody('kvset', s).map(toJsonText) },
          { weight: 1, arbitrary: fc.constantFrom(...RAW_MEMBER_BODIES) },
        ),
        key: fc.constantFrom(MAIN_KEY, s.tester),
        otherKey: fc.constantFrom(MAIN_KEY, s.tester, s.victim),
        transport,
        sign: fc.constantFrom<SignMode>('none', 'valid'),
      });
      await fc.assert(
        fc.asyncProperty(scenario, async (sc) => {
          const json: Array<[string, string]> = [['Content-Type', 'application/json']];
          const set = await exchange({
            transport: sc.transport,
            method: 'POST',
            target: `/set/${sc.name}`,
            headers: [['X-API-KEY', sc.key], ...json],
            body: utf8(sc.body),
            chunked: false,
            sign: sc.sign,
          });
          for (const key of [sc.key, sc.otherKey]) {
            const got = await exchange({
              transport: sc.transport,
              method: 'GET',
              target: `/get/${sc.name}`,
              headers: [['X-API-KEY', key]],
              body: null,
              chunked: false,
              sign: sc.sign,
            });
            // What a key stored is what it reads back (§5: "/get returns it as stored"),
            // unless a ttl of a few seconds could have run out in between.
            if (key !== sc.key || set?.res.status !== 200 || !got) continue;
            const sent = JSON.parse(sc.body) as { value: unknown; ttl?: unknown };
            if (typeof sent.ttl === 'number' && sent.ttl < 5) continue;
            const where = `set ${sc.name.slice(0, 80)} ${show(sc.body, 300)} → get ${got.res.status} ${show(got.res.text, 300)}`;
            expect(got.res.status, where).toBe(200);
            expect((JSON.parse(got.res.text) as { value: unknown }).value, where).toEqual(
              sent.value,
            );
          }
        }),
        settings(200),
      );
      await expectHealthy();
    },
    TEST_TIMEOUT,
  );
});
