/**
 * Wire types of Intent Protocol 2.1 (PROTOCOL.md §5). Every time is unix seconds.
 *
 * The request types say what the JSON schemas of schemas.ts accept (unknown members
 * aside). They are written out, not derived, so that the SDK that ships them depends on
 * nothing; the server holds each one equal to its schema's type at compile time
 * (server/src/http/contract-types.ts), so the two cannot drift.
 */

export type IntentStatus = 'open' | 'claimed' | 'fulfilled' | 'dead';
export type Visibility = 'private' | 'public';
export type ResultType = 'json' | 'text';

/** POST /intent (schemas.publishBody). */
export interface PublishRequest {
  goal: string;
  payload: unknown;
  namespace?: string;
  visibility?: Visibility;
  priority?: number;
  delay?: number;
  max_attempts?: number;
  backoff_base?: number;
  target_worker?: string | null;
  required_capability?: string | null;
  ttl?: number;
}

/** POST /claim's query string (schemas.claimQuery); numbers as the bus reads them. */
export interface ClaimQuery {
  goal?: string;
  namespace?: string;
  publisher?: string;
  worker_id?: string;
  capabilities?: string;
  capability?: string;
  wait?: number;
}

/** POST /extend_claim/:id (schemas.extendBody). */
export interface ExtendRequest {
  claim_token: string;
  seconds: number;
}

/** POST /fulfill/:id (schemas.fulfillBody). */
export interface FulfillRequest {
  claim_token: string;
  result?: unknown;
  result_type?: ResultType;
}

/** POST /fail/:id (schemas.failBody). */
export interface FailRequest {
  claim_token: string;
  error?: string | null;
}

/** GET /result/:id's query string (schemas.resultQuery). */
export interface ResultQuery {
  wait?: number;
}

/** POST /set/:name (schemas.kvSetBody). */
export interface KvSetRequest {
  value: unknown;
  ttl?: number;
}

/** POST /admin/generate_key (schemas.generateKeyBody). */
export interface GenerateKeyRequest {
  owner: string;
}

/** POST /admin/revoke_key (schemas.revokeKeyBody): one of the two. */
export interface RevokeKeyRequest {
  api_key?: string;
  key_id?: string;
}

/** POST /admin/purge (schemas.purgeBody). */
export interface PurgeRequest {
  confirm?: boolean;
  namespace?: string;
}

/** GET /admin/intents's query string (schemas.adminIntentsQuery). */
export interface AdminIntentsQuery {
  namespace?: string;
  goal?: string;
  status?: IntentStatus;
  publisher?: string;
  worker_id?: string;
  limit?: number;
  cursor?: string;
}

/** GET /admin/dead's query string (schemas.deadListQuery). */
export interface DeadListQuery {
  namespace?: string;
  limit?: number;
}

export type Overlap = 'allow' | 'skip';
export type CatchUp = 'none' | 'latest' | 'all';

/** The intent of a schedule's runs (schemas.scheduleBody's intent): the publish fields. */
export interface ScheduleIntent {
  goal: string;
  payload: unknown;
  namespace?: string;
  visibility?: Visibility;
  priority?: number;
  max_attempts?: number;
  backoff_base?: number;
  target_worker?: string | null;
  required_capability?: string | null;
  ttl?: number;
}

/** PUT /schedules/:name (schemas.scheduleBody): `cron` or `every`, not both. */
export interface ScheduleRequest {
  cron?: string;
  every?: number;
  timezone?: string;
  intent: ScheduleIntent;
  overlap?: Overlap;
  catch_up?: CatchUp;
  paused?: boolean;
}

/** A schedule as the bus answers it. */
export interface Schedule {
  name: string;
  cron: string | null;
  every: number | null;
  timezone: string;
  /** The timing in words, for people. */
  description: string;
  intent: ScheduleIntent;
  overlap: Overlap;
  catch_up: CatchUp;
  paused: boolean;
  created_at: number;
  updated_at: number;
  /** The last tick handled (published or let go), or when it was created or resumed. */
  last_tick: number;
  /** Null while paused, or when it never fires again. */
  next_run_at: number | null;
}

/** One run of a schedule: its intent, by the tick it is for. */
export interface ScheduleRun {
  id: string;
  scheduled_for: number;
  status: IntentStatus;
  claim_attempts: number;
  created_at: number;
  completed_at: number | null;
  dead_reason: string | null;
}

/** GET /schedules/:name. */
export interface ScheduleDetail extends Schedule {
  /** The next fire times (none while paused). */
  next_runs: number[];
  /** The newest runs first. */
  runs: ScheduleRun[];
}

/** POST /schedules/:name/trigger. */
export interface ScheduleTriggered {
  id: string;
  status: 'published';
  namespace: string;
  schedule: string;
  scheduled_for: number;
}

export interface PublishResponse {
  id: string;
  status: 'published';
  namespace: string;
}

export interface ClaimedIntent {
  id: string;
  namespace: string;
  goal: string;
  payload: unknown;
  claim_attempts: number;
  priority: number;
  target_worker: string | null;
  required_capability: string | null;
  claim_token: string;
  claim_timeout: number;
  claim_expires_at: number;
}

export interface StatusObject {
  id: string;
  namespace: string;
  goal: string;
  status: IntentStatus;
  priority: number;
  visibility: Visibility;
  claim_attempts: number;
  max_attempts: number;
  run_at: number;
  created_at: number;
  expires_at: number;
  claim_expires_at: number | null;
  target_worker: string | null;
  required_capability: string | null;
  worker_id: string | null;
  /** A schedule's run: the schedule's name and the tick it is for; else null. */
  schedule: string | null;
  scheduled_for: number | null;
  error?: string;
}

export interface ResultObject extends StatusObject {
  result: unknown;
  result_type: ResultType | null;
  completed_at: number | null;
}

export interface AdminIntent extends ResultObject {
  payload: unknown;
  publisher: string;
  backoff_base: number;
  ttl: number;
  dead_reason: string | null;
}

export interface DeadLetter {
  intent_id: string;
  namespace: string;
  goal: string;
  attempts: number;
  reason: string;
  created_at: number;
}

export interface KeyInfo {
  key_id: string;
  owner: string;
  prefix: string;
  created_at: number;
  last_used_at: number | null;
  requests: number;
}

/** [ext] A command an admin gave a worker (issue 18). */
export type WorkerCommand = 'quiet' | 'stop';

/** [ext] A worker as GET /workers and GET /admin/workers list it (times in unix seconds). */
export interface WorkerInfo {
  worker_id: string;
  key_id: string;
  /** busy: holds a claim; online: a claim of it waits, or seen within the window. */
  status: 'online' | 'busy' | 'offline';
  command: WorkerCommand | null;
  capabilities: string[];
  namespaces: string[];
  /** Goals its claims named (a claim without a goal is not listed here). */
  goals: string[];
  user_agent: string | null;
  address: string | null;
  first_seen: number;
  last_seen: number;
  fulfilled: number;
  failed: number;
  last_error: string | null;
  holds: Array<{ id: string; namespace: string; goal: string; claim_expires_at: number }>;
}

/** [ext] Why some open intents of a goal wait (GET /admin/goals). */
export type GoalWaitReason =
  | { reason: 'no_worker'; intents: number; message: string }
  | { reason: 'no_capability'; capability: string; intents: number; message: string }
  | {
      reason: 'target_offline';
      target_worker: string;
      last_seen: number | null;
      intents: number;
      message: string;
    }
  | { reason: 'private_unused'; publisher: string; intents: number; message: string }
  | { reason: 'no_match'; intents: number; message: string };

/** [ext] One goal of GET /admin/goals. */
export interface GoalInfo {
  namespace: string;
  goal: string;
  open: number;
  claimed: number;
  dead: number;
  oldest_open_age_seconds: number | null;
  waiting: GoalWaitReason[];
}

export type { CleanupCounts } from './cleanup.js';
