/**
 * The statements every backend provides, by name: what each binds (`@name` parameters)
 * and what each row it returns holds. Each backend's queries.ts gives every name its SQL
 * (checked by `satisfies Statements`); bus-store.ts runs them through its program steps,
 * which take their parameter and row types from here, so no row is cast by hand.
 */
import type { IntentStatus, ResultType } from '@intent-bus/protocol';
import type { IntentRow, NewIntent } from '../core/intent-record.js';
import type { RunFailure } from '../core/schedule.js';
import type {
  ApiKeyRow,
  GoalCountRow,
  HeldRow,
  OpenRouteRow,
  ProgressValues,
  StatusCount,
  WorkerCommand,
  WorkerRecord,
  WorkerRef,
  WorkerSave,
} from './store.js';

/** A schedules row under its statement names (paused as 0 or 1). */
export interface ScheduleRecord {
  owner: string;
  name: string;
  cron: string | null;
  every: number | null;
  timezone: string;
  intent: string;
  overlap: 'allow' | 'skip';
  catchUp: 'none' | 'latest' | 'all';
  paused: number;
  lastTick: number;
  nextAt: number | null;
  createdAt: number;
  updatedAt: number;
  deadline: number | null;
  onFailure: string | null;
  checkedUntil: number;
}

/** A schedule_failures row: a run that died or missed its deadline, and its alert. */
export interface RunFailureRecord {
  owner: string;
  schedule: string;
  scheduledFor: number;
  intentId: string;
  reason: RunFailure;
  failedAt: number;
  alertId: string | null;
}

type ScheduleKey = { owner: string; name: string };

/** A flow_controls row under its statement names (paused as 0 or 1). */
export interface FlowRecord {
  namespace: string;
  goal: string;
  paused: number;
  maxInFlight: number | null;
  rateLimit: number | null;
  ratePer: number | null;
  updatedAt: number;
}

type FlowKey = { namespace: string; goal: string };
/** The claim except the goals held back by flow control. */
type ClaimExcept = ClaimParams & { held: readonly string[] };

/** A live claim token of a key at a time. */
interface Live {
  id: string;
  token: string;
  keyId: string;
  now: number;
}

/** The claim's parameters (every variant binds the ones its text names). */
export interface ClaimParams {
  now: number;
  token: string;
  claimExpiresAt: number;
  keyId: string;
  workerId: string | null;
  namespace: string;
  goal: string | null;
  publisher: string | null;
  /** The worker's capabilities (SQLite binds an array as its JSON text). */
  caps: readonly string[];
}

type Count = { n: number };
type MinuteRow = { minute: number; n: number };
type None = Record<string, never>;
/** A statement that returns no rows (`run` only). */
type Write<P> = { params: P; row: never };
type Read<P, R> = { params: P; row: R };

export interface StatementTypes {
  ping: Read<None, { ok: number }>;

  intentInsert: Write<NewIntent>;
  /** The claim, goal given or not × publisher filter or not (PROTOCOL.md §4). */
  intentClaim: Read<ClaimParams, IntentRow>;
  intentClaimGoal: Read<ClaimParams, IntentRow>;
  intentClaimPublisher: Read<ClaimParams, IntentRow>;
  intentClaimGoalPublisher: Read<ClaimParams, IntentRow>;
  intentClaimExcept: Read<ClaimExcept, IntentRow>;
  intentClaimExceptPublisher: Read<ClaimExcept, IntentRow>;
  intentHeldGoal: Read<ClaimExcept & { anyGoal: number }, { goal: string }>;
  intentExtend: Read<Live & { claimExpiresAt: number }, IntentRow>;
  /** A heartbeat with progress (issue 20): the lease never shortened. */
  intentProgress: Read<Live & { claimExpiresAt: number } & ProgressValues, IntentRow>;
  intentFulfill: Read<Live & { result: string | null; resultType: ResultType }, IntentRow>;
  /** Locked until released (PostgreSQL). */
  intentSelectLive: Read<Live, IntentRow>;
  intentRelease: Read<
    {
      id: string;
      token: string | null;
      status: 'open' | 'dead';
      runAt: number;
      error: string | null;
      deadReason: string | null;
      completedAt: number | null;
    },
    IntentRow
  >;
  intentUnclaim: Read<{ id: string; token: string }, IntentRow>;
  intentGet: Read<{ id: string }, IntentRow>;
  intentCancel: Read<{ id: string; now: number; reason: string }, IntentRow>;
  intentRetry: Read<{ id: string; now: number }, IntentRow>;
  leasesExpired: Read<{ now: number; limit: number }, IntentRow>;
  intentsExpire: Read<{ now: number; limit: number; reason: string }, IntentRow>;

  // Bulk deletes: at most @limit rows per statement.
  intentsDeleteFinished: Write<{ status: IntentStatus; before: number; limit: number }>;
  intentsPurgeAll: Write<{ limit: number }>;
  intentsPurgeNamespace: Write<{ namespace: string; limit: number }>;
  deadCountAll: Read<None, Count>;
  deadCountNamespace: Read<{ namespace: string }, Count>;
  deadListAll: Read<{ limit: number }, IntentRow>;
  deadListNamespace: Read<{ limit: number; namespace: string }, IntentRow>;
  deadDiscard: Write<{ id: string }>;
  intentsList: Read<
    {
      namespace: string | null;
      goal: string | null;
      status: IntentStatus | null;
      publisher: string | null;
      workerId: string | null;
      cursorAt: number | null;
      cursorId: string | null;
      limit: number;
    },
    IntentRow
  >;
  intentsCount: Read<None, StatusCount>;
  publishedPerMinute: Read<{ since: number }, MinuteRow>;
  finishedPerMinute: Read<{ status: IntentStatus; since: number }, MinuteRow>;
  keyCount: Read<None, Count>;
  intentsDueAfter: Read<{ now: number; limit: number }, IntentRow>;

  idempotencyGet: Read<
    { keyId: string; idemKey: string },
    { bodyHash: string; status: number; response: string; createdAt: number }
  >;
  idempotencyPut: Write<{
    keyId: string;
    idemKey: string;
    bodyHash: string;
    status: number;
    response: string;
    createdAt: number;
  }>;
  idempotencyDeleteBefore: Write<{ before: number; limit: number }>;
  idempotencyDeleteKey: Write<{ keyId: string }>;
  intentsLiveOfPublisher: Read<{ publisher: string }, Count>;

  /** Changes no row when the nonce is already remembered. */
  nonceInsert: Write<{ keyId: string; nonce: string; expiresAt: number }>;
  nonceDeleteStale: Write<{ keyId: string; nonce: string; now: number }>;
  nonceCount: Read<None, Count>;
  noncesDeleteExpired: Write<{ now: number; limit: number }>;
  noncesDeleteKey: Write<{ keyId: string }>;

  kvSet: Write<{ owner: string; name: string; value: string; expiresAt: number }>;
  kvGet: Read<{ owner: string; name: string; now: number }, { value: string }>;
  kvDeleteExpired: Write<{ now: number; limit: number }>;

  keyCreate: Write<ApiKeyRow>;
  keyByHash: Read<{ keyHash: string }, ApiKeyRow>;
  keyList: Read<None, ApiKeyRow>;
  leasesEndOfKey: Write<{ keyId: string; now: number }>;
  keyDeleteById: Read<{ keyId: string }, { keyId: string }>;
  keyDeleteByHash: Read<{ keyHash: string }, { keyId: string }>;
  keyUsageAdd: Write<{ keyId: string; count: number; lastUsedAt: number }>;

  /** A schedule's run; changes no row when its tick already has one. */
  runInsert: Write<NewIntent>;
  /** A schedule's newest runs by tick. */
  scheduleRuns: Read<ScheduleKey & { limit: number }, IntentRow>;
  scheduleGet: Read<ScheduleKey, ScheduleRecord>;
  scheduleList: Read<{ owner: string }, ScheduleRecord>;
  scheduleInsert: Write<ScheduleRecord>;
  scheduleUpdate: Write<ScheduleRecord>;
  scheduleDelete: Write<ScheduleKey>;
  schedulesDeleteOwner: Write<{ owner: string }>;
  schedulesDue: Read<{ now: number; limit: number }, ScheduleKey>;
  scheduleAdvance: Write<ScheduleKey & { lastTick: number; nextAt: number | null }>;

  /** Every key's schedules, by owner and name (the admin's view). */
  schedulesAll: Read<{ limit: number }, ScheduleRecord>;
  /** Schedules with a deadline (the deadline pass). */
  schedulesWithDeadline: Read<None, ScheduleKey>;
  /** A schedule's runs with a tick in [from, to], oldest first. */
  scheduleRunsBetween: Read<ScheduleKey & { from: number; to: number; limit: number }, IntentRow>;
  scheduleChecked: Write<ScheduleKey & { checkedUntil: number }>;
  /** Changes no row when the run already has its failure (its alert is published once). */
  runFailureInsert: Write<RunFailureRecord>;
  /** A schedule's failed runs with a tick in [from, to]. */
  runFailuresBetween: Read<
    ScheduleKey & { from: number; to: number },
    { scheduledFor: number; reason: RunFailure; alertId: string | null }
  >;
  /** Dead runs since @since with no failure recorded (not cancelled ones), oldest first. */
  runsDeadUnrecorded: Read<{ since: number; limit: number }, IntentRow>;
  /** Failures of runs that are gone, recorded before @before. */
  runFailuresDeleteBefore: Write<{ before: number; limit: number }>;
  /** The fleet (issue 18): a node's batch of sightings, merged into the stored row. */
  workerSave: Write<WorkerSave>;
  workersAll: Read<None, WorkerRecord>;
  workersOfKey: Read<{ keyId: string }, WorkerRecord>;
  workerGet: Read<WorkerRef, WorkerRecord>;
  /** By worker id, under one key or (keyId null) under every key. */
  workerCommandSet: Read<
    { workerId: string; keyId: string | null; command: WorkerCommand | null },
    WorkerRef
  >;
  workerDelete: Read<{ workerId: string; keyId: string | null }, WorkerRef>;
  workersCommanded: Read<None, WorkerRef & { command: WorkerCommand }>;
  workersDeleteSeenBefore: Write<{ before: number; limit: number }>;
  workersDeleteKey: Write<{ keyId: string }>;
  /** Claimed intents that name their worker, of one claimer key or (null) of all. */
  intentsHeld: Read<{ keyId: string | null }, HeldRow>;
  /** Open, claimed and dead intents per namespace, goal and status, with the oldest. */
  goalCounts: Read<None, GoalCountRow>;
  /** Open intents due at @now, grouped by everything the claim rule looks at. */
  openRoutes: Read<{ now: number; limit: number }, OpenRouteRow>;
  flowList: Read<None, FlowRecord>;
  flowGet: Read<FlowKey, FlowRecord>;
  flowUpsert: Write<FlowRecord>;
  flowDelete: Write<FlowKey>;
  flowInFlight: Read<FlowKey, Count>;
  flowRecent: Read<
    FlowKey & { now: number; perMs: number },
    { n: number; oldest: number | null; newest: number | null }
  >;
  flowClaimRecord: Write<FlowKey & { at: number; intentId: string }>;
  flowClaimsPrune: Write<FlowKey & { before: number }>;
}

export type StatementName = keyof StatementTypes;
export type Params<N extends StatementName> = StatementTypes[N]['params'];
export type Row<N extends StatementName> = StatementTypes[N]['row'];
/** A backend's SQL for every statement. */
export type Statements = { readonly [N in StatementName]: string };
/** The statements that return rows (`get` and `all`). */
export type ReadName = {
  [N in StatementName]: [Row<N>] extends [never] ? never : N;
}[StatementName];
