/**
 * The Store, written once for every backend: each operation's decisions and the sequence
 * of its statements, as a program of steps (program.ts) that the backend's runner drives.
 * What differs between backends stays with them (sqlite/, postgres/): connections and
 * transactions, group commit, error translation, `exclusive`, migrations and the SQL of
 * each statement. The differences of behaviour are data: a `lock` step (nothing on
 * SQLite, which has one writer) and the runner's `sharedByNodes`.
 */
import type { ResultType } from '@intent-bus/protocol';
import type { Random } from '../core/clock.js';
import {
  REASON_CANCELLED,
  REASON_EXPIRED,
  REASON_LEASE_EXPIRED,
  releasedColumns,
} from '../core/lifecycle.js';
import {
  defineSchedule,
  missedDeadline,
  nextTick,
  owedAt,
  pauseSchedule,
  type RunFailure,
  type ScheduleDefinition,
} from '../core/schedule.js';
import type { NewIntent } from '../core/intent-record.js';
import { all, get, lock, one, run, type Program, type Runner } from './program.js';
import type { ClaimParams, Row, ScheduleRecord } from './statements.js';
import type { FlowClaim, FlowControl, FlowHeld, FlowPatch, Hold } from '../core/flow.js';
import { claimFlow, controlOf, flowDelete, flowPut, holdsOf } from './flow.js';
import {
  DELETE_BATCH,
  mergeMinuteCounts,
  openRow,
  type AlertMaker,
  type ApiKeyRow,
  type ClaimRequest,
  type FailItem,
  type FailureOutcome,
  type FulfilItem,
  type PublishItem,
  type RunFailureRow,
  type IdempotencyInput,
  type IntentListFilter,
  type IntentRow,
  type KeyUsage,
  type ListCursor,
  type MinuteCounts,
  type PublishOutcome,
  type RunMaker,
  type ScheduleOutcome,
  type ScheduleRow,
  type StatusCount,
  type TickOutcome,
  type TriggerOutcome,
  type Store,
  type TokenRef,
  type GoalCountRow,
  type HeldRow,
  type OpenRouteRow,
  type ProgressValues,
  type WorkerCommand,
  type WorkerRecord,
  type WorkerRef,
  type WorkerSave,
} from './store.js';

/** The answer of a publish, kept with its idempotency record and replayed as it is. */
export const publishedAnswer = (row: IntentRow): string =>
  JSON.stringify({ id: row.id, status: 'published', namespace: row.namespace });

/**
 * What an earlier publish with the same idempotency key decides: nothing outside its
 * window; inside it, a replay of its answer for the same body, a conflict for another.
 */
export function replayOf(
  prior: Row<'idempotencyGet'> | null,
  idem: IdempotencyInput,
): PublishOutcome | null {
  if (prior === null || prior.createdAt < idem.notBefore) return null;
  return prior.bodyHash === idem.bodyHash
    ? { kind: 'replay', status: prior.status, body: prior.response }
    : { kind: 'conflict' };
}

type Created = Extract<PublishOutcome, { kind: 'created' }>;

function* insert(intent: NewIntent): Program<Created> {
  yield* run('intentInsert', intent);
  return { kind: 'created', row: openRow(intent) };
}

const idemLockKey = (idem: IdempotencyInput): string => `${idem.keyId}\n${idem.key}`;

/** The answer an earlier publish with the same key decides (its lock held), if any. */
function* priorAnswer(idem: IdempotencyInput): Program<PublishOutcome | null> {
  const prior = yield* get('idempotencyGet', { keyId: idem.keyId, idemKey: idem.key });
  return replayOf(prior, idem);
}

/** Inserts the intent and, with a key, the record its replays answer from. */
function* insertRemembered(intent: NewIntent, idem: IdempotencyInput | null): Program<Created> {
  const created = yield* insert(intent);
  if (idem) {
    yield* run('idempotencyPut', {
      keyId: idem.keyId,
      idemKey: idem.key,
      bodyHash: idem.bodyHash,
      status: 201,
      response: publishedAnswer(created.row),
      createdAt: intent.createdAt,
    });
  }
  return created;
}

function* publish(
  intent: NewIntent,
  idem: IdempotencyInput | null,
  maxOpen: number | null,
): Program<PublishOutcome> {
  // Read committed (PostgreSQL) lets two publishes both pass a check before either
  // inserts: the locks make the same idempotency key, and the same publisher's quota, wait
  // for one another. Always idempotency first, then quota, so two never deadlock.
  if (idem) {
    yield* lock('idempotency', idemLockKey(idem));
    const answer = yield* priorAnswer(idem);
    if (answer) return answer;
  }
  if (maxOpen != null) {
    yield* lock('quota', intent.publisher);
    const { n } = yield* one('intentsLiveOfPublisher', { publisher: intent.publisher });
    if (n >= maxOpen) return { kind: 'limit_exceeded', open: n };
  }
  return yield* insertRemembered(intent, idem);
}

/**
 * A batch publish (issue 21): the single publish's steps for each item, in one program.
 * The locks keep the single publish's order: every idempotency key first (sorted, so two
 * batches never wait crosswise), then the publisher's quota, counted once and then kept
 * here as items are inserted. An item with a key already used in this batch (or before)
 * replays it or conflicts, as a second publish would.
 */
function* publishMany(
  items: readonly PublishItem[],
  maxOpen: number | null,
): Program<PublishOutcome[]> {
  const keys = new Set<string>();
  for (const { idem } of items) if (idem) keys.add(idemLockKey(idem));
  for (const key of [...keys].sort()) yield* lock('idempotency', key);
  const publisher = items[0]?.intent.publisher;
  let left = publisher === undefined ? 0 : yield* room(publisher, maxOpen);
  const out: PublishOutcome[] = [];
  for (const { intent, idem } of items) {
    const answer = idem ? yield* priorAnswer(idem) : null;
    if (answer) out.push(answer);
    else if (left <= 0) out.push({ kind: 'limit_exceeded', open: maxOpen! - left });
    else {
      out.push(yield* insertRemembered(intent, idem));
      left--;
    }
  }
  return out;
}

/** Applies the core's decision for a claim (its row locked) that failed at time `at`. */
function* release(
  row: IntentRow,
  at: number,
  error: string | null,
  deadReason: string | null,
  random: Random,
): Program<IntentRow> {
  return yield* one('intentRelease', {
    id: row.id,
    token: row.claimToken,
    error,
    ...releasedColumns(row, at, deadReason, random),
  });
}

function* fail(ref: TokenRef, error: string | null, random: Random): Program<IntentRow | null> {
  const row = yield* get('intentSelectLive', ref);
  if (row === null) return null;
  return yield* release(row, ref.now, error, error, random);
}

function* sweep(now: number, random: Random, limit: number): Program<IntentRow[]> {
  const out: IntentRow[] = [];
  for (const row of yield* all('leasesExpired', { now, limit })) {
    const at = row.claimExpiresAt ?? now;
    out.push(yield* release(row, at, REASON_LEASE_EXPIRED, REASON_LEASE_EXPIRED, random));
  }
  return out;
}

function* cancel(id: string, now: number): Program<IntentRow | null> {
  return (
    (yield* get('intentCancel', { id, now, reason: REASON_CANCELLED })) ??
    (yield* get('intentGet', { id }))
  );
}

function* perMinute(since: number): Program<MinuteCounts[]> {
  return mergeMinuteCounts(
    yield* all('publishedPerMinute', { since }),
    yield* all('finishedPerMinute', { status: 'fulfilled', since }),
    yield* all('finishedPerMinute', { status: 'dead', since }),
  );
}

function* addUsage(usage: ReadonlyMap<string, KeyUsage>): Program<void> {
  // In key order, so that two nodes flushing at once lock the rows in the same order.
  for (const [keyId, u] of [...usage].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    yield* run('keyUsageAdd', { keyId, count: u.count, lastUsedAt: u.lastUsedAt });
  }
}

function* saveWorkers(batch: readonly WorkerSave[]): Program<void> {
  // In key order, so that two nodes writing at once lock the rows in the same order.
  const order = (w: WorkerSave): string => `${w.keyId}\n${w.workerId}`;
  for (const w of [...batch].sort((a, b) => (order(a) < order(b) ? -1 : 1))) {
    yield* run('workerSave', w);
  }
}

const scheduleOf = (r: ScheduleRecord): ScheduleRow => ({ ...r, paused: r.paused !== 0 });
const recordOf = (s: ScheduleRow): ScheduleRecord => ({ ...s, paused: s.paused ? 1 : 0 });

/**
 * The programs of one schedule wait for one another (PostgreSQL: a PUT, a pause, a trigger
 * and a tick on any node), so that each reads the schedule as the last one left it.
 */
function* scheduleLocked(owner: string, name: string): Program<ScheduleRow | null> {
  yield* lock('schedule', `${owner}\n${name}`);
  const r = yield* get('scheduleGet', { owner, name });
  return r === null ? null : scheduleOf(r);
}

function* putSchedule(def: ScheduleDefinition, now: number): Program<ScheduleOutcome> {
  const prior = yield* scheduleLocked(def.owner, def.name);
  const { kind, state } = defineSchedule(prior, def, now);
  if (kind === 'created') yield* run('scheduleInsert', recordOf(state));
  else if (kind === 'updated') yield* run('scheduleUpdate', recordOf(state));
  return { kind, row: state };
}

function* pause(
  owner: string,
  name: string,
  paused: boolean,
  now: number,
): Program<ScheduleRow | null> {
  const prior = yield* scheduleLocked(owner, name);
  if (prior === null) return null;
  const next = pauseSchedule(prior, paused, now);
  if (next !== prior) yield* run('scheduleUpdate', recordOf(next));
  return next;
}

/** How many more open or claimed intents the owner may have (Infinity: no quota). */
function* room(owner: string, maxOpen: number | null): Program<number> {
  if (maxOpen == null) return Infinity;
  yield* lock('quota', owner);
  return maxOpen - (yield* one('intentsLiveOfPublisher', { publisher: owner })).n;
}

function* tick(
  owner: string,
  name: string,
  now: number,
  makeRun: RunMaker,
  maxOpen: number | null,
): Program<TickOutcome> {
  const out: TickOutcome = { published: [], skipped: 0 };
  const s = yield* scheduleLocked(owner, name);
  if (s === null) return out;
  const { ticks, lastTick } = owedAt(s, now);
  if (lastTick === s.lastTick) return out;
  // overlap "skip": no new run while the last one is open or claimed.
  let busy = false;
  if (s.overlap === 'skip') {
    const last = yield* get('scheduleRuns', { owner, name, limit: 1 });
    busy = last !== null && (last.status === 'open' || last.status === 'claimed');
  }
  let left = ticks.length > 0 && !busy ? yield* room(owner, maxOpen) : 0;
  for (const at of ticks) {
    if (busy || left <= 0) {
      out.skipped++;
      continue;
    }
    const intent = makeRun(s, at, now);
    if ((yield* run('runInsert', intent)) === 1) {
      out.published.push(openRow(intent));
      left--;
      busy = s.overlap === 'skip';
    }
  }
  yield* run('scheduleAdvance', { owner, name, lastTick, nextAt: nextTick(s, lastTick) });
  return out;
}

function* trigger(
  owner: string,
  name: string,
  now: number,
  makeRun: RunMaker,
  maxOpen: number | null,
): Program<TriggerOutcome> {
  const s = yield* scheduleLocked(owner, name);
  if (s === null) return { kind: 'not_found' };
  const left = yield* room(owner, maxOpen);
  if (left <= 0) return { kind: 'limit_exceeded', open: maxOpen! - left };
  const intent = makeRun(s, now, now);
  if ((yield* run('runInsert', intent)) === 1) return { kind: 'created', row: openRow(intent) };
  // A run for this very millisecond already exists: that is the run.
  const [existing] = yield* all('scheduleRuns', { owner, name, limit: 1 });
  return { kind: 'existing', row: existing! };
}

/**
 * Records a run's failure and publishes its alert with it (the schedule `s` has on_failure);
 * a run whose failure is already recorded (by another node, or by the other path: a death
 * after a miss) changes nothing.
 */
function* runFailed(
  s: ScheduleRow | null,
  row: IntentRow,
  reason: RunFailure,
  now: number,
  makeAlert: AlertMaker,
): Program<FailureOutcome> {
  const alert = s !== null && s.onFailure !== null ? makeAlert(s, row, reason, now) : null;
  const inserted = yield* run('runFailureInsert', {
    owner: row.publisher,
    schedule: row.schedule!,
    scheduledFor: row.scheduledFor!,
    intentId: row.id,
    reason,
    failedAt: now,
    alertId: alert?.id ?? null,
  });
  if (inserted === 0) return { recorded: false, reason, run: row, alert: null };
  if (alert !== null) yield* run('intentInsert', alert);
  return { recorded: true, reason, run: row, alert: alert && openRow(alert) };
}

function* recordFailure(
  row: IntentRow,
  reason: RunFailure,
  now: number,
  makeAlert: AlertMaker,
): Program<FailureOutcome> {
  const r = yield* get('scheduleGet', { owner: row.publisher, name: row.schedule! });
  return yield* runFailed(r && scheduleOf(r), row, reason, now, makeAlert);
}

/**
 * The deadline pass of one schedule: its runs with a tick from where the last pass stood up
 * to now - deadline, each missed unless fulfilled (or dead) by its tick + deadline. It then
 * stands at the newest tick no later run can have: ticks up to last_tick are all published
 * (a tick and its advance are one step), a trigger's tick is its moment; a paused schedule
 * publishes no ticks.
 */
function* checkDeadline(
  owner: string,
  name: string,
  now: number,
  makeAlert: AlertMaker,
  limit: number,
): Program<FailureOutcome[]> {
  const out: FailureOutcome[] = [];
  const s = yield* scheduleLocked(owner, name);
  if (s === null || s.deadline === null) return out;
  const upTo = now - s.deadline * 1000;
  if (upTo < s.checkedUntil) return out;
  // Runs up to checkedUntil were held to it by an earlier pass.
  const runs = yield* all('scheduleRunsBetween', {
    owner,
    name,
    from: s.checkedUntil + 1,
    to: upTo,
    limit,
  });
  for (const row of runs) {
    if (!missedDeadline({ ...row, scheduledFor: row.scheduledFor! }, s.deadline)) continue;
    const failed = yield* runFailed(s, row, 'missed', now, makeAlert);
    if (failed.recorded) out.push(failed);
  }
  const checkedUntil =
    runs.length === limit
      ? runs.at(-1)!.scheduledFor!
      : s.paused
        ? upTo
        : Math.min(upTo, s.lastTick);
  if (checkedUntil > s.checkedUntil) yield* run('scheduleChecked', { owner, name, checkedUntil });
  return out;
}

const claimParams = (req: ClaimRequest): ClaimParams => ({
  now: req.now,
  token: req.token,
  claimExpiresAt: req.now + req.leaseMs,
  keyId: req.keyId,
  workerId: req.workerId,
  namespace: req.namespace,
  goal: req.goal,
  publisher: req.publisher,
  caps: req.capabilities,
});

const claimStatement = (goal: boolean, publisher: boolean) =>
  goal
    ? publisher
      ? 'intentClaimGoalPublisher'
      : 'intentClaimGoal'
    : publisher
      ? 'intentClaimPublisher'
      : 'intentClaim';

/** Up to `tokens.length` claims in one program (issue 21), each the single statement. */
function* claimMany(req: ClaimRequest, tokens: readonly string[]): Program<IntentRow[]> {
  const name = claimStatement(req.goal != null, req.publisher != null);
  const rows: IntentRow[] = [];
  for (const token of tokens) {
    const row = yield* get(name, claimParams({ ...req, token }));
    if (row === null) break;
    rows.push(row);
  }
  return rows;
}

/**
 * The same under flow controls: each claim is the controlled one, which counts what the
 * claims before it in this program took, so a limit in flight or a rate is never exceeded.
 */
function* claimFlowMany(
  req: ClaimRequest,
  controls: readonly FlowControl[],
  tokens: readonly string[],
): Program<{ rows: IntentRow[]; held: FlowHeld | null }> {
  const plain = claimStatement(req.goal != null, req.publisher != null);
  const rows: IntentRow[] = [];
  for (const token of tokens) {
    const out = yield* claimFlow(claimParams({ ...req, token }), plain, controls);
    if (out.row === null) return { rows, held: rows.length === 0 ? out.held : null };
    rows.push(out.row);
  }
  return { rows, held: null };
}

/**
 * Runs `each` over the items in id order (two batches touching the same rows lock them in
 * the same order) and answers in the items' own order.
 */
function* inIdOrder<I extends { ref: TokenRef }, T>(
  items: readonly I[],
  each: (item: I) => Program<T>,
): Program<T[]> {
  const order = items.map((_, i) => i);
  order.sort((a, b) => {
    const x = items[a]!.ref.id;
    const y = items[b]!.ref.id;
    return x < y ? -1 : x > y ? 1 : a - b;
  });
  const out = new Array<T>(items.length);
  for (const i of order) out[i] = yield* each(items[i]!);
  return out;
}

function* fulfilOne(item: FulfilItem): Program<IntentRow | null> {
  const { ref, result, resultType } = item;
  return yield* get('intentFulfill', { ...ref, result, resultType });
}

export class BusStore implements Store {
  readonly kind: 'sqlite' | 'postgres';

  /**
   * Live nonce rows, counted once (-1: not yet, or no longer known) and then kept up to
   * date here: counting a million rows on every signed request is not affordable. A
   * program adds what it changed at its end, so a program that fails midway adds nothing;
   * an operation that fails forgets the count (what it added may not have been committed),
   * and so does a cleanup pass when other nodes write nonces too.
   */
  private nonces = -1;

  constructor(private readonly r: Runner) {
    this.kind = r.kind;
  }

  migrate(): Promise<void> {
    return this.r.migrate();
  }

  async ping(): Promise<void> {
    await this.r.read(get('ping', {}));
  }

  close(): Promise<void> {
    return this.r.close();
  }

  exclusive<T>(name: string, wait: boolean, task: () => Promise<T>): Promise<T | null> {
    return this.r.exclusive(name, wait, task);
  }

  intentPublish(
    intent: NewIntent,
    idem: IdempotencyInput | null,
    maxOpen: number | null,
  ): Promise<PublishOutcome> {
    // Nothing to check first (the main key, no Idempotency-Key): the INSERT is atomic on
    // its own, without the savepoint or transaction that keeps the checks and it together.
    if (!idem && maxOpen == null) return this.r.write(insert(intent));
    return this.r.atomic(publish(intent, idem, maxOpen));
  }

  intentClaim(req: ClaimRequest): Promise<IntentRow | null> {
    return this.r.write(
      get(claimStatement(req.goal != null, req.publisher != null), claimParams(req)),
    );
  }

  intentPublishMany(
    items: readonly PublishItem[],
    maxOpen: number | null,
  ): Promise<PublishOutcome[]> {
    return this.r.atomic(publishMany(items, maxOpen));
  }

  intentClaimMany(req: ClaimRequest, tokens: readonly string[]): Promise<IntentRow[]> {
    return this.r.atomic(claimMany(req, tokens));
  }

  intentClaimFlowMany(
    req: ClaimRequest,
    controls: readonly FlowControl[],
    tokens: readonly string[],
  ): Promise<{ rows: IntentRow[]; held: FlowHeld | null }> {
    return this.r.atomic(claimFlowMany(req, controls, tokens));
  }

  intentFulfillMany(items: readonly FulfilItem[]): Promise<Array<IntentRow | null>> {
    return this.r.atomic(inIdOrder(items, fulfilOne));
  }

  intentFailMany(items: readonly FailItem[], random: Random): Promise<Array<IntentRow | null>> {
    return this.r.atomic(inIdOrder(items, (item) => fail(item.ref, item.error, random)));
  }

  intentClaimFlow(req: ClaimRequest, controls: readonly FlowControl[]): Promise<FlowClaim> {
    const plain = claimStatement(req.goal != null, req.publisher != null);
    return this.r.atomic(claimFlow(claimParams(req), plain, controls));
  }

  flowList(): Promise<FlowControl[]> {
    return this.r.read(all('flowList', {})).then((rows) => rows.map(controlOf));
  }

  flowPut(
    namespace: string,
    goal: string,
    patch: FlowPatch,
    now: number,
  ): Promise<FlowControl | null> {
    return this.r.atomic(flowPut(namespace, goal, patch, now));
  }

  flowDelete(namespace: string, goal: string): Promise<boolean> {
    return this.r.atomic(flowDelete(namespace, goal));
  }

  async flowHolds(controls: readonly FlowControl[], now: number): Promise<Map<string, Hold>> {
    return (await this.r.read(holdsOf(controls, now))).holds;
  }

  intentUnclaim(id: string, token: string): Promise<IntentRow | null> {
    return this.r.write(get('intentUnclaim', { id, token }));
  }

  intentExtend(ref: TokenRef, claimExpiresAt: number): Promise<IntentRow | null> {
    return this.r.write(get('intentExtend', { ...ref, claimExpiresAt }));
  }

  intentProgress(
    ref: TokenRef,
    progress: ProgressValues,
    claimExpiresAt: number,
  ): Promise<IntentRow | null> {
    return this.r.write(get('intentProgress', { ...ref, ...progress, claimExpiresAt }));
  }

  intentFulfill(
    ref: TokenRef,
    result: string | null,
    resultType: ResultType,
  ): Promise<IntentRow | null> {
    return this.r.write(get('intentFulfill', { ...ref, result, resultType }));
  }

  intentFail(ref: TokenRef, error: string | null, random: Random): Promise<IntentRow | null> {
    return this.r.atomic(fail(ref, error, random));
  }

  intentGet(id: string): Promise<IntentRow | null> {
    return this.r.read(get('intentGet', { id }));
  }

  intentCancel(id: string, now: number): Promise<IntentRow | null> {
    return this.r.write(cancel(id, now));
  }

  intentRetry(id: string, now: number): Promise<IntentRow | null> {
    return this.r.write(get('intentRetry', { id, now }));
  }

  leasesSweep(now: number, random: Random, limit: number): Promise<IntentRow[]> {
    return this.r.atomic(sweep(now, random, limit));
  }

  intentsExpire(now: number, limit: number): Promise<IntentRow[]> {
    return this.r.write(all('intentsExpire', { now, limit, reason: REASON_EXPIRED }));
  }

  /**
   * Runs a bulk DELETE of at most `limit` rows batch by batch, each committed on its own,
   * until one deletes less than a batch, letting other work run between batches.
   */
  private async batched(batch: (limit: number) => Program<number>): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.r.write(batch(DELETE_BATCH));
      total += n;
      if (n < DELETE_BATCH) return total;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  async intentsDeleteFinished(before: number): Promise<{ fulfilled: number; dead: number }> {
    return {
      fulfilled: await this.batched((limit) =>
        run('intentsDeleteFinished', { status: 'fulfilled', before, limit }),
      ),
      dead: await this.batched((limit) =>
        run('intentsDeleteFinished', { status: 'dead', before, limit }),
      ),
    };
  }

  async intentsPurge(namespace: string | null): Promise<{ intents: number; dead: number }> {
    const { n: dead } = await this.r.read(
      namespace == null ? one('deadCountAll', {}) : one('deadCountNamespace', { namespace }),
    );
    const intents = await this.batched((limit) =>
      namespace == null
        ? run('intentsPurgeAll', { limit })
        : run('intentsPurgeNamespace', { namespace, limit }),
    );
    return { intents, dead };
  }

  deadList(limit: number, namespace: string | null): Promise<IntentRow[]> {
    return this.r.read(
      namespace == null
        ? all('deadListAll', { limit })
        : all('deadListNamespace', { limit, namespace }),
    );
  }

  async deadDiscard(id: string): Promise<boolean> {
    return (await this.r.write(run('deadDiscard', { id }))) === 1;
  }

  intentsList(
    filter: IntentListFilter,
    limit: number,
    cursor: ListCursor | null,
  ): Promise<IntentRow[]> {
    return this.r.read(
      all('intentsList', {
        namespace: filter.namespace ?? null,
        goal: filter.goal ?? null,
        status: filter.status ?? null,
        publisher: filter.publisher ?? null,
        workerId: filter.workerId ?? null,
        cursorAt: cursor?.createdAt ?? null,
        cursorId: cursor?.id ?? null,
        limit,
      }),
    );
  }

  intentsCount(): Promise<StatusCount[]> {
    return this.r.read(all('intentsCount', {}));
  }

  intentsPerMinute(since: number): Promise<MinuteCounts[]> {
    return this.r.read(perMinute(since));
  }

  async keyCount(): Promise<number> {
    return (await this.r.read(one('keyCount', {}))).n;
  }

  intentsDueAfter(now: number, limit: number): Promise<IntentRow[]> {
    return this.r.read(all('intentsDueAfter', { now, limit }));
  }

  async kvSet(owner: string, name: string, value: string, expiresAt: number): Promise<void> {
    await this.r.write(run('kvSet', { owner, name, value, expiresAt }));
  }

  async kvGet(owner: string, name: string, now: number): Promise<string | null> {
    return (await this.r.read(get('kvGet', { owner, name, now })))?.value ?? null;
  }

  kvDeleteExpired(now: number): Promise<number> {
    return this.batched((limit) => run('kvDeleteExpired', { now, limit }));
  }

  idempotencyDeleteBefore(before: number): Promise<number> {
    return this.batched((limit) => run('idempotencyDeleteBefore', { before, limit }));
  }

  /** Adds what a program changed to the nonce count, when it is known. */
  private countNonces(delta: number): void {
    if (this.nonces >= 0) this.nonces += delta;
  }

  /** Runs an operation that changes nonce rows: failed, it forgets the count. */
  private async changingNonces<T>(op: Promise<T>): Promise<T> {
    try {
      return await op;
    } catch (err) {
      this.nonces = -1;
      throw err;
    }
  }

  private *recordNonce(
    keyId: string,
    nonce: string,
    expiresAt: number,
    now: number,
    capacity: number,
  ): Program<'recorded' | 'replay' | 'full'> {
    if (this.nonces < 0) this.nonces = (yield* one('nonceCount', {})).n;
    const counted = this.nonces;
    let delta = -(yield* run('nonceDeleteStale', { keyId, nonce, now }));
    if (counted + delta >= capacity) {
      delta -= yield* run('noncesDeleteExpired', { now, limit: DELETE_BATCH });
    }
    let out: 'recorded' | 'replay' | 'full';
    if (counted + delta >= capacity) out = 'full';
    else if ((yield* run('nonceInsert', { keyId, nonce, expiresAt })) === 0) out = 'replay';
    else {
      delta++;
      out = 'recorded';
    }
    this.countNonces(delta);
    return out;
  }

  nonceRecord(
    keyId: string,
    nonce: string,
    expiresAt: number,
    now: number,
    capacity: number,
  ): Promise<'recorded' | 'replay' | 'full'> {
    return this.changingNonces(
      this.r.atomic(this.recordNonce(keyId, nonce, expiresAt, now, capacity)),
    );
  }

  private *deleteExpiredNonces(now: number, limit: number): Program<number> {
    const deleted = yield* run('noncesDeleteExpired', { now, limit });
    this.countNonces(-deleted);
    return deleted;
  }

  async noncesDeleteExpired(now: number): Promise<number> {
    const n = await this.changingNonces(
      this.batched((limit) => this.deleteExpiredNonces(now, limit)),
    );
    // Other nodes record nonces too: count again on the next record.
    if (this.r.sharedByNodes) this.nonces = -1;
    return n;
  }

  async keyCreate(row: ApiKeyRow): Promise<void> {
    await this.r.write(run('keyCreate', row));
  }

  keyByHash(hash: string): Promise<ApiKeyRow | null> {
    return this.r.read(get('keyByHash', { keyHash: hash }));
  }

  keyList(): Promise<ApiKeyRow[]> {
    return this.r.read(all('keyList', {}));
  }

  private *revoke(
    by: { keyId: string } | { keyHash: string },
    now: number,
  ): Program<string | null> {
    const gone =
      'keyId' in by
        ? yield* get('keyDeleteById', { keyId: by.keyId })
        : yield* get('keyDeleteByHash', { keyHash: by.keyHash });
    if (!gone) return null;
    const { keyId } = gone;
    yield* run('idempotencyDeleteKey', { keyId });
    const nonces = yield* run('noncesDeleteKey', { keyId });
    yield* run('leasesEndOfKey', { keyId, now });
    // Its schedules end with it (their runs stay, like its other intents).
    yield* run('schedulesDeleteOwner', { owner: keyId });
    // And its workers (the fleet's registry).
    yield* run('workersDeleteKey', { keyId });
    this.countNonces(-nonces);
    return keyId;
  }

  keyRevoke(by: { keyId: string } | { keyHash: string }, now: number): Promise<string | null> {
    return this.changingNonces(this.r.atomic(this.revoke(by, now)));
  }

  async keyUsageAdd(usage: ReadonlyMap<string, KeyUsage>): Promise<void> {
    if (usage.size === 0) return;
    await this.r.atomic(addUsage(usage));
  }

  schedulePut(def: ScheduleDefinition, now: number): Promise<ScheduleOutcome> {
    return this.r.atomic(putSchedule(def, now));
  }

  async scheduleGet(owner: string, name: string): Promise<ScheduleRow | null> {
    const r = await this.r.read(get('scheduleGet', { owner, name }));
    return r === null ? null : scheduleOf(r);
  }

  async scheduleList(owner: string): Promise<ScheduleRow[]> {
    return (await this.r.read(all('scheduleList', { owner }))).map(scheduleOf);
  }

  async schedulesAll(limit: number): Promise<ScheduleRow[]> {
    return (await this.r.read(all('schedulesAll', { limit }))).map(scheduleOf);
  }

  async scheduleDelete(owner: string, name: string): Promise<boolean> {
    return (await this.r.write(run('scheduleDelete', { owner, name }))) === 1;
  }

  schedulePause(
    owner: string,
    name: string,
    paused: boolean,
    now: number,
  ): Promise<ScheduleRow | null> {
    return this.r.atomic(pause(owner, name, paused, now));
  }

  scheduleRuns(owner: string, name: string, limit: number): Promise<IntentRow[]> {
    return this.r.read(all('scheduleRuns', { owner, name, limit }));
  }

  schedulesDue(now: number, limit: number): Promise<Array<{ owner: string; name: string }>> {
    return this.r.read(all('schedulesDue', { now, limit }));
  }

  scheduleTick(
    owner: string,
    name: string,
    now: number,
    makeRun: RunMaker,
    maxOpen: number | null,
  ): Promise<TickOutcome> {
    return this.r.atomic(tick(owner, name, now, makeRun, maxOpen));
  }

  scheduleTrigger(
    owner: string,
    name: string,
    now: number,
    makeRun: RunMaker,
    maxOpen: number | null,
  ): Promise<TriggerOutcome> {
    return this.r.atomic(trigger(owner, name, now, makeRun, maxOpen));
  }

  scheduleRunFailed(
    run: IntentRow,
    reason: RunFailure,
    now: number,
    makeAlert: AlertMaker,
  ): Promise<FailureOutcome> {
    return this.r.atomic(recordFailure(run, reason, now, makeAlert));
  }

  scheduleCheckDeadline(
    owner: string,
    name: string,
    now: number,
    makeAlert: AlertMaker,
    limit: number,
  ): Promise<FailureOutcome[]> {
    return this.r.atomic(checkDeadline(owner, name, now, makeAlert, limit));
  }

  schedulesWithDeadline(): Promise<Array<{ owner: string; name: string }>> {
    return this.r.read(all('schedulesWithDeadline', {}));
  }

  scheduleFailures(
    owner: string,
    name: string,
    from: number,
    to: number,
  ): Promise<RunFailureRow[]> {
    return this.r.read(all('runFailuresBetween', { owner, name, from, to }));
  }

  runsDeadUnrecorded(since: number, limit: number): Promise<IntentRow[]> {
    return this.r.read(all('runsDeadUnrecorded', { since, limit }));
  }

  runFailuresDelete(before: number): Promise<number> {
    return this.batched((limit) => run('runFailuresDeleteBefore', { before, limit }));
  }

  async workersSave(batch: readonly WorkerSave[]): Promise<void> {
    if (batch.length === 0) return;
    await this.r.atomic(saveWorkers(batch));
  }

  workersList(keyId: string | null): Promise<WorkerRecord[]> {
    return this.r.read(keyId == null ? all('workersAll', {}) : all('workersOfKey', { keyId }));
  }

  workerGet(keyId: string, workerId: string): Promise<WorkerRecord | null> {
    return this.r.read(get('workerGet', { keyId, workerId }));
  }

  workerCommandSet(
    workerId: string,
    keyId: string | null,
    command: WorkerCommand | null,
  ): Promise<WorkerRef[]> {
    return this.r.write(all('workerCommandSet', { workerId, keyId, command }));
  }

  workerForget(workerId: string, keyId: string | null): Promise<WorkerRef[]> {
    return this.r.write(all('workerDelete', { workerId, keyId }));
  }

  workersCommanded(): Promise<Array<WorkerRef & { command: WorkerCommand }>> {
    return this.r.read(all('workersCommanded', {}));
  }

  workersDeleteSeenBefore(before: number): Promise<number> {
    return this.batched((limit) => run('workersDeleteSeenBefore', { before, limit }));
  }

  intentsHeld(keyId: string | null): Promise<HeldRow[]> {
    return this.r.read(all('intentsHeld', { keyId }));
  }

  goalCounts(): Promise<GoalCountRow[]> {
    return this.r.read(all('goalCounts', {}));
  }

  openRoutes(now: number, limit: number): Promise<OpenRouteRow[]> {
    return this.r.read(all('openRoutes', { now, limit }));
  }
}
