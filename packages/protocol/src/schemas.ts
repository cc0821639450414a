/**
 * JSON schemas of every request the bus accepts, and of its answers (below). They validate
 * requests in the server (one Ajv compile per route at start-up), describe the API
 * (/openapi.json) and type the route handlers (Fastify's json-schema-to-ts type provider)
 * and the SDK (types.ts makes every wire type from its schema): a field is added here once.
 * A publish member's `default` is the value the bus keeps when it is absent
 * (server/src/core/validate.ts); the validator does not fill it in.
 * Bodies are validated without type coercion; query strings with it (they are text).
 */
import { LIMITS as L } from './limits.js';

const nullableWorkerName = { type: ['string', 'null'], pattern: L.workerPattern } as const;

export const publishBody = {
  type: 'object',
  required: ['goal', 'payload'],
  properties: {
    goal: { type: 'string' },
    payload: {},
    namespace: { type: 'string', pattern: L.namespacePattern, default: L.defaultNamespace },
    visibility: { type: 'string', enum: ['private', 'public'], default: 'private' },
    priority: {
      type: 'integer',
      minimum: L.priority.min,
      maximum: L.priority.max,
      default: L.priority.default,
    },
    delay: {
      type: 'number',
      minimum: L.delaySeconds.min,
      maximum: L.delaySeconds.max,
      default: L.delaySeconds.default,
    },
    max_attempts: {
      type: 'integer',
      minimum: L.maxAttempts.min,
      maximum: L.maxAttempts.max,
      default: L.maxAttempts.default,
    },
    backoff_base: {
      type: 'number',
      minimum: L.backoffBaseSeconds.min,
      maximum: L.backoffBaseSeconds.max,
      default: L.backoffBaseSeconds.default,
    },
    target_worker: nullableWorkerName,
    required_capability: nullableWorkerName,
    ttl: {
      type: 'number',
      minimum: L.ttlSeconds.min,
      maximum: L.ttlSeconds.max,
      default: L.ttlSeconds.default,
    },
  },
} as const;

/**
 * The intent a schedule's runs publish: the publish fields (no delay: a run is due at its
 * tick). Unknown members are refused, here and in the schedule around it, so that a typo
 * in a declared schedule is an error and not a default.
 */
const scheduleIntent = {
  type: 'object',
  required: ['goal', 'payload'],
  additionalProperties: false,
  properties: {
    goal: publishBody.properties.goal,
    payload: publishBody.properties.payload,
    namespace: publishBody.properties.namespace,
    visibility: publishBody.properties.visibility,
    priority: publishBody.properties.priority,
    max_attempts: publishBody.properties.max_attempts,
    backoff_base: publishBody.properties.backoff_base,
    target_worker: nullableWorkerName,
    required_capability: nullableWorkerName,
    ttl: publishBody.properties.ttl,
  },
} as const;

/**
 * The alert a schedule publishes when a run dies or misses its deadline: its goal, its
 * namespace and members added to the alert's payload (an object; the bus's own members,
 * schedule, run, reason, error and deadline, are refused there by the server).
 */
export const scheduleAlert = {
  type: 'object',
  required: ['goal'],
  additionalProperties: false,
  properties: {
    goal: publishBody.properties.goal,
    namespace: publishBody.properties.namespace,
    payload: { type: 'object' },
  },
} as const;

/** PUT /schedules/:name. Either cron or every (checked by the server, naming the field). */
export const scheduleBody = {
  type: 'object',
  required: ['intent'],
  additionalProperties: false,
  properties: {
    cron: { type: 'string', minLength: 1, maxLength: L.scheduleCronMaxLength },
    every: {
      type: 'integer',
      minimum: L.scheduleEverySeconds.min,
      maximum: L.scheduleEverySeconds.max,
    },
    timezone: { type: 'string', minLength: 1, maxLength: L.scheduleTimezoneMaxLength },
    intent: scheduleIntent,
    overlap: { type: 'string', enum: ['allow', 'skip'] },
    catch_up: { type: 'string', enum: ['none', 'latest', 'all'] },
    paused: { type: 'boolean' },
    deadline: {
      type: 'integer',
      minimum: L.scheduleDeadlineSeconds.min,
      maximum: L.scheduleDeadlineSeconds.max,
    },
    on_failure: scheduleAlert,
  },
} as const;

export const scheduleParams = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', minLength: 1, maxLength: L.scheduleNameMaxLength } },
} as const;

/** /admin/schedules/:owner/:name/… (the owner's key id, `main` for the main key). */
export const adminScheduleParams = {
  type: 'object',
  required: ['owner', 'name'],
  properties: {
    owner: { type: 'string', minLength: 1, maxLength: 64 },
    name: scheduleParams.properties.name,
  },
} as const;

export const claimQuery = {
  type: 'object',
  properties: {
    goal: { type: 'string', minLength: 1, maxLength: L.goalMaxLength },
    namespace: { type: 'string', pattern: L.namespacePattern },
    publisher: { type: 'string', minLength: 1, maxLength: L.publisherMaxLength },
    worker_id: { type: 'string', maxLength: L.claimerNameMaxLength },
    capabilities: { type: 'string', maxLength: 2048 },
    capability: { type: 'string', maxLength: 2048 },
    wait: { type: 'number', minimum: L.claimWaitSeconds.min, maximum: L.claimWaitSeconds.max },
    // [ext] issue 21: claim up to this many at once (the answer is then an array).
    max: { type: 'integer', minimum: L.claimMax.min, maximum: L.claimMax.max },
  },
} as const;

/**
 * The query of POST /fulfill/:id and /fail/:id [ext] (issue 21): `next=1` claims the
 * worker's next intent in the same request, after the outcome is recorded, with the
 * claim's own parameters (claimQuery's, read as POST /claim reads them).
 */
export const outcomeQuery = {
  type: 'object',
  properties: {
    ...claimQuery.properties,
    next: { type: 'integer', enum: [0, 1] },
  },
} as const;

// Any string: one that cannot be a live token answers 404 like any other dead token.
const claimToken = { type: 'string' } as const;

export const extendBody = {
  type: 'object',
  required: ['claim_token', 'seconds'],
  properties: {
    claim_token: claimToken,
    seconds: { type: 'number', minimum: L.extendSeconds.min, maximum: L.extendSeconds.max },
  },
} as const;

/** POST /progress/:id [ext] (issue 20): a heartbeat with the worker's last progress. */
export const progressBody = {
  type: 'object',
  required: ['claim_token'],
  properties: {
    claim_token: claimToken,
    percent: { type: 'number', minimum: 0, maximum: 100 },
    message: { type: 'string', maxLength: L.progressMessageMaxLength },
    // Any JSON value, at most L.progressDataMaxBytes bytes of text (checked by the bus).
    data: {},
  },
} as const;

/** The data of one record of GET /events [ext] (issue 20): a change of an intent. */
export const intentEvent = {
  type: 'object',
  additionalProperties: false,
  required: [
    'type',
    'id',
    'namespace',
    'goal',
    'status',
    'claim_attempts',
    'at',
    'dead_reason',
    'progress',
  ],
  properties: {
    type: {
      type: 'string',
      enum: [
        'published',
        'claimed',
        'progress',
        'fulfilled',
        'failed',
        'dead',
        'retried',
        'cancelled',
        'released',
      ],
    },
    id: { type: 'string' },
    namespace: { type: 'string' },
    goal: { type: 'string' },
    status: { type: 'string', enum: ['open', 'claimed', 'fulfilled', 'dead'] },
    claim_attempts: { type: 'integer' },
    at: { type: 'number' },
    dead_reason: { type: ['string', 'null'] },
    // The reported progress on a `progress` event; null on the others.
    progress: {
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['percent', 'message', 'data', 'at'],
      properties: {
        percent: { type: ['number', 'null'] },
        message: { type: ['string', 'null'] },
        data: {},
        at: { type: 'number' },
      },
    },
  },
} as const;

/** The answer of POST /progress/:id [ext]. */
export const progressResponse = {
  type: 'object',
  additionalProperties: false,
  required: ['ok', 'id', 'claim_expires_at', 'held'],
  properties: {
    ok: { type: 'boolean', const: true },
    id: { type: 'string' },
    // The lease as the store holds it now.
    claim_expires_at: { type: 'number' },
    // True when the write waits for the end of this intent's second (PROTOCOL.md).
    held: { type: 'boolean' },
  },
} as const;

/** An intent's last progress [ext], or null. */
export const progressObject = {
  type: ['object', 'null'],
  additionalProperties: false,
  required: ['percent', 'message', 'data', 'at'],
  properties: {
    percent: { type: ['number', 'null'] },
    message: { type: ['string', 'null'] },
    data: {},
    at: { type: 'number' },
  },
} as const;

/** GET /events [ext] (issue 20): which changes a stream carries. */
export const eventsQuery = {
  type: 'object',
  properties: {
    namespace: { type: 'string', pattern: L.namespacePattern },
    goal: { type: 'string', minLength: 1, maxLength: L.goalMaxLength },
    id: { type: 'string', pattern: L.idPattern },
    // For a client that cannot send the Last-Event-ID header.
    last_event_id: { type: 'string', maxLength: 64 },
  },
} as const;

export const fulfillBody = {
  type: 'object',
  required: ['claim_token'],
  properties: {
    claim_token: claimToken,
    result: {},
    result_type: { type: 'string', enum: ['json', 'text'] },
  },
} as const;

export const failBody = {
  type: 'object',
  required: ['claim_token'],
  properties: {
    claim_token: claimToken,
    error: { type: ['string', 'null'] },
  },
} as const;

/**
 * [ext] Batches (issue 21). Each item is checked on its own (a bad one fails alone), so the
 * batch's schema only says it is a list of objects; an item is a publish body (plus its
 * `idempotency_key`), a fulfil or a fail body (plus the intent's `id`).
 */
const batchItems = {
  type: 'array',
  minItems: 1,
  maxItems: L.batchMaxItems,
  items: {},
} as const;

/** POST /intents [ext]. */
export const publishBatchBody = {
  type: 'object',
  required: ['intents'],
  properties: { intents: batchItems },
} as const;

/** A publish batch's item: a publish body with, optionally, its Idempotency-Key. */
export const publishBatchItem = {
  ...publishBody,
  properties: {
    ...publishBody.properties,
    idempotency_key: { type: 'string' },
  },
} as const;

/** POST /fulfill and POST /fail [ext]: the items, each naming its intent. */
export const fulfillBatchBody = {
  type: 'object',
  required: ['items'],
  properties: { items: batchItems },
} as const;
export const failBatchBody = fulfillBatchBody;

const itemId = { type: 'string' } as const;
export const fulfillBatchItem = {
  type: 'object',
  required: ['id', 'claim_token'],
  properties: { id: itemId, ...fulfillBody.properties },
} as const;
export const failBatchItem = {
  type: 'object',
  required: ['id', 'claim_token'],
  properties: { id: itemId, ...failBody.properties },
} as const;

// Path ids: any text. One that cannot be an intent's id answers 404 like an unknown one.
export const intentIdParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string' } },
} as const;

export const deadLetterParams = {
  type: 'object',
  required: ['intent_id'],
  properties: { intent_id: { type: 'string' } },
} as const;

export const resultQuery = {
  type: 'object',
  properties: {
    wait: { type: 'number', minimum: L.resultWaitSeconds.min, maximum: L.resultWaitSeconds.max },
  },
} as const;

export const kvParams = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', minLength: 1, maxLength: L.kvNameMaxLength } },
} as const;

export const kvSetBody = {
  type: 'object',
  required: ['value'],
  properties: {
    value: {},
    // Out of range is clamped (PROTOCOL.md §5), a wrong type is refused.
    ttl: { type: 'number' },
  },
} as const;

export const generateKeyBody = {
  type: 'object',
  required: ['owner'],
  properties: { owner: { type: 'string', minLength: 1, maxLength: L.ownerMaxLength } },
} as const;

export const revokeKeyBody = {
  type: 'object',
  properties: {
    api_key: { type: 'string', minLength: 1, maxLength: 256 },
    key_id: { type: 'string', minLength: 1, maxLength: 64 },
  },
} as const;

export const purgeBody = {
  type: 'object',
  properties: {
    confirm: { type: 'boolean' },
    namespace: { type: 'string', pattern: L.namespacePattern },
  },
} as const;

/** PUT /admin/flow/:namespace/:goal [ext]: a member not given stays, null clears. */
export const flowParams = {
  type: 'object',
  required: ['namespace', 'goal'],
  properties: {
    namespace: { type: 'string', pattern: L.namespacePattern },
    // `*`: the whole namespace.
    goal: { type: 'string', minLength: 1, maxLength: L.goalMaxLength },
  },
} as const;

export const flowBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    paused: { type: 'boolean' },
    max_in_flight: {
      type: ['integer', 'null'],
      minimum: L.flowMaxInFlight.min,
      maximum: L.flowMaxInFlight.max,
    },
    rate: {
      type: ['object', 'null'],
      required: ['limit', 'per'],
      additionalProperties: false,
      properties: {
        limit: { type: 'integer', minimum: L.flowRateLimit.min, maximum: L.flowRateLimit.max },
        per: {
          type: 'integer',
          minimum: L.flowRatePerSeconds.min,
          maximum: L.flowRatePerSeconds.max,
        },
      },
    },
  },
} as const;

export const adminIntentsQuery = {
  type: 'object',
  properties: {
    namespace: { type: 'string', pattern: L.namespacePattern },
    goal: { type: 'string', minLength: 1, maxLength: L.goalMaxLength },
    status: { type: 'string', enum: ['open', 'claimed', 'fulfilled', 'dead'] },
    publisher: { type: 'string', minLength: 1, maxLength: 64 },
    worker_id: { type: 'string', minLength: 1, maxLength: L.claimerNameMaxLength },
    limit: { type: 'integer', minimum: 1, maximum: 200 },
    cursor: { type: 'string', maxLength: 200 },
  },
} as const;

export const deadListQuery = {
  type: 'object',
  properties: {
    namespace: { type: 'string', pattern: L.namespacePattern },
    limit: { type: 'integer', minimum: 1, maximum: 100 },
  },
} as const;

// Answers (PROTOCOL.md §5.2, §5.3, §5.4, §6): what the bus sends back, every member named
// (an answer has no others). They type the SDK (types.ts) and are held to the bus's real
// answers, on both stores, by server/test/answers.test.ts. Times are unix seconds.

const nullableText = { type: ['string', 'null'] } as const;
const seconds = { type: 'number' } as const;
const nullableSeconds = { type: ['number', 'null'] } as const;
const intentStatus = adminIntentsQuery.properties.status;

/** A claimed intent: POST /claim's 200 (§5.2). */
export const claimedIntent = {
  type: 'object',
  additionalProperties: false,
  required: [
    'id',
    'namespace',
    'goal',
    'payload',
    'claim_attempts',
    'priority',
    'target_worker',
    'required_capability',
    'claim_token',
    'claim_timeout',
    'claim_expires_at',
  ],
  properties: {
    id: { type: 'string' },
    namespace: { type: 'string' },
    goal: { type: 'string' },
    payload: {},
    claim_attempts: { type: 'integer' },
    priority: { type: 'integer' },
    target_worker: nullableText,
    required_capability: nullableText,
    claim_token: { type: 'string' },
    claim_timeout: seconds,
    claim_expires_at: seconds,
  },
} as const;

/** GET /status/:id (§5.3). `error` only when the last attempt failed with one. */
export const statusObject = {
  type: 'object',
  additionalProperties: false,
  required: [
    'id',
    'namespace',
    'goal',
    'status',
    'priority',
    'visibility',
    'claim_attempts',
    'max_attempts',
    'run_at',
    'created_at',
    'expires_at',
    'claim_expires_at',
    'target_worker',
    'required_capability',
    'worker_id',
    'schedule',
    'scheduled_for',
    'progress',
  ],
  properties: {
    id: { type: 'string' },
    namespace: { type: 'string' },
    goal: { type: 'string' },
    status: intentStatus,
    priority: { type: 'integer' },
    visibility: publishBody.properties.visibility,
    claim_attempts: { type: 'integer' },
    max_attempts: { type: 'integer' },
    run_at: seconds,
    created_at: seconds,
    expires_at: seconds,
    claim_expires_at: nullableSeconds,
    target_worker: nullableText,
    required_capability: nullableText,
    worker_id: nullableText,
    // A schedule's run: the schedule's name and the tick it is for; else null.
    schedule: nullableText,
    scheduled_for: nullableSeconds,
    error: { type: 'string' },
    // A dead intent's reason (the admin's view has it for every intent, null until dead).
    dead_reason: { type: 'string' },
    // [ext] A claimed intent whose claim named its worker: whether that worker is online.
    worker_online: { type: 'boolean' },
    // [ext] /status of an open intent a flow control holds back: which control.
    held_by: { type: 'string', enum: ['paused', 'max_in_flight', 'rate'] },
    // [ext] The last progress a worker reported (issue 20), or null.
    progress: progressObject,
  },
} as const;

/** GET /result/:id (§5.3): the status object with the result. */
export const resultObject = {
  type: 'object',
  additionalProperties: false,
  required: [...statusObject.required, 'result', 'result_type', 'completed_at'],
  properties: {
    ...statusObject.properties,
    result: {},
    result_type: { type: ['string', 'null'], enum: ['json', 'text', null] },
    completed_at: nullableSeconds,
  },
} as const;

/** An intent as GET /admin/intents lists it: everything about it (§6). */
export const adminIntent = {
  type: 'object',
  additionalProperties: false,
  required: [
    ...resultObject.required,
    'payload',
    'publisher',
    'backoff_base',
    'ttl',
    'dead_reason',
  ],
  properties: {
    ...resultObject.properties,
    payload: {},
    publisher: { type: 'string' },
    backoff_base: { type: 'number' },
    ttl: { type: 'number' },
    dead_reason: nullableText,
  },
} as const;

/** POST /intent's 201 (and an idempotent replay's 200). */
export const publishResponse = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'status', 'namespace'],
  properties: {
    id: { type: 'string' },
    status: { type: 'string', enum: ['published'] },
    namespace: { type: 'string' },
  },
} as const;

/** Any 4xx or 5xx answer's body (PROTOCOL.md §7). */
export const errorBody = {
  type: 'object',
  additionalProperties: false,
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      additionalProperties: false,
      required: ['code', 'message'],
      properties: {
        code: { type: 'string' },
        message: { type: 'string' },
        field: { type: 'string' },
      },
    },
  },
} as const;

/** POST /fulfill/:id's 200. */
export const fulfillResponse = {
  type: 'object',
  additionalProperties: false,
  required: ['ok', 'id', 'status'],
  properties: {
    ok: { type: 'boolean', const: true },
    id: { type: 'string' },
    status: { type: 'string', enum: ['fulfilled'] },
  },
} as const;

/** POST /fail/:id's 200: open again (a retry to come) or dead. */
export const failResponse = {
  type: 'object',
  additionalProperties: false,
  required: ['ok', 'id', 'status'],
  properties: {
    ok: { type: 'boolean', const: true },
    id: { type: 'string' },
    status: { type: 'string', enum: ['open', 'dead'] },
  },
} as const;

/** [ext] A batch's answer (issue 21): per item, in order, what the single request answers. */
const batchResults = <B extends object>(body: B) =>
  ({
    type: 'object',
    additionalProperties: false,
    required: ['results'],
    properties: {
      results: {
        type: 'array',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['status', 'body'],
          properties: {
            status: { type: 'integer' },
            body: { anyOf: [body, errorBody] },
          },
        },
      },
    },
  }) as const;

/** POST /intents [ext]. */
export const publishBatchResponse = batchResults(publishResponse);
/** POST /fulfill [ext]. */
export const fulfillBatchResponse = batchResults(fulfillResponse);
/** POST /fail [ext]. */
export const failBatchResponse = batchResults(failResponse);

/** One of GET /admin/dead's dead letters. */
export const deadLetter = {
  type: 'object',
  additionalProperties: false,
  required: ['intent_id', 'namespace', 'goal', 'attempts', 'reason', 'created_at'],
  properties: {
    intent_id: { type: 'string' },
    namespace: { type: 'string' },
    goal: { type: 'string' },
    attempts: { type: 'integer' },
    reason: { type: 'string' },
    created_at: seconds,
  },
} as const;

/** One of GET /admin/keys's keys (never the key itself). */
export const keyInfo = {
  type: 'object',
  additionalProperties: false,
  required: ['key_id', 'owner', 'prefix', 'created_at', 'last_used_at', 'requests'],
  properties: {
    key_id: { type: 'string' },
    owner: { type: 'string' },
    prefix: { type: 'string' },
    created_at: seconds,
    last_used_at: nullableSeconds,
    requests: { type: 'integer' },
  },
} as const;

/** A schedule as the bus answers it (PUT, GET, the list). */
export const scheduleObject = {
  type: 'object',
  additionalProperties: false,
  required: [
    'name',
    'cron',
    'every',
    'timezone',
    'description',
    'intent',
    'overlap',
    'catch_up',
    'paused',
    'created_at',
    'updated_at',
    'last_tick',
    'next_run_at',
    'deadline',
    'on_failure',
  ],
  properties: {
    name: { type: 'string' },
    cron: nullableText,
    every: { type: ['integer', 'null'] },
    timezone: { type: 'string' },
    // The timing in words, for people.
    description: { type: 'string' },
    intent: scheduleIntent,
    overlap: scheduleBody.properties.overlap,
    catch_up: scheduleBody.properties.catch_up,
    paused: { type: 'boolean' },
    created_at: seconds,
    updated_at: seconds,
    // The last tick handled (published or let go), or when it was created or resumed.
    last_tick: seconds,
    // Null while paused, or when it never fires again.
    next_run_at: nullableSeconds,
    // Seconds after its tick by which a run must be fulfilled, else it is missed.
    deadline: { type: ['integer', 'null'] },
    on_failure: { ...scheduleAlert, type: ['object', 'null'] },
  },
} as const;

/** One run of a schedule: its intent, by the tick it is for. */
export const scheduleRun = {
  type: 'object',
  additionalProperties: false,
  required: [
    'id',
    'scheduled_for',
    'status',
    'claim_attempts',
    'created_at',
    'completed_at',
    'dead_reason',
    'outcome',
    'alert_id',
  ],
  properties: {
    id: { type: 'string' },
    scheduled_for: seconds,
    status: intentStatus,
    claim_attempts: { type: 'integer' },
    created_at: seconds,
    completed_at: nullableSeconds,
    dead_reason: nullableText,
    // What became of it: its status, cancelled (dead by an admin's cancel), or missed once
    // its deadline passed before it was fulfilled.
    outcome: { type: 'string', enum: [...intentStatus.enum, 'cancelled', 'missed'] },
    // The alert published for it (on_failure), or null.
    alert_id: nullableText,
  },
} as const;

/** The payload of a schedule's alert, before the members of on_failure.payload. */
export const scheduleAlertPayload = {
  type: 'object',
  additionalProperties: false,
  required: ['schedule', 'run', 'reason', 'error', 'deadline'],
  properties: {
    schedule: { type: 'string' },
    run: {
      type: 'object',
      additionalProperties: false,
      required: ['id', 'scheduled_for', 'status'],
      properties: { id: { type: 'string' }, scheduled_for: seconds, status: intentStatus },
    },
    reason: { type: 'string', enum: ['dead', 'missed'] },
    // dead: the run's last error (or its dead reason); missed: null.
    error: nullableText,
    // The schedule's deadline in seconds (null without one).
    deadline: { type: ['integer', 'null'] },
  },
} as const;

/** GET /schedules/:name: the schedule, its next fire times (none while paused), its newest runs. */
export const scheduleDetail = {
  type: 'object',
  additionalProperties: false,
  required: [...scheduleObject.required, 'next_runs', 'runs'],
  properties: {
    ...scheduleObject.properties,
    next_runs: { type: 'array', items: seconds },
    runs: { type: 'array', items: scheduleRun },
  },
} as const;

/** POST /schedules/:name/trigger's 201. */
export const scheduleTriggered = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'status', 'namespace', 'schedule', 'scheduled_for'],
  properties: {
    ...publishResponse.properties,
    schedule: { type: 'string' },
    scheduled_for: seconds,
  },
} as const;

/** [ext] The fleet (issue 18): a worker by its id, under one key or every key. */
export const workerParams = {
  type: 'object',
  required: ['worker_id'],
  properties: { worker_id: { type: 'string', minLength: 1, maxLength: L.claimerNameMaxLength } },
} as const;

export const workerKeyQuery = {
  type: 'object',
  properties: { key_id: { type: 'string', minLength: 1, maxLength: 64 } },
} as const;

export const workerCommandParams = {
  type: 'object',
  required: ['worker_id', 'command'],
  properties: {
    worker_id: workerParams.properties.worker_id,
    command: { type: 'string', enum: ['quiet', 'stop', 'resume'] },
  },
} as const;

/** [ext] A command an admin gave a worker (issue 18). */
const workerCommand = { type: 'string', enum: ['quiet', 'stop'] } as const;
const textList = { type: 'array', items: { type: 'string' } } as const;
const count = { type: 'integer' } as const;

/** [ext] A worker as GET /workers and GET /admin/workers list it. */
export const workerInfo = {
  type: 'object',
  additionalProperties: false,
  required: [
    'worker_id',
    'key_id',
    'status',
    'command',
    'capabilities',
    'namespaces',
    'goals',
    'user_agent',
    'address',
    'first_seen',
    'last_seen',
    'fulfilled',
    'failed',
    'last_error',
    'holds',
  ],
  properties: {
    worker_id: { type: 'string' },
    key_id: { type: 'string' },
    // busy: holds a claim; online: a claim of it waits, or seen within the window.
    status: { type: 'string', enum: ['online', 'busy', 'offline'] },
    command: { ...workerCommand, type: ['string', 'null'], enum: [...workerCommand.enum, null] },
    capabilities: textList,
    namespaces: textList,
    // Goals its claims named (a claim without a goal is not listed here).
    goals: textList,
    user_agent: nullableText,
    address: nullableText,
    first_seen: seconds,
    last_seen: seconds,
    fulfilled: count,
    failed: count,
    last_error: nullableText,
    holds: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'namespace', 'goal', 'claim_expires_at'],
        properties: {
          id: { type: 'string' },
          namespace: { type: 'string' },
          goal: { type: 'string' },
          claim_expires_at: seconds,
        },
      },
    },
  },
} as const;

/**
 * [ext] Why some open intents of a goal wait (GET /admin/goals): the reason, how many, a
 * sentence for people, and the member the reason names (no_capability: capability;
 * target_offline: target_worker and last_seen; private_unused: publisher).
 */
export const goalWaitReason = {
  type: 'object',
  additionalProperties: false,
  required: ['reason', 'intents', 'message'],
  properties: {
    reason: {
      type: 'string',
      enum: ['no_worker', 'no_capability', 'target_offline', 'private_unused', 'no_match'],
    },
    intents: count,
    message: { type: 'string' },
    capability: { type: 'string' },
    target_worker: { type: 'string' },
    last_seen: nullableSeconds,
    publisher: { type: 'string' },
  },
} as const;

/** [ext] One goal of GET /admin/goals. */
export const goalInfo = {
  type: 'object',
  additionalProperties: false,
  required: ['namespace', 'goal', 'open', 'claimed', 'dead', 'oldest_open_age_seconds', 'waiting'],
  properties: {
    namespace: { type: 'string' },
    goal: { type: 'string' },
    open: count,
    claimed: count,
    dead: count,
    oldest_open_age_seconds: nullableSeconds,
    waiting: { type: 'array', items: goalWaitReason },
  },
} as const;

/** A flow control (GET /admin/flow, PUT /admin/flow/:namespace/:goal) [ext]. */
export const flowControl = {
  type: 'object',
  additionalProperties: false,
  required: ['namespace', 'goal', 'paused', 'max_in_flight', 'rate', 'updated_at'],
  properties: {
    namespace: { type: 'string' },
    goal: { type: 'string' },
    paused: { type: 'boolean' },
    max_in_flight: { type: ['integer', 'null'] },
    rate: {
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['limit', 'per'],
      properties: { limit: { type: 'integer' }, per: { type: 'integer' } },
    },
    // null: nothing is set, the control was removed (a PUT's answer).
    updated_at: nullableSeconds,
  },
} as const;

/**
 * Messages the protocol pins for particular fields, whatever the validation failure
 * (PROTOCOL.md §5: a missing or non-string claim_token says "Missing claim_token").
 */
export const FIELD_MESSAGES: Readonly<Record<string, string>> = {
  claim_token: 'Missing claim_token',
};
