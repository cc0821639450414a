/**
 * The storage seam. Routes and housekeeping ask the store for resource-named operations;
 * each is one atomic step, and no connection or transaction ever leaks out. bus-store.ts
 * implements it once, over a runner per backend (sqlite/, postgres/), held to the same
 * contract tests (test/store/contract.ts). All times are milliseconds since the epoch.
 */
import type { IntentStatus, ResultType, Visibility } from '@intent-bus/protocol';
import type { Random } from '../core/clock.js';
import type { ClaimFilter } from '../core/routing.js';
import type { RunFailure, ScheduleDefinition, ScheduleState } from '../core/schedule.js';
import type { IntentRow, NewIntent } from '../core/intent-record.js';

export type { IntentRow, NewIntent } from '../core/intent-record.js';
import type { FlowClaim, FlowControl, FlowHeld, FlowPatch, Hold } from '../core/flow.js';

/**
 * The row a publish creates: what was given, open, never claimed. Every member is named
 * (IntentRow's type holds the list complete): a spread of the intent with the rest added
 * made V8 build each row by a slow path (a third of a publish's CPU in bench/store-cost.mjs).
 */
export const openRow = (i: NewIntent): IntentRow => ({
  id: i.id,
  namespace: i.namespace,
  goal: i.goal,
  payload: i.payload,
  publisher: i.publisher,
  visibility: i.visibility,
  priority: i.priority,
  status: 'open',
  runAt: i.runAt,
  createdAt: i.createdAt,
  expiresAt: i.expiresAt,
  maxAttempts: i.maxAttempts,
  claimAttempts: 0,
  backoffBase: i.backoffBase,
  ttl: i.ttl,
  targetWorker: i.targetWorker,
  requiredCapability: i.requiredCapability,
  claimToken: null,
  claimExpiresAt: null,
  claimer: null,
  workerId: null,
  result: null,
  resultType: null,
  completedAt: null,
  error: null,
  deadReason: null,
  schedule: i.schedule,
  scheduledFor: i.scheduledFor,
  progressPercent: null,
  progressMessage: null,
  progressData: null,
  progressAt: null,
});

export interface IdempotencyInput {
  keyId: string;
  key: string;
  bodyHash: string;
  /** Rows created before this time are out of the window and ignored. */
  notBefore: number;
}

export type PublishOutcome =
  | { kind: 'created'; row: IntentRow }
  | { kind: 'limit_exceeded'; open: number }
  | { kind: 'replay'; status: number; body: string }
  | { kind: 'conflict' };

/** One item of a batch publish (issue 21): an intent and its idempotency record. */
export interface PublishItem {
  intent: NewIntent;
  idem: IdempotencyInput | null;
}

/** One item of a batch fulfil (issue 21). */
export interface FulfilItem {
  ref: TokenRef;
  result: string | null;
  resultType: ResultType;
}

/** One item of a batch fail (issue 21). */
export interface FailItem {
  ref: TokenRef;
  error: string | null;
}

export interface ClaimRequest extends ClaimFilter {
  now: number;
  token: string;
  leaseMs: number;
}

export interface TokenRef {
  id: string;
  token: string;
  keyId: string;
  now: number;
}

export interface IntentListFilter {
  namespace?: string;
  goal?: string;
  status?: IntentStatus;
  /** Key id of the publisher. */
  publisher?: string;
  workerId?: string;
}

/** Where a newest-first listing continues: strictly older than this row. */
export interface ListCursor {
  createdAt: number;
  id: string;
}

export interface StatusCount {
  namespace: string;
  status: IntentStatus;
  n: number;
}

export interface MinuteCounts {
  /** Start of the minute, ms. */
  minute: number;
  published: number;
  fulfilled: number;
  dead: number;
}

type MinuteRow = { minute: number; n: number };

/** The three per-minute counts of a store's queries, merged by minute, oldest first. */
export function mergeMinuteCounts(
  published: MinuteRow[],
  fulfilled: MinuteRow[],
  dead: MinuteRow[],
): MinuteCounts[] {
  const byMinute = new Map<number, MinuteCounts>();
  const put = (rows: MinuteRow[], field: 'published' | 'fulfilled' | 'dead'): void => {
    for (const r of rows) {
      let m = byMinute.get(r.minute);
      if (!m)
        byMinute.set(r.minute, (m = { minute: r.minute, published: 0, fulfilled: 0, dead: 0 }));
      m[field] = r.n;
    }
  };
  put(published, 'published');
  put(fulfilled, 'fulfilled');
  put(dead, 'dead');
  return [...byMinute.values()].sort((a, b) => a.minute - b.minute);
}

/** Rows per bulk DELETE statement: a long cleanup or purge lets requests run between. */
export const DELETE_BATCH = 5000;

/** A numbered schema migration. Never edit a released one: add the next number. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** A schedule as the store keeps it (core/schedule.ts). */
export type ScheduleRow = ScheduleState;

/** What a PUT of a schedule did. */
export interface ScheduleOutcome {
  kind: 'created' | 'updated' | 'unchanged';
  row: ScheduleRow;
}

/** Makes the intent of a schedule's run for a tick (ms), published at `now`. */
export type RunMaker = (s: ScheduleRow, scheduledFor: number, now: number) => NewIntent;

/** What one pass of a schedule published, and the ticks it let go (overlap or quota). */
export interface TickOutcome {
  published: IntentRow[];
  skipped: number;
}

/** Makes the alert of a schedule's run that failed, published at `now` (on_failure). */
export type AlertMaker = (
  s: ScheduleRow,
  run: IntentRow,
  reason: RunFailure,
  now: number,
) => NewIntent;

/** A run's failure as recorded: by this call or not (recorded before), and its alert. */
export interface FailureOutcome {
  recorded: boolean;
  reason: RunFailure;
  run: IntentRow;
  /** The alert published with it (the schedule has on_failure), or null. */
  alert: IntentRow | null;
}

/** A run's failure as GET /schedules/<name> shows it. */
export interface RunFailureRow {
  scheduledFor: number;
  reason: RunFailure;
  alertId: string | null;
}

export type TriggerOutcome =
  | { kind: 'created' | 'existing'; row: IntentRow }
  | { kind: 'limit_exceeded'; open: number }
  | { kind: 'not_found' };

export interface ApiKeyRow {
  keyId: string;
  keyHash: string;
  prefix: string;
  owner: string;
  createdAt: number;
  lastUsedAt: number | null;
  requests: number;
}

export interface KeyUsage {
  count: number;
  lastUsedAt: number;
}

export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  /** Applies pending numbered migrations. */
  migrate(): Promise<void>;
  /** Throws when the store cannot serve requests. */
  ping(): Promise<void>;
  close(): Promise<void>;
  /**
   * Runs `task` holding the lock `name`, shared by every node of the store, so that one
   * node at a time runs it (housekeeping). Without `wait`, resolves null at once when
   * another node holds the lock. A store that one process owns (SQLite) just runs it.
   */
  exclusive<T>(name: string, wait: boolean, task: () => Promise<T>): Promise<T | null>;

  /**
   * Inserts the intent unless an idempotent replay or conflict answers first, or the
   * publisher already has `maxOpen` open + claimed intents (null: no quota).
   */
  intentPublish(
    intent: NewIntent,
    idem: IdempotencyInput | null,
    maxOpen: number | null,
  ): Promise<PublishOutcome>;
  /**
   * A batch publish (issue 21) in one atomic step: each item as `intentPublish` would
   * decide it (a replay, a conflict or the quota answers only that item), the outcomes in
   * the items' order. Every item's publisher is the same key.
   */
  intentPublishMany(
    items: readonly PublishItem[],
    maxOpen: number | null,
  ): Promise<PublishOutcome[]>;
  /** Atomically claims the first matching intent in the order of PROTOCOL.md §4. */
  intentClaim(req: ClaimRequest): Promise<IntentRow | null>;
  /**
   * Claims up to `tokens.length` intents in one atomic step (issue 21), one token each,
   * in the order of PROTOCOL.md §4 (`req.token` is not used).
   */
  intentClaimMany(req: ClaimRequest, tokens: readonly string[]): Promise<IntentRow[]>;
  /** The same under the namespace's flow controls: none claimed beyond what they allow. */
  intentClaimFlowMany(
    req: ClaimRequest,
    controls: readonly FlowControl[],
    tokens: readonly string[],
  ): Promise<{ rows: IntentRow[]; held: FlowHeld | null }>;
  /**
   * Undoes a claim nobody received (the client left): open again, the attempt not
   * counted. Null when that claim is no longer current.
   */
  intentUnclaim(id: string, token: string): Promise<IntentRow | null>;
  /** The claim under its namespace's flow controls, all of them given (store/flow.ts). */
  intentClaimFlow(req: ClaimRequest, controls: readonly FlowControl[]): Promise<FlowClaim>;
  /** Every flow control (core/flow.ts), by namespace and goal. */
  flowList(): Promise<FlowControl[]>;
  /** Changes a control; null when nothing is left set (it is removed). */
  flowPut(
    namespace: string,
    goal: string,
    patch: FlowPatch,
    now: number,
  ): Promise<FlowControl | null>;
  /** False when there was no such control. */
  flowDelete(namespace: string, goal: string): Promise<boolean>;
  /** What each of the controls holds back now, by control goal. */
  flowHolds(controls: readonly FlowControl[], now: number): Promise<Map<string, Hold>>;
  /** Null when the token is not live for this key. */
  intentExtend(ref: TokenRef, claimExpiresAt: number): Promise<IntentRow | null>;
  /**
   * Records a worker's progress and extends the lease to at least `claimExpiresAt` (issue
   * 20), in one write. Null when the token is not live for this key.
   */
  intentProgress(
    ref: TokenRef,
    progress: ProgressValues,
    claimExpiresAt: number,
  ): Promise<IntentRow | null>;
  intentFulfill(
    ref: TokenRef,
    result: string | null,
    resultType: ResultType,
  ): Promise<IntentRow | null>;
  intentFail(ref: TokenRef, error: string | null, random: Random): Promise<IntentRow | null>;
  /** Fulfils many in one atomic step (issue 21); null where a token is not live. */
  intentFulfillMany(items: readonly FulfilItem[]): Promise<Array<IntentRow | null>>;
  /** Fails many in one atomic step (issue 21); null where a token is not live. */
  intentFailMany(items: readonly FailItem[], random: Random): Promise<Array<IntentRow | null>>;
  intentGet(id: string): Promise<IntentRow | null>;
  /** Open or claimed → dead (cancelled); anything else unchanged. Null if unknown. */
  intentCancel(id: string, now: number): Promise<IntentRow | null>;
  /** Any → open with attempts reset. Null if unknown. */
  intentRetry(id: string, now: number): Promise<IntentRow | null>;
  /** Expired leases back to open with backoff, or dead after the last attempt. */
  leasesSweep(now: number, random: Random, limit: number): Promise<IntentRow[]>;
  /** Open intents past expires_at → dead (expired). */
  intentsExpire(now: number, limit: number): Promise<IntentRow[]>;
  /** Deletes fulfilled and dead intents that reached their state before `before`. */
  intentsDeleteFinished(before: number): Promise<{ fulfilled: number; dead: number }>;
  intentsPurge(namespace: string | null): Promise<{ intents: number; dead: number }>;
  deadList(limit: number, namespace: string | null): Promise<IntentRow[]>;
  /**
   * Deletes a dead intent (its dead letter), once an operator has dealt with it. False,
   * deleting nothing, when there is no such intent or it is not dead.
   */
  deadDiscard(id: string): Promise<boolean>;
  /** Newest first, filtered, continuing after `cursor`. */
  intentsList(
    filter: IntentListFilter,
    limit: number,
    cursor: ListCursor | null,
  ): Promise<IntentRow[]>;
  /** Intents per namespace and status. */
  intentsCount(): Promise<StatusCount[]>;
  /** Published, fulfilled and dead intents per minute since `since` (ms), oldest first. */
  intentsPerMinute(since: number): Promise<MinuteCounts[]>;
  keyCount(): Promise<number>;
  /** Open intents that become claimable after `now`, soonest first (to arm wake timers). */
  intentsDueAfter(now: number, limit: number): Promise<IntentRow[]>;

  kvSet(owner: string, name: string, value: string, expiresAt: number): Promise<void>;
  kvGet(owner: string, name: string, now: number): Promise<string | null>;
  kvDeleteExpired(now: number): Promise<number>;
  idempotencyDeleteBefore(before: number): Promise<number>;

  /**
   * Remembers a request nonce of a key until `expiresAt`. 'replay' when it is already
   * remembered; 'full' when `capacity` live nonces are held (nothing is evicted early).
   */
  nonceRecord(
    keyId: string,
    nonce: string,
    expiresAt: number,
    now: number,
    capacity: number,
  ): Promise<'recorded' | 'replay' | 'full'>;
  noncesDeleteExpired(now: number): Promise<number>;

  keyCreate(row: ApiKeyRow): Promise<void>;
  keyByHash(hash: string): Promise<ApiKeyRow | null>;
  keyList(): Promise<ApiKeyRow[]>;
  /**
   * Removes the key and its idempotency and nonce rows, and ends its leases at `now` (the
   * key can no longer fulfil them: the sweeper puts them back as expired leases); its key
   * id, or null when unknown.
   */
  keyRevoke(by: { keyId: string } | { keyHash: string }, now: number): Promise<string | null>;
  keyUsageAdd(usage: ReadonlyMap<string, KeyUsage>): Promise<void>;

  /** Creates, replaces or leaves a schedule (core/schedule.ts defineSchedule decides). */
  schedulePut(def: ScheduleDefinition, now: number): Promise<ScheduleOutcome>;
  scheduleGet(owner: string, name: string): Promise<ScheduleRow | null>;
  /** An owner's schedules by name. */
  scheduleList(owner: string): Promise<ScheduleRow[]>;
  /** Every key's schedules by owner and name, at most `limit` (the admin's view). */
  schedulesAll(limit: number): Promise<ScheduleRow[]>;
  /** False when there is no such schedule. Its runs stay. */
  scheduleDelete(owner: string, name: string): Promise<boolean>;
  /** Pause or resume (a resume starts from now); null when there is no such schedule. */
  schedulePause(
    owner: string,
    name: string,
    paused: boolean,
    now: number,
  ): Promise<ScheduleRow | null>;
  /** A schedule's newest runs (by tick), at most `limit`. */
  scheduleRuns(owner: string, name: string, limit: number): Promise<IntentRow[]>;
  /** Active schedules whose next tick is at or before `now`, soonest first. */
  schedulesDue(now: number, limit: number): Promise<Array<{ owner: string; name: string }>>;
  /**
   * In one atomic step: reads the schedule's last tick, publishes a run for each tick owed
   * at `now` (none twice: the unique index of runs), and advances the last tick. A run of a
   * tester key counts against `maxOpen` (null: no quota); a tick over it is let go.
   */
  scheduleTick(
    owner: string,
    name: string,
    now: number,
    makeRun: RunMaker,
    maxOpen: number | null,
  ): Promise<TickOutcome>;
  /**
   * Records that a run died or missed its deadline and, when its schedule has on_failure,
   * publishes the alert in the same atomic step; a run's failure is recorded once (its
   * first), so its alert is published once, whichever node asks and how often.
   */
  scheduleRunFailed(
    run: IntentRow,
    reason: RunFailure,
    now: number,
    makeAlert: AlertMaker,
  ): Promise<FailureOutcome>;
  /**
   * Holds the runs of a schedule with a deadline to it, up to `now`: each run not fulfilled
   * by its tick + deadline is missed (recorded, alerted as above); the newly recorded ones.
   */
  scheduleCheckDeadline(
    owner: string,
    name: string,
    now: number,
    makeAlert: AlertMaker,
    limit: number,
  ): Promise<FailureOutcome[]>;
  schedulesWithDeadline(): Promise<Array<{ owner: string; name: string }>>;
  /** The failures recorded for a schedule's runs with a tick in [from, to]. */
  scheduleFailures(owner: string, name: string, from: number, to: number): Promise<RunFailureRow[]>;
  /** Dead runs (not cancelled) that died since `since` with no failure recorded. */
  runsDeadUnrecorded(since: number, limit: number): Promise<IntentRow[]>;
  /** Deletes the failures recorded before `before` whose runs are gone. */
  runFailuresDelete(before: number): Promise<number>;
  /** Publishes one run now, outside the ticks (its tick is `now`). */
  scheduleTrigger(
    owner: string,
    name: string,
    now: number,
    makeRun: RunMaker,
    maxOpen: number | null,
  ): Promise<TriggerOutcome>;

  /** Merges each node's sightings into the workers rows, in one atomic step. */
  workersSave(batch: readonly WorkerSave[]): Promise<void>;
  /** The workers of one key, or (null) of every key. */
  workersList(keyId: string | null): Promise<WorkerRecord[]>;
  workerGet(keyId: string, workerId: string): Promise<WorkerRecord | null>;
  /**
   * Sets (or, null, clears) the command of the workers with this id, under one key or
   * (keyId null) every key; the workers changed.
   */
  workerCommandSet(
    workerId: string,
    keyId: string | null,
    command: WorkerCommand | null,
  ): Promise<WorkerRef[]>;
  /** Forgets the workers with this id (one key's, or every key's); those forgotten. */
  workerForget(workerId: string, keyId: string | null): Promise<WorkerRef[]>;
  /** Every worker that has a command. */
  workersCommanded(): Promise<Array<WorkerRef & { command: WorkerCommand }>>;
  /** Forgets the workers last seen before `before`. */
  workersDeleteSeenBefore(before: number): Promise<number>;
  /** Claimed intents that name their worker, of one claimer key or (null) of every key. */
  intentsHeld(keyId: string | null): Promise<HeldRow[]>;
  /** Open, claimed and dead counts per namespace and goal, with the oldest of each. */
  goalCounts(): Promise<GoalCountRow[]>;
  /** Open intents due at `now`, grouped by what the claim rule looks at (at most `limit`). */
  openRoutes(now: number, limit: number): Promise<OpenRouteRow[]>;
}

/** A command an admin gave a worker (ops/workers.ts), or none. */
export type WorkerCommand = 'quiet' | 'stop';

/** A workers row (issue 18): capabilities and asks as JSON text. */
export interface WorkerRecord {
  keyId: string;
  workerId: string;
  capabilities: string;
  asks: string;
  userAgent: string | null;
  address: string | null;
  firstSeen: number;
  lastSeen: number;
  fulfilled: number;
  failed: number;
  lastError: string | null;
  command: WorkerCommand | null;
}

/**
 * What one node saw of a worker since its last write: counts are what to add, a null
 * capabilities or asks means "not seen" (the stored value stays); the newest sight wins.
 */
export type WorkerSave = Omit<WorkerRecord, 'command' | 'capabilities' | 'asks'> & {
  capabilities: string | null;
  asks: string | null;
};

/** A claimed intent that names its worker. */
export interface HeldRow {
  id: string;
  namespace: string;
  goal: string;
  claimer: string;
  workerId: string;
  claimExpiresAt: number;
}

/** Intents of one namespace, goal and status, and the oldest created. */
export interface GoalCountRow {
  namespace: string;
  goal: string;
  status: IntentStatus;
  n: number;
  oldest: number;
}

/** Open intents due now that the claim rule sees alike, and the oldest created. */
export interface OpenRouteRow {
  namespace: string;
  goal: string;
  visibility: Visibility;
  publisher: string;
  targetWorker: string | null;
  requiredCapability: string | null;
  n: number;
  oldest: number;
}

/** A worker named under its key. */
export interface WorkerRef {
  keyId: string;
  workerId: string;
}

/** A fault of the store itself (locked, full, read-only, unreachable): the client may retry. */
/** A worker's last progress as stored (issue 20): `data` is the exact JSON text sent. */
export interface ProgressValues {
  percent: number | null;
  message: string | null;
  data: string | null;
  at: number;
}

export class StoreUnavailableError extends Error {
  constructor(
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'StoreUnavailableError';
  }
}
