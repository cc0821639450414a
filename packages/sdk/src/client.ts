/**
 * IntentClient: every client endpoint of PROTOCOL.md §5 and the admin API of §6 over
 * fetch. Requests are signed (HMAC, §3) by default; only what is safe is retried, with
 * exponential backoff and jitter: publish (an idempotency key makes it safe), result and
 * status reads, KV set and get, and admin reads. Claims and claim mutations are never
 * retried: a lost answer there is a lost lease, which the bus recovers by itself.
 *
 * Payloads, results and KV values travel as exact text both ways (json-text.ts): what a
 * caller gives as text (`payloadText`, `resultText`, `valueText`, a JsonText) is spliced
 * into the body as written, and answers carry the text the bus sent (`payloadText`,
 * `resultText`, getText) beside the parsed value, so that numbers never change.
 */
import type {
  AdminIntent,
  ClaimQuery,
  ClaimedIntent,
  OutcomeQuery,
  CleanupCounts,
  DeadLetter,
  ExtendRequest,
  FlowControlObject,
  FlowRequest,
  FailRequest,
  FulfillRequest,
  GenerateKeyRequest,
  GoalInfo,
  IntentEvent,
  KeyInfo,
  KvSetRequest,
  ProgressRequest,
  ProgressResponse,
  PublishRequest,
  PublishResponse,
  PurgeRequest,
  ResultObject,
  ResultQuery,
  ResultType,
  RevokeKeyRequest,
  Schedule,
  ScheduleDetail,
  ScheduleIntent,
  ScheduleRequest,
  ScheduleTriggered,
  StatusObject,
  WorkerCommand,
  WorkerInfo,
  Visibility,
} from '../../protocol/src/types.js';
import { rawItems, rawMember, withRawMembers } from '../../protocol/src/raw-json.js';
import {
  AuthError,
  IntentBusError,
  NetworkError,
  QuotaError,
  RateLimitError,
  ServerError,
  errorFromResponse,
} from './errors.js';
import { exactText, type JsonText } from './json-text.js';
import { newNonce, signedHeaders } from './signing.js';

export interface IntentClientOptions {
  /** Default http://127.0.0.1:8080. */
  baseUrl?: string;
  /** The API key (`X-API-KEY`). Default: `INTENT_API_KEY` from the environment, when there is one. */
  apiKey?: string;
  /** `X-Admin-Token` for the `admin` methods. */
  adminToken?: string;
  /** Sign requests with the protocol's HMAC (default true). */
  sign?: boolean;
  /** Per-request timeout in milliseconds, long polls excepted (default 30 000). */
  timeoutMs?: number;
  /** Retries of a safe request after a network error, 5xx or 429 (default 3). */
  retries?: number;
  /** A fetch to use instead of the global one. */
  fetch?: typeof fetch;
  /** Sent as User-Agent where the platform allows it. */
  userAgent?: string;
}

export interface PublishOptions {
  namespace?: string;
  visibility?: Visibility;
  priority?: number;
  /** Seconds until claimable. */
  delay?: number;
  maxAttempts?: number;
  backoffBase?: number;
  targetWorker?: string;
  requiredCapability?: string;
  /** Seconds after it becomes claimable before it expires to dead. */
  ttl?: number;
  /** Generated when absent, so that retries never publish twice. */
  idempotencyKey?: string;
  /**
   * The payload as JSON text, sent as written (checked with JSON.parse first): numbers
   * beyond a double's precision stay exact. The `payload` argument is then undefined.
   */
  payloadText?: string;
}

/** [ext] One intent of `publishMany` (issue 21): its goal, payload and publish options. */
export interface PublishManyItem extends PublishOptions {
  goal: string;
  /** A JSON value or a JsonText; undefined with `payloadText`. */
  payload?: unknown;
}

/** [ext] One item's answer in a batch: what the single request would answer, or its error. */
export type BatchItemResult<T> =
  { ok: true; status: number; value: T } | { ok: false; status: number; error: IntentBusError };

/** [ext] One claim `fulfillMany` ends. */
export interface FulfillManyItem extends FulfillOptions {
  id: string;
  claimToken: string;
  result?: unknown;
}

/** [ext] One claim `failMany` ends. */
export interface FailManyItem {
  id: string;
  claimToken: string;
  error?: string;
}

/** [ext] What a claim of many gives (an empty list: nothing was claimable). */
export interface ClaimManyOutcome extends Omit<ClaimOutcome, 'intent'> {
  intents: ExactClaimedIntent[];
}

export interface FulfillOptions {
  resultType?: ResultType;
  /** The result as JSON text, sent as written; the `result` argument is then undefined. */
  resultText?: string;
}

/** A claimed intent (§5.2) with its payload's exact text. */
export interface ExactClaimedIntent extends ClaimedIntent {
  /** The payload as the bus sent it: the text it was published with. */
  payloadText: string;
}

/** A result object (§5.3) with its result's exact text. */
export interface ExactResultObject extends ResultObject {
  /** The result as the bus sent it: the text the worker fulfilled with ("null" when none). */
  resultText: string;
}

export interface ClaimOptions {
  goal?: string;
  namespace?: string;
  /** Claim only intents of this publisher (your own key or key id; any with the main key). */
  publisher?: string;
  workerId?: string;
  capabilities?: readonly string[];
  /** Long poll: hold up to this many seconds (0-30) for an intent. */
  waitSeconds?: number;
  signal?: AbortSignal;
}

export interface ClaimOutcome {
  intent: ExactClaimedIntent | null;
  /** When nothing was claimable: how long the bus asks to wait before the next claim. */
  retryAfterSeconds: number;
  /**
   * [ext] What an admin told this worker (its X-Worker-ID): `quiet`, claim nothing until
   * resumed; `stop`, finish what it holds and exit. Null when it was told nothing.
   */
  command: WorkerCommand | null;
}

/** Everything about an intent (§6), with the exact texts of its payload and result. */
/**
 * [ext] The answer of a fulfil or fail that also claimed the worker's next intent
 * (`fulfillAndClaim`, `failAndClaim`; PROTOCOL.md, issue 21).
 */
export interface OutcomeAndClaim {
  /**
   * The outcome recorded: the intent's status after it (`open` or `dead` after a fail;
   * null when the bus's X-Intent-Done did not reach the client, a proxy having dropped it).
   */
  done: { id: string; status: 'fulfilled' | 'open' | 'dead' | null };
  /**
   * The claim made in the same request, answered as `claimOutcome` answers. Null when no
   * claim was made after the outcome: a bus without the extension (a 2.1 bus answers the
   * outcome only, `supported` false), or the claim failed after the outcome was recorded
   * (`claimError`). Either way, claim as usual.
   */
  next: ClaimOutcome | null;
  /** False when the bus answered the outcome only: it does not know `next`. */
  supported: boolean;
  /** The bus's error for the claim, when it failed after the outcome was recorded. */
  claimError?: IntentBusError;
}

export interface ExactAdminIntent extends AdminIntent {
  payloadText: string;
  resultText: string;
}

/** A dead letter with its payload and last error (§6), the payload's exact text beside it. */
export interface DeadLetterDetail extends DeadLetter {
  payload: unknown;
  error: string | null;
  payloadText: string;
}

/**
 * A schedule (PUT /schedules/<name>): `cron` (5 fields, or 6 with seconds) or `every`
 * seconds, and the intent each run publishes. Its payload is a JSON value, a JsonText, or
 * undefined with `payloadText`: text is sent exactly as written.
 */
export interface ScheduleSpec {
  cron?: string;
  every?: number;
  /** IANA zone the cron expression is read in (default UTC). */
  timezone?: string;
  intent: Omit<ScheduleIntent, 'payload'> & { payload?: unknown; payloadText?: string };
  /** "skip": no new run while the last one is open or claimed (default "allow"). */
  overlap?: ScheduleRequest['overlap'];
  /** Ticks missed while the bus was down: "none", "latest" (default) or "all" (at most 100). */
  catchUp?: ScheduleRequest['catch_up'];
  /** Absent: a new schedule is active, an existing one keeps its state. */
  paused?: boolean;
  /** Seconds after its tick by which a run must be fulfilled, else it is missed. */
  deadline?: number;
  /**
   * The alert published when a run dies or misses its deadline: an intent of `goal` (in
   * `namespace`) whose payload names the schedule, the run and the reason, with the members
   * of `payload` (an object, or `payloadText`: its text, sent exactly as written).
   */
  onFailure?: {
    goal: string;
    namespace?: string;
    payload?: Record<string, unknown> | JsonText;
    payloadText?: string;
  };
}

/** A schedule as the bus answers it, with the exact text of its runs' payload. */
export interface ExactSchedule extends Schedule {
  payloadText: string;
  /** The exact text of `on_failure` (its payload as sent), or null. */
  onFailureText: string | null;
}

export interface ExactScheduleDetail extends ScheduleDetail {
  payloadText: string;
  onFailureText: string | null;
}

interface RequestSpec {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  /** The body's JSON text as it is, instead of `body`. */
  bodyText?: string;
  /** Members spliced into the JSON text of `body` as they are written (exact JSON). */
  raw?: Record<string, string>;
  headers?: Record<string, string>;
  /** Which credential to send (default: the API key). */
  auth?: 'key' | 'admin' | 'none';
  /** Safe to send again after a failure. */
  retry?: boolean;
  /** 404 here means the claim token is dead. */
  leaseRoute?: boolean;
  /**
   * An error status to hand back as an answer instead of throwing (health's 503; an error
   * after the outcome of a fulfil?next=1 was recorded, which says so in a header).
   */
  answer?: (status: number, body: unknown, headers: Headers) => boolean;
  /** Extra time the bus may hold the request (long polls). */
  holdSeconds?: number;
  signal?: AbortSignal;
}

interface Answer {
  status: number;
  body: unknown;
  /** The body as received, for the exact text of its members. */
  text: string;
  headers: Headers;
}

/** The fields of a publish body, from its options (the single publish and a batch's). */
function publishBody(
  goal: string,
  payload: unknown,
  options: PublishOptions,
): { body: Record<string, unknown>; payloadText: string | undefined } {
  const payloadText = exactText('payload', payload, 'payloadText', options.payloadText);
  const body: Record<string, unknown> = { goal };
  if (payloadText === undefined) body.payload = payload;
  const fields: Array<[keyof PublishOptions, keyof PublishRequest]> = [
    ['namespace', 'namespace'],
    ['visibility', 'visibility'],
    ['priority', 'priority'],
    ['delay', 'delay'],
    ['maxAttempts', 'max_attempts'],
    ['backoffBase', 'backoff_base'],
    ['targetWorker', 'target_worker'],
    ['requiredCapability', 'required_capability'],
    ['ttl', 'ttl'],
  ];
  for (const [from, to] of fields) if (options[from] !== undefined) body[to] = options[from];
  return { body, payloadText };
}

/** A fulfil body's members, from its options (the single fulfil and a batch's). */
function fulfillBody(
  claimToken: string,
  result: unknown,
  options: FulfillOptions,
): { body: FulfillRequest; resultText: string | undefined } {
  const resultText = exactText('result', result, 'resultText', options.resultText);
  const body: FulfillRequest = {
    claim_token: claimToken,
    result_type: options.resultType ?? 'json',
  };
  if (resultText === undefined && result !== undefined) body.result = result;
  return { body, resultText };
}

/** A batch's answer, item by item: a value, or the typed error the single request throws. */
function batchResults<T>(a: Answer, leaseRoute: boolean): BatchItemResult<T>[] {
  const results = (a.body as { results: Array<{ status: number; body: unknown }> }).results;
  return results.map(({ status, body }) =>
    status < 400
      ? { ok: true, status, value: body as T }
      : { ok: false, status, error: errorFromResponse(status, body, null, leaseRoute) },
  );
}

/** What a progress report carries (all optional). */
export interface ProgressReport {
  /** 0-100. */
  percent?: number;
  /** At most 200 characters. */
  message?: string;
  /** Any JSON value (a JsonText is sent as written), at most 1 KB of text. */
  data?: unknown;
  /** The data's exact JSON text instead of `data`. */
  dataText?: string;
}

/** Which changes a stream carries (all optional; a tester key sees only its intents). */
export interface EventFilter {
  namespace?: string;
  goal?: string;
  /** One intent. */
  id?: string;
}

export interface EventsOptions {
  /** Resume after this id. */
  lastEventId?: string;
  signal?: AbortSignal;
}

/**
 * One record of the stream: `event` is a change's type (its data an IntentEvent, `dataText`
 * its exact text) or `gap` (events after the id given are no longer kept: read again).
 */
export interface StreamRecord {
  id: string | null;
  event: string;
  data: IntentEvent | Record<string, unknown>;
  dataText: string;
}

/** The records of an event stream's body (comments and the retry field are skipped). */
async function* readRecords(res: Response): AsyncGenerator<StreamRecord> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        let id: string | null = null;
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('id:')) id = line.slice(3).trim();
          else if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (data.length === 0) continue;
        const dataText = data.join('\n');
        yield { id, event, data: JSON.parse(dataText) as StreamRecord['data'], dataText };
      }
    }
  } finally {
    reader.cancel().catch(() => undefined);
  }
}

/** The exact text of a member of an answer (JSON null when it has none). */
const memberText = (a: Answer, key: string): string => rawMember(a.text, key) ?? 'null';

/** The query, headers and hold of a claim (POST /claim, or a fulfil's `next=1`). */
function claimParts(
  options: ClaimOptions,
  max?: number,
): Pick<RequestSpec, 'query' | 'headers' | 'holdSeconds'> {
  const headers: Record<string, string> = {};
  if (options.workerId) headers['X-Worker-ID'] = options.workerId;
  if (options.capabilities?.length)
    headers['X-Worker-Capabilities'] = options.capabilities.join(',');
  return {
    query: {
      goal: options.goal,
      namespace: options.namespace ?? 'default',
      publisher: options.publisher,
      wait: options.waitSeconds || undefined,
      max,
    } satisfies ClaimQuery,
    headers,
    holdSeconds: options.waitSeconds ?? 0,
  };
}

/** What a 204 to a claim says: when to ask again, and the worker's command if any. */
function noClaim(a: Answer): Omit<ClaimOutcome, 'intent'> {
  const retryAfter = Number(a.headers.get('retry-after') ?? '1');
  const told = a.headers.get('x-intent-worker-command');
  return {
    retryAfterSeconds: Number.isFinite(retryAfter) ? retryAfter : 1,
    command: told === 'quiet' || told === 'stop' ? told : null,
  };
}

/** A claim's answer: 200 with the intent, or 204 (Retry-After, a worker command). */
function claimAnswer(a: Answer): ClaimOutcome {
  if (a.status === 204) return { intent: null, ...noClaim(a) };
  const intent = { ...(a.body as ClaimedIntent), payloadText: memberText(a, 'payload') };
  return { intent, retryAfterSeconds: 0, command: null };
}

function failSpec(id: string, claimToken: string, error: string | undefined): RequestSpec {
  const body: FailRequest = { claim_token: claimToken };
  if (error !== undefined) body.error = error;
  return { method: 'POST', path: `/fail/${encodeURIComponent(id)}`, body, leaseRoute: true };
}

/** The header in which a bus with the extension tells a recorded outcome: `<id> <status>`. */
const DONE_HEADER = 'x-intent-done';

/**
 * An outcome's request with `next=1` and the claim's query and headers. An error after the
 * outcome was recorded (it carries the header) is handed back, not thrown: the outcome stands.
 */
function withNext(spec: RequestSpec, claim: ClaimOptions): RequestSpec {
  const parts = claimParts(claim);
  return {
    ...spec,
    query: { ...parts.query, next: 1 } satisfies OutcomeQuery,
    headers: { ...spec.headers, ...parts.headers },
    holdSeconds: parts.holdSeconds,
    signal: claim.signal,
    answer: (_status, _body, headers) => headers.has(DONE_HEADER),
  };
}

function outcomeAndClaim(a: Answer, id: string, fulfilled: boolean): OutcomeAndClaim {
  const told = a.headers.get(DONE_HEADER);
  const claimed =
    a.status === 204 ||
    typeof (a.body as { claim_token?: unknown } | null)?.claim_token === 'string';
  if (told === null && !claimed) {
    // A bus that does not know `next` (a 2.1 bus ignores it): the plain outcome answer.
    const plain = a.body as { id: string; status: 'fulfilled' | 'open' | 'dead' };
    return { done: { id: plain.id, status: plain.status }, next: null, supported: false };
  }
  // A claim's answer without the header (a proxy dropped it): the outcome was recorded, a
  // fulfil's is `fulfilled`, a fail's not told.
  const space = told?.lastIndexOf(' ') ?? -1;
  const done: OutcomeAndClaim['done'] =
    told === null || space < 0
      ? { id, status: fulfilled ? 'fulfilled' : null }
      : {
          id: told.slice(0, space),
          status: told.slice(space + 1) as NonNullable<OutcomeAndClaim['done']['status']>,
        };
  if (a.status >= 400) {
    const claimError = errorFromResponse(a.status, a.body, a.headers.get('retry-after'), false);
    return { done, next: null, supported: true, claimError };
  }
  return { done, next: claimAnswer(a), supported: true };
}

const encoder = new TextEncoder();
/** Resolves after `ms`, or at once when `signal` aborts. */
export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

function envApiKey(): string | undefined {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process
    ?.env;
  return env?.INTENT_API_KEY || undefined;
}

export class IntentClient {
  readonly baseUrl: string;
  private readonly apiKey: string | undefined;
  private readonly o: Required<Pick<IntentClientOptions, 'sign' | 'timeoutMs' | 'retries'>> &
    IntentClientOptions;
  /** The admin API (§6): needs `adminToken`. */
  readonly admin: AdminApi;
  /** This key's schedules (issue 17): recurring intents, published once per tick. */
  readonly schedules: ScheduleApi;

  constructor(options: IntentClientOptions = {}) {
    this.baseUrl = (options.baseUrl ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
    this.apiKey = options.apiKey ?? envApiKey();
    this.o = { sign: true, timeoutMs: 30_000, retries: 3, ...options };
    this.admin = new AdminApi(this);
    this.schedules = new ScheduleApi(this);
  }

  /**
   * Publishes an intent. The payload is a JSON value, a JsonText (`jsonText(s)`), or
   * undefined with `options.payloadText`: text is sent exactly as written.
   */
  async publish(
    goal: string,
    payload: unknown,
    options: PublishOptions = {},
  ): Promise<PublishResponse> {
    const { body, payloadText } = publishBody(goal, payload, options);
    const a = await this.request({
      method: 'POST',
      path: '/intent',
      body,
      raw: payloadText === undefined ? undefined : { payload: payloadText },
      headers: { 'Idempotency-Key': options.idempotencyKey ?? newNonce() },
      retry: true,
    });
    return a.body as PublishResponse;
  }

  /**
   * [ext] Publishes many (at most 1,000) in one request (POST /intents), one transaction on
   * the bus. Each item gets an idempotency key when it has none, so the request is retried
   * safely. The answers are in the items' order: one item's error fails only that item.
   */
  async publishMany(
    items: readonly PublishManyItem[],
  ): Promise<BatchItemResult<PublishResponse>[]> {
    const texts = items.map((item) => {
      const { body, payloadText } = publishBody(item.goal, item.payload, item);
      body.idempotency_key = item.idempotencyKey ?? newNonce();
      return payloadText === undefined
        ? JSON.stringify(body)
        : withRawMembers(body, { payload: payloadText });
    });
    const a = await this.request({
      method: 'POST',
      path: '/intents',
      bodyText: `{"intents":[${texts.join(',')}]}`,
      retry: true,
    });
    return batchResults<PublishResponse>(a, false);
  }

  /**
   * [ext] Claims up to `max` (1-100) intents in one request (POST /claim?max=N); an empty
   * list when none is claimable. A bus without batches answers one intent: a list of it.
   */
  async claimMany(max: number, options: ClaimOptions = {}): Promise<ExactClaimedIntent[]> {
    return (await this.claimManyOutcome(max, options)).intents;
  }

  async claimManyOutcome(max: number, options: ClaimOptions = {}): Promise<ClaimManyOutcome> {
    const a = await this.request({
      method: 'POST',
      path: '/claim',
      ...claimParts(options, max),
      signal: options.signal,
    });
    if (a.status === 204) return { intents: [], ...noClaim(a) };
    const exact = (body: ClaimedIntent, text: string): ExactClaimedIntent => ({
      ...body,
      payloadText: rawMember(text, 'payload') ?? 'null',
    });
    const intents = Array.isArray(a.body)
      ? (rawItems(a.text) ?? []).map((t, i) => exact((a.body as ClaimedIntent[])[i]!, t))
      : [exact(a.body as ClaimedIntent, a.text)];
    return { intents, retryAfterSeconds: 0, command: null };
  }

  /** Claims one intent, or null when none is claimable (see `claimOutcome` for Retry-After). */
  async claim(options: ClaimOptions = {}): Promise<ExactClaimedIntent | null> {
    return (await this.claimOutcome(options)).intent;
  }

  async claimOutcome(options: ClaimOptions = {}): Promise<ClaimOutcome> {
    const a = await this.request({
      method: 'POST',
      path: '/claim',
      ...claimParts(options),
      signal: options.signal,
    });
    return claimAnswer(a);
  }

  /** Extends a live claim to now + seconds (10-3600). Throws LeaseLostError when it is gone. */
  async extendClaim(
    id: string,
    claimToken: string,
    seconds: number,
  ): Promise<{ ok: true; id: string; extended_by: number; claim_expires_at: number }> {
    const a = await this.request({
      method: 'POST',
      path: `/extend_claim/${encodeURIComponent(id)}`,
      body: { claim_token: claimToken, seconds } satisfies ExtendRequest,
      leaseRoute: true,
    });
    return a.body as { ok: true; id: string; extended_by: number; claim_expires_at: number };
  }

  /**
   * Reports a job's progress [ext] (issue 20), which also extends the lease by the claim
   * timeout (a heartbeat). `data` is any JSON value (at most 1 KB of text), or give
   * `dataText` to send its text exactly. Throws LeaseLostError when the claim is gone.
   */
  async progress(
    id: string,
    claimToken: string,
    p: ProgressReport = {},
  ): Promise<ProgressResponse> {
    const body: ProgressRequest = { claim_token: claimToken };
    if (p.percent !== undefined) body.percent = p.percent;
    if (p.message !== undefined) body.message = p.message;
    const dataText = exactText('data', p.data, 'dataText', p.dataText);
    if (dataText === undefined && p.data !== undefined) body.data = p.data;
    const a = await this.request({
      method: 'POST',
      path: `/progress/${encodeURIComponent(id)}`,
      body,
      raw: dataText === undefined ? undefined : { data: dataText },
      leaseRoute: true,
    });
    return a.body as ProgressResponse;
  }

  /**
   * The changes of the intents this key may read, as they happen (GET /events [ext]): an
   * async iterator of the stream's records. A dropped connection (or a cut for reading
   * slowly) is opened again with the last id seen (Last-Event-ID), so nothing kept by the
   * node is lost; what it no longer keeps comes as a `gap` record. Ends when `signal`
   * aborts or the loop breaks.
   */
  async *events(
    filter: EventFilter = {},
    options: EventsOptions = {},
  ): AsyncGenerator<StreamRecord> {
    let lastId = options.lastEventId ?? null;
    let delayMs = 0;
    const query: Record<string, string> = {};
    if (filter.namespace) query.namespace = filter.namespace;
    if (filter.goal) query.goal = filter.goal;
    if (filter.id) query.id = filter.id;
    const signal = options.signal;
    while (!signal?.aborted) {
      if (delayMs > 0) await sleep(delayMs, signal);
      if (signal?.aborted) return;
      const stop = new AbortController();
      const both = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
      try {
        const res = await this.openStream(query, lastId, both);
        delayMs = 0;
        for await (const rec of readRecords(res)) {
          if (rec.id !== null) lastId = rec.id;
          if (rec.event === 'cut') break; // read again from the last id
          delayMs = 0;
          yield rec;
        }
      } catch (err) {
        if (signal?.aborted) return;
        // Refusals a reconnect cannot mend are the caller's.
        if (err instanceof IntentBusError && !(err instanceof RateLimitError) && err.status < 500)
          throw err;
      } finally {
        stop.abort();
      }
      delayMs = Math.min(10_000, Math.max(500, delayMs * 2));
    }
  }

  private async openStream(
    query: Record<string, string>,
    lastEventId: string | null,
    signal: AbortSignal,
  ): Promise<Response> {
    const qs = Object.entries(query)
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
      .join('&');
    const target = qs ? `/events?${qs}` : '/events';
    if (!this.apiKey) {
      throw new AuthError('No API key: pass apiKey or set INTENT_API_KEY', 'no_api_key', 0);
    }
    const headers: Record<string, string> = {
      Accept: 'text/event-stream',
      'X-API-KEY': this.apiKey,
    };
    if (lastEventId !== null) headers['Last-Event-ID'] = lastEventId;
    if (this.o.userAgent) headers['User-Agent'] = this.o.userAgent;
    if (this.o.sign) {
      Object.assign(
        headers,
        await signedHeaders(this.apiKey, 'GET', target, new Uint8Array(), Date.now() / 1000),
      );
    }
    let res: Response;
    try {
      res = await (this.o.fetch ?? fetch)(this.baseUrl + target, { headers, signal });
    } catch (err) {
      throw new NetworkError(`GET /events failed: ${(err as Error).message}`, 'network_error', 0, {
        cause: err,
      });
    }
    if (res.status !== 200 || !res.body) {
      const text = await res.text().catch(() => '');
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // not JSON: kept as text
      }
      throw errorFromResponse(res.status, body, res.headers.get('retry-after'), false);
    }
    return res;
  }

  /**
   * Fulfils a claimed intent. The result is a JSON value, a JsonText, or undefined with
   * `options.resultText`: text is sent exactly as written.
   */
  async fulfill(
    id: string,
    claimToken: string,
    result?: unknown,
    options: FulfillOptions = {},
  ): Promise<{ ok: true; id: string; status: 'fulfilled' }> {
    const a = await this.request(this.fulfillSpec(id, claimToken, result, options));
    return a.body as { ok: true; id: string; status: 'fulfilled' };
  }

  /**
   * [ext] Fulfils a claimed intent and claims the worker's next one in the same request
   * (`POST /fulfill/<id>?next=1`, issue 21): the fulfil is recorded first, then the claim
   * made with `claim` (its filters, worker, capabilities and wait). A lost lease throws
   * LeaseLostError, and nothing was claimed. A bus without the extension fulfils and
   * answers as usual: `next` null and `supported` false. A `claim.signal` aborts the whole
   * request, after which the fulfil may or may not have been recorded (the runtime passes
   * none, and no wait).
   */
  async fulfillAndClaim(
    id: string,
    claimToken: string,
    result: unknown,
    claim: ClaimOptions,
    options: FulfillOptions = {},
  ): Promise<OutcomeAndClaim> {
    return outcomeAndClaim(
      await this.request(withNext(this.fulfillSpec(id, claimToken, result, options), claim)),
      id,
      true,
    );
  }

  private fulfillSpec(
    id: string,
    claimToken: string,
    result: unknown,
    options: FulfillOptions,
  ): RequestSpec {
    const { body, resultText } = fulfillBody(claimToken, result, options);
    return {
      method: 'POST',
      path: `/fulfill/${encodeURIComponent(id)}`,
      body,
      raw: resultText === undefined ? undefined : { result: resultText },
      leaseRoute: true,
    };
  }

  /**
   * [ext] Fulfils many claims in one request (POST /fulfill), one transaction on the bus;
   * a dead token fails only its own item (a LeaseLostError there). Never retried.
   */
  async fulfillMany(
    items: readonly FulfillManyItem[],
  ): Promise<BatchItemResult<{ ok: true; id: string; status: 'fulfilled' }>[]> {
    const texts = items.map((item) => {
      const { body, resultText } = fulfillBody(item.claimToken, item.result, item);
      const withId = { id: item.id, ...body };
      return resultText === undefined
        ? JSON.stringify(withId)
        : withRawMembers(withId, { result: resultText });
    });
    const a = await this.request({
      method: 'POST',
      path: '/fulfill',
      bodyText: `{"items":[${texts.join(',')}]}`,
    });
    return batchResults(a, true);
  }

  /** [ext] Fails many claims in one request (POST /fail); as `fulfillMany`. */
  async failMany(
    items: readonly FailManyItem[],
  ): Promise<BatchItemResult<{ ok: true; id: string; status: 'open' | 'dead' }>[]> {
    const a = await this.request({
      method: 'POST',
      path: '/fail',
      body: {
        items: items.map((i) => ({ id: i.id, claim_token: i.claimToken, error: i.error })),
      },
    });
    return batchResults(a, true);
  }

  async fail(
    id: string,
    claimToken: string,
    error?: string,
  ): Promise<{ ok: true; id: string; status: 'open' | 'dead' }> {
    const a = await this.request(failSpec(id, claimToken, error));
    return a.body as { ok: true; id: string; status: 'open' | 'dead' };
  }

  /**
   * [ext] Fails a claimed intent and claims the worker's next one in the same request
   * (`POST /fail/<id>?next=1`), as `fulfillAndClaim` does; `done.status` says whether the
   * failed intent will be tried again (`open`) or is `dead`.
   */
  async failAndClaim(
    id: string,
    claimToken: string,
    error: string | undefined,
    claim: ClaimOptions,
  ): Promise<OutcomeAndClaim> {
    return outcomeAndClaim(
      await this.request(withNext(failSpec(id, claimToken, error), claim)),
      id,
      false,
    );
  }

  /**
   * The status with the result and its exact text (`resultText`); `waitSeconds` (0-60)
   * holds until it is fulfilled or dead.
   */
  async getResult(
    id: string,
    options: { waitSeconds?: number; signal?: AbortSignal } = {},
  ): Promise<ExactResultObject> {
    const a = await this.request({
      method: 'GET',
      path: `/result/${encodeURIComponent(id)}`,
      query: { wait: options.waitSeconds || undefined } satisfies ResultQuery,
      holdSeconds: options.waitSeconds ?? 0,
      retry: true,
      signal: options.signal,
    });
    return { ...(a.body as ResultObject), resultText: memberText(a, 'result') };
  }

  /** [ext] This key's workers (the main key: every key's), online and busy first. */
  async workers(): Promise<WorkerInfo[]> {
    const a = await this.request({ method: 'GET', path: '/workers', retry: true });
    return (a.body as { workers: WorkerInfo[] }).workers;
  }

  async getStatus(id: string): Promise<StatusObject> {
    const a = await this.request({
      method: 'GET',
      path: `/status/${encodeURIComponent(id)}`,
      retry: true,
    });
    return a.body as StatusObject;
  }

  /**
   * Stores a JSON value under a name of this key, for `ttl` seconds (1-86400, default 600).
   * The value is a JSON value, a JsonText, or undefined with `options.valueText`: text is
   * stored exactly as written.
   */
  async set(
    name: string,
    value: unknown,
    options: { ttl?: number; valueText?: string } = {},
  ): Promise<void> {
    const valueText = exactText('value', value, 'valueText', options.valueText);
    // Without `value` when its text is spliced in as written.
    const body: Partial<KvSetRequest> = {};
    if (valueText === undefined) body.value = value;
    if (options.ttl !== undefined) body.ttl = options.ttl;
    await this.request({
      method: 'POST',
      path: `/set/${encodeURIComponent(name)}`,
      body,
      raw: valueText === undefined ? undefined : { value: valueText },
      retry: true,
    });
  }

  /** The value stored under a name of this key, or undefined when absent or expired. */
  async get(name: string): Promise<unknown> {
    const a = await this.getAnswer(name);
    return a && (a.body as { value: unknown }).value;
  }

  /** The exact JSON text of the value stored under a name, or undefined when absent or expired. */
  async getText(name: string): Promise<string | undefined> {
    const a = await this.getAnswer(name);
    return a && memberText(a, 'value');
  }

  private async getAnswer(name: string): Promise<Answer | undefined> {
    try {
      return await this.request({
        method: 'GET',
        path: `/get/${encodeURIComponent(name)}`,
        retry: true,
      });
    } catch (err) {
      if (err instanceof IntentBusError && err.status === 404) return undefined;
      throw err;
    }
  }

  /** `ok: false` with a `reason` when the bus answers 503 because its store is unusable. */
  async health(): Promise<{ ok: boolean; ts: number; version: string; reason?: string }> {
    const a = await this.request({
      method: 'GET',
      path: '/health',
      retry: true,
      auth: 'none',
      answer: (status, body) =>
        status === 503 && typeof (body as { ok?: unknown } | null)?.ok === 'boolean',
    });
    return a.body as { ok: boolean; ts: number; version: string; reason?: string };
  }

  /** Sends one request, with retries when it is safe. @internal */
  async request(spec: RequestSpec): Promise<Answer> {
    const attempts = spec.retry ? this.o.retries + 1 : 1;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once(spec);
      } catch (err) {
        // A quota does not lift in seconds: only the rate limit is waited out.
        const retryable =
          err instanceof NetworkError ||
          err instanceof ServerError ||
          (err instanceof RateLimitError && !(err instanceof QuotaError));
        if (!retryable || attempt >= attempts || spec.signal?.aborted) throw err;
        const asked =
          err instanceof RateLimitError || err instanceof ServerError
            ? (err.retryAfterSeconds ?? 0)
            : 0;
        const backoff = Math.min(8000, 250 * 2 ** (attempt - 1)) * (0.5 + Math.random());
        await sleep(Math.max(asked * 1000, backoff), spec.signal);
      }
    }
  }

  private async once(spec: RequestSpec): Promise<Answer> {
    let target = spec.path;
    const params = Object.entries(spec.query ?? {}).filter(([, v]) => v !== undefined && v !== '');
    if (params.length > 0) {
      target +=
        '?' +
        params
          .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
          .join('&');
    }
    const bodyText =
      spec.bodyText !== undefined
        ? spec.bodyText
        : spec.body === undefined
          ? ''
          : spec.raw
            ? withRawMembers(spec.body as object, spec.raw)
            : JSON.stringify(spec.body);
    const bodyBytes = encoder.encode(bodyText);
    const headers: Record<string, string> = { Accept: 'application/json', ...spec.headers };
    if (bodyText) headers['Content-Type'] = 'application/json';
    if (this.o.userAgent) headers['User-Agent'] = this.o.userAgent;
    if (spec.auth === 'admin') {
      if (!this.o.adminToken) {
        throw new AuthError('No admin token: pass adminToken', 'no_admin_token', 0);
      }
      headers['X-Admin-Token'] = this.o.adminToken;
    } else if (spec.auth !== 'none') {
      if (!this.apiKey) {
        throw new AuthError('No API key: pass apiKey or set INTENT_API_KEY', 'no_api_key', 0);
      }
      headers['X-API-KEY'] = this.apiKey;
      if (this.o.sign) {
        Object.assign(
          headers,
          await signedHeaders(this.apiKey, spec.method, target, bodyBytes, Date.now() / 1000),
        );
      }
    }
    const timeout = AbortSignal.timeout(this.o.timeoutMs + (spec.holdSeconds ?? 0) * 1000);
    const signal = spec.signal ? AbortSignal.any([spec.signal, timeout]) : timeout;
    let res: Response;
    try {
      res = await (this.o.fetch ?? fetch)(this.baseUrl + target, {
        method: spec.method,
        headers,
        body: bodyText ? bodyBytes : undefined,
        signal,
      });
    } catch (err) {
      const why = spec.signal?.aborted ? 'aborted' : timeout.aborted ? 'timed out' : 'failed';
      throw new NetworkError(
        `${spec.method} ${spec.path} ${why}: ${(err as Error).message}`,
        'network_error',
        0,
        {
          cause: err,
        },
      );
    }
    const text = await res.text().catch(() => '');
    let body: unknown = undefined;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    if (res.status >= 400 && !spec.answer?.(res.status, body, res.headers)) {
      throw errorFromResponse(
        res.status,
        body,
        res.headers.get('retry-after'),
        spec.leaseRoute ?? false,
      );
    }
    return { status: res.status, body, text, headers: res.headers };
  }
}

/** The admin API (PROTOCOL.md §6), reached as `client.admin`. */
export class AdminApi {
  constructor(private readonly client: IntentClient) {}

  private call<T>(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    body?: unknown,
  ): Promise<T> {
    return this.answer(method, path, body).then((a) => a.body as T);
  }

  private answer(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    body?: unknown,
  ): Promise<Answer> {
    // A PUT of a flow control sets the same state again: safe to retry.
    const retry = method === 'GET' || method === 'PUT';
    return this.client.request({ method, path, body, auth: 'admin', retry });
  }

  /** Every flow control [ext]: pauses, limits in flight and rates, by namespace and goal. */
  flow(): Promise<FlowControlObject[]> {
    return this.call('GET', '/admin/flow');
  }
  /**
   * Changes the flow control of a goal (`*`: the whole namespace) [ext]: a member not given
   * stays, null clears; a control with nothing left set is removed (`updated_at` null).
   */
  setFlow(namespace: string, goal: string, change: FlowRequest): Promise<FlowControlObject> {
    return this.call('PUT', this.flowPath(namespace, goal), change);
  }
  /** Removes a flow control [ext]; NotFoundError when there is none. */
  removeFlow(namespace: string, goal: string): Promise<{ ok: true; removed: true }> {
    return this.call('DELETE', this.flowPath(namespace, goal));
  }
  private flowPath(namespace: string, goal: string): string {
    return `/admin/flow/${encodeURIComponent(namespace)}/${encodeURIComponent(goal)}`;
  }

  generateKey(owner: string): Promise<{ api_key: string; owner: string; key_id: string }> {
    return this.call('POST', '/admin/generate_key', { owner } satisfies GenerateKeyRequest);
  }
  revokeKey(key: { apiKey: string } | { keyId: string }): Promise<{ ok: true }> {
    return this.call(
      'POST',
      '/admin/revoke_key',
      ('apiKey' in key
        ? { api_key: key.apiKey }
        : { key_id: key.keyId }) satisfies RevokeKeyRequest,
    );
  }
  keys(): Promise<KeyInfo[]> {
    return this.call('GET', '/admin/keys');
  }
  purge(
    options: { namespace?: string } = {},
  ): Promise<{ ok: true; intents_deleted: number; dead_letters_deleted: number }> {
    return this.call('POST', '/admin/purge', { confirm: true, ...options } satisfies PurgeRequest);
  }
  cleanup(): Promise<CleanupCounts & { ok: true }> {
    return this.call('POST', '/admin/cleanup');
  }
  /** Everything about an intent, with `payloadText` and `resultText` exact. */
  async intent(id: string): Promise<ExactAdminIntent> {
    const a = await this.answer('GET', `/admin/intents/${encodeURIComponent(id)}`);
    return {
      ...(a.body as AdminIntent),
      payloadText: memberText(a, 'payload'),
      resultText: memberText(a, 'result'),
    };
  }
  cancel(id: string): Promise<{ ok: true; id: string; status: string }> {
    return this.call('POST', `/admin/intents/${encodeURIComponent(id)}/cancel`);
  }
  retry(id: string): Promise<{ ok: true; id: string; status: string }> {
    return this.call('POST', `/admin/intents/${encodeURIComponent(id)}/retry`);
  }
  deadLetters(options: { namespace?: string; limit?: number } = {}): Promise<DeadLetter[]> {
    const q = new URLSearchParams();
    if (options.namespace) q.set('namespace', options.namespace);
    if (options.limit) q.set('limit', String(options.limit));
    const qs = q.toString();
    return this.call('GET', `/admin/dead${qs ? `?${qs}` : ''}`);
  }
  /** A dead letter with its payload (`payloadText` exact) and last error. */
  async deadLetter(id: string): Promise<DeadLetterDetail> {
    const a = await this.answer('GET', `/admin/dead/${encodeURIComponent(id)}`);
    return {
      ...(a.body as Omit<DeadLetterDetail, 'payloadText'>),
      payloadText: memberText(a, 'payload'),
    };
  }
  /**
   * Deletes a dead letter for good (its intent and payload); NotFoundError when the id is
   * not a dead letter. Not retried: a second try after a lost answer would say not found.
   */
  discardDead(id: string): Promise<{ ok: true; id: string; discarded: true }> {
    return this.call('DELETE', `/admin/dead/${encodeURIComponent(id)}`);
  }
  /** [ext] Every key's workers, online and busy first. */
  async workers(): Promise<WorkerInfo[]> {
    return (await this.call<{ workers: WorkerInfo[] }>('GET', '/admin/workers')).workers;
  }
  /**
   * [ext] Tells the workers of this id (under every key, or `keyId`'s) to quiet or stop, or
   * (resume) clears what they were told. NotFoundError when no worker has this id.
   */
  commandWorker(
    workerId: string,
    command: WorkerCommand | 'resume',
    options: { keyId?: string } = {},
  ): Promise<WorkerCommandAnswer> {
    return this.call('POST', this.workerPath(workerId, command, options.keyId));
  }
  /** [ext] Forgets the workers of this id (seen again if they are still running). */
  forgetWorker(workerId: string, options: { keyId?: string } = {}): Promise<WorkerCommandAnswer> {
    return this.call('DELETE', this.workerPath(workerId, null, options.keyId));
  }
  /** [ext] Every namespace and goal with its counts, and why open intents wait. */
  async goals(): Promise<GoalInfo[]> {
    return (await this.call<{ goals: GoalInfo[] }>('GET', '/admin/goals')).goals;
  }
  private workerPath(workerId: string, action: string | null, keyId?: string): string {
    const q = keyId ? `?key_id=${encodeURIComponent(keyId)}` : '';
    return `/admin/workers/${encodeURIComponent(workerId)}${action ? `/${action}` : ''}${q}`;
  }
}

/** [ext] What a worker command or forget answers: the workers it reached. */
export interface WorkerCommandAnswer {
  ok: true;
  worker_id: string;
  command?: WorkerCommand | null;
  forgotten?: true;
  workers: Array<{ key_id: string; worker_id: string }>;
}

/** The payload text of a schedule answer's intent, and its on_failure's text. */
const exactTexts = (a: Answer): { payloadText: string; onFailureText: string | null } => {
  const onFailure = rawMember(a.text, 'on_failure');
  return {
    payloadText: rawMember(rawMember(a.text, 'intent') ?? '{}', 'payload') ?? 'null',
    onFailureText: onFailure === undefined || onFailure === 'null' ? null : onFailure,
  };
};

/** The schedules of this client's key, reached as `client.schedules`. */
export class ScheduleApi {
  constructor(private readonly client: IntentClient) {}

  private path(name: string, action?: string): string {
    return `/schedules/${encodeURIComponent(name)}${action ? `/${action}` : ''}`;
  }

  /**
   * Creates or replaces the schedule `name` (declarative: the same spec again changes
   * nothing). `created` is true when it did not exist.
   */
  async set(name: string, spec: ScheduleSpec): Promise<ExactSchedule & { created: boolean }> {
    const { payload, payloadText: given, ...intent } = spec.intent;
    const payloadText = exactText('payload', payload, 'payloadText', given);
    const intentText = withRawMembers(intent, {
      payload: payloadText ?? JSON.stringify(payload === undefined ? null : payload),
    });
    const body: Partial<ScheduleRequest> = {};
    if (spec.cron !== undefined) body.cron = spec.cron;
    if (spec.every !== undefined) body.every = spec.every;
    if (spec.timezone !== undefined) body.timezone = spec.timezone;
    if (spec.overlap !== undefined) body.overlap = spec.overlap;
    if (spec.catchUp !== undefined) body.catch_up = spec.catchUp;
    if (spec.paused !== undefined) body.paused = spec.paused;
    if (spec.deadline !== undefined) body.deadline = spec.deadline;
    const raw: Record<string, string> = { intent: intentText };
    if (spec.onFailure !== undefined) {
      const { payload: alertPayload, payloadText: alertText, ...alert } = spec.onFailure;
      const text = exactText('onFailure.payload', alertPayload, 'onFailure.payloadText', alertText);
      raw.on_failure =
        text === undefined && alertPayload === undefined
          ? JSON.stringify(alert)
          : withRawMembers(alert, { payload: text ?? JSON.stringify(alertPayload) });
    }
    const a = await this.client.request({
      method: 'PUT',
      path: this.path(name),
      body,
      raw,
      // The same PUT twice changes nothing: safe to send again.
      retry: true,
    });
    return {
      ...(a.body as Schedule),
      ...exactTexts(a),
      created: a.status === 201,
    };
  }

  /** This key's schedules, by name (`get` gives a payload's exact text). */
  async list(): Promise<Schedule[]> {
    const a = await this.client.request({ method: 'GET', path: '/schedules', retry: true });
    return a.body as Schedule[];
  }

  /** One schedule with its next fire times and its last runs; undefined when there is none. */
  async get(name: string): Promise<ExactScheduleDetail | undefined> {
    try {
      const a = await this.client.request({ method: 'GET', path: this.path(name), retry: true });
      return { ...(a.body as ScheduleDetail), ...exactTexts(a) };
    } catch (err) {
      if (err instanceof IntentBusError && err.status === 404) return undefined;
      throw err;
    }
  }

  /** Removes it (its published runs stay); false when there was none. */
  async delete(name: string): Promise<boolean> {
    try {
      await this.client.request({ method: 'DELETE', path: this.path(name) });
      return true;
    } catch (err) {
      if (err instanceof IntentBusError && err.status === 404) return false;
      throw err;
    }
  }

  /** No more ticks until resumed. */
  async pause(name: string): Promise<ExactSchedule> {
    return this.state(name, 'pause');
  }

  /** Ticks again from now (the ticks while paused are not owed). */
  async resume(name: string): Promise<ExactSchedule> {
    return this.state(name, 'resume');
  }

  private async state(name: string, action: 'pause' | 'resume'): Promise<ExactSchedule> {
    const a = await this.client.request({
      method: 'POST',
      path: this.path(name, action),
      retry: true,
    });
    return { ...(a.body as Schedule), ...exactTexts(a) };
  }

  /** Publishes one run now (not retried: a lost answer may have published it). */
  async trigger(name: string): Promise<ScheduleTriggered> {
    const a = await this.client.request({ method: 'POST', path: this.path(name, 'trigger') });
    return a.body as ScheduleTriggered;
  }
}
