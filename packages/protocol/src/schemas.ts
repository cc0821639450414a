/**
 * JSON schemas of every request the bus accepts. They validate requests in the server
 * (one Ajv compile per route at start-up), describe the API (/openapi.json) and type the
 * route handlers (Fastify's json-schema-to-ts type provider); a field is added here once,
 * and in its wire type in types.ts, which the compiler holds equal to it.
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
    namespace: { type: 'string', pattern: L.namespacePattern },
    visibility: { type: 'string', enum: ['private', 'public'] },
    priority: { type: 'integer', minimum: L.priority.min, maximum: L.priority.max },
    delay: { type: 'number', minimum: L.delaySeconds.min, maximum: L.delaySeconds.max },
    max_attempts: { type: 'integer', minimum: L.maxAttempts.min, maximum: L.maxAttempts.max },
    backoff_base: {
      type: 'number',
      minimum: L.backoffBaseSeconds.min,
      maximum: L.backoffBaseSeconds.max,
    },
    target_worker: nullableWorkerName,
    required_capability: nullableWorkerName,
    ttl: { type: 'number', minimum: L.ttlSeconds.min, maximum: L.ttlSeconds.max },
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
const scheduleAlert = {
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

/**
 * Messages the protocol pins for particular fields, whatever the validation failure
 * (PROTOCOL.md §5: a missing or non-string claim_token says "Missing claim_token").
 */
export const FIELD_MESSAGES: Readonly<Record<string, string>> = {
  claim_token: 'Missing claim_token',
};
