/**
 * The intent as the bus keeps it, written once: one row of this table per member, in the
 * order of the intents table's columns. Everything that lists the intents columns is made
 * from it, once, at module load: the row types (IntentRow, NewIntent), the INSERT and the
 * column list of both backends' SQL (store/intent-columns.ts), the intent records of an
 * export file (store/transfer/format.ts) and the members a publish copies from its request
 * (normalizePublish). A stored publish field is one row here, its column in a migration.
 *
 *   name     the member of IntentRow, and the @parameter the statements bind it under
 *   column   its column in the intents table (and its field in an export file)
 *   kind     how it is typed and checked on import: `id` a non-empty string; `text` any
 *            string; `int` a safe integer; `time` and `count` a safe integer >= 0; `real` a
 *            finite number; `json` a string holding one JSON value; an array: one of those
 *            values. `?`, or null among the values, allows null.
 *   publish  set by a publish (NewIntent, bound by the INSERT); the others are the
 *            lifecycle's (a new intent is open, never claimed: store.ts `openRow`)
 *   wire     the publish request's member it is copied from (schemas.publishBody): the
 *            value sent, else the schema's `default`, else null. Members without it are
 *            computed by normalizePublish.
 *   added    added after the first export files: absent from a line, it is null
 *
 * Pure data: core/ imports nothing else, so the store, the core and the transfer all read it.
 */
export const INTENT_MEMBERS = [
  { name: 'id', column: 'id', kind: 'id', publish: true },
  { name: 'namespace', column: 'namespace', kind: 'id', publish: true, wire: 'namespace' },
  { name: 'goal', column: 'goal', kind: 'id', publish: true },
  // JSON text exactly as published.
  { name: 'payload', column: 'payload', kind: 'json', publish: true },
  // The key id of the publisher.
  { name: 'publisher', column: 'publisher', kind: 'id', publish: true },
  {
    name: 'visibility',
    column: 'visibility',
    kind: ['private', 'public'],
    publish: true,
    wire: 'visibility',
  },
  { name: 'priority', column: 'priority', kind: 'int', publish: true, wire: 'priority' },
  { name: 'status', column: 'status', kind: ['open', 'claimed', 'fulfilled', 'dead'] },
  { name: 'runAt', column: 'run_at', kind: 'time', publish: true },
  { name: 'createdAt', column: 'created_at', kind: 'time', publish: true },
  { name: 'expiresAt', column: 'expires_at', kind: 'time', publish: true },
  {
    name: 'maxAttempts',
    column: 'max_attempts',
    kind: 'count',
    publish: true,
    wire: 'max_attempts',
  },
  { name: 'claimAttempts', column: 'claim_attempts', kind: 'count' },
  {
    name: 'backoffBase',
    column: 'backoff_base',
    kind: 'real',
    publish: true,
    wire: 'backoff_base',
  },
  // Seconds; expiresAt is computed from it.
  { name: 'ttl', column: 'ttl', kind: 'real', publish: true, wire: 'ttl' },
  {
    name: 'targetWorker',
    column: 'target_worker',
    kind: 'id?',
    publish: true,
    wire: 'target_worker',
  },
  {
    name: 'requiredCapability',
    column: 'required_capability',
    kind: 'id?',
    publish: true,
    wire: 'required_capability',
  },
  { name: 'claimToken', column: 'claim_token', kind: 'id?' },
  { name: 'claimExpiresAt', column: 'claim_expires_at', kind: 'time?' },
  // The key id of the claimer.
  { name: 'claimer', column: 'claimer', kind: 'id?' },
  { name: 'workerId', column: 'worker_id', kind: 'id?' },
  // JSON text of the result (a text result is stored as a JSON string).
  { name: 'result', column: 'result', kind: 'json?' },
  { name: 'resultType', column: 'result_type', kind: ['json', 'text', null] },
  { name: 'completedAt', column: 'completed_at', kind: 'time?' },
  { name: 'error', column: 'error', kind: 'text?' },
  { name: 'deadReason', column: 'dead_reason', kind: 'text?' },
  // A schedule's run: the schedule's name and the tick it is for (ms); else null.
  { name: 'schedule', column: 'schedule', kind: 'id?', publish: true, added: true },
  { name: 'scheduledFor', column: 'scheduled_for', kind: 'time?', publish: true, added: true },
  // The last progress a worker reported (issue 20): its data as the exact JSON text sent.
  { name: 'progressPercent', column: 'progress_percent', kind: 'real?', added: true },
  { name: 'progressMessage', column: 'progress_message', kind: 'text?', added: true },
  { name: 'progressData', column: 'progress_data', kind: 'json?', added: true },
  { name: 'progressAt', column: 'progress_at', kind: 'time?', added: true },
] as const satisfies readonly IntentMember[];

/** The kinds of a column (INTENT_MEMBERS describes them). */
export type ColumnKind =
  | 'id'
  | 'id?'
  | 'text'
  | 'text?'
  | 'int'
  | 'time'
  | 'time?'
  | 'count'
  | 'count?'
  | 'real'
  | 'real?'
  | 'json'
  | 'json?'
  | readonly (string | null)[];

export interface IntentMember {
  readonly name: string;
  readonly column: string;
  readonly kind: ColumnKind;
  readonly publish?: true;
  readonly wire?: string;
  readonly added?: true;
}

/** The TypeScript type of a kind's values. */
export type KindValue<K> = K extends readonly (infer V)[]
  ? V
  : K extends `${infer Base}?`
    ? BaseValue<Base> | null
    : BaseValue<K>;
type BaseValue<B> = B extends 'int' | 'time' | 'count' | 'real' ? number : string;

type Member = (typeof INTENT_MEMBERS)[number];

/** An intents row under its members' names. All times are milliseconds since the epoch. */
export type IntentRow = { [M in Member as M['name']]: KindValue<M['kind']> };

type PublishMember = Extract<Member, { publish: true }>;
/** A publish request resolved to the values the store keeps (times in ms). */
export type NewIntent = { [M in PublishMember as M['name']]: KindValue<M['kind']> };

/** The members a publish copies from its request. */
export type WireMember = Extract<Member, { wire: string }>;
export const WIRE_MEMBERS = INTENT_MEMBERS.filter(
  (m): m is Extract<Member, WireMember> => 'wire' in m,
);
