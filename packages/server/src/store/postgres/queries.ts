/**
 * The SQL of every statement of store/statements.ts for PostgreSQL (each export is one,
 * by its name), and the advisory locks only PostgreSQL has, with named parameters
 * (`@name`, numbered `$n` once per statement by pg-store.ts). Values are always bound,
 * never pasted into the text.
 */
import { INTENT_MEMBERS, type ColumnKind } from '../../core/intent-record.js';
import { PUBLISHED_COLUMNS, PUBLISHED_PARAMS, intentColumns } from '../intent-columns.js';

/** The intents columns under the names of IntentRow (quoted: PostgreSQL folds case). */
const INTENT_COLUMNS = intentColumns((alias) => `"${alias}"`);

export const intentInsert = `INSERT INTO intents (${PUBLISHED_COLUMNS}, status)
VALUES (${PUBLISHED_PARAMS}, 'open')`;

/**
 * Group writes (pg-store.ts): the `write` steps of one event-loop turn that run the same
 * statement go as one multi-row statement. Each parameter of the single statement is bound
 * as an array of the items' values (one element per item), and `unnest` turns them back
 * into one row per item, its values as the columns `u_<parameter>`. Each array is typed
 * as the column it fills or is compared with, so the plans are the single statement's.
 */
const unnest = (params: ReadonlyArray<readonly [name: string, type: string]>): string =>
  `unnest(${params.map(([n, t]) => `@${n}::${t}[]`).join(', ')})
  AS u(${params.map(([n]) => `u_${n}`).join(', ')})`;
const item = (name: string): string => `u_${name}`;
const param = (name: string): string => `@${name}`;

/** The PostgreSQL type of a column of a kind (core/intent-record.ts; migrations.ts). */
function pgType(kind: ColumnKind): string {
  if (typeof kind !== 'string') return 'text';
  const base = kind.replace(/\?$/, '');
  if (base === 'int' || base === 'count') return 'integer';
  if (base === 'time') return 'bigint';
  if (base === 'real') return 'double precision';
  return 'text';
}

const PUBLISHED = INTENT_MEMBERS.filter((m) => 'publish' in m);

/** intentInsert of several intents: every one, or (an error) none. */
export const intentInsertMany = `INSERT INTO intents (${PUBLISHED_COLUMNS}, status)
SELECT ${PUBLISHED.map((m) => item(m.name)).join(', ')}, 'open'
FROM ${unnest(PUBLISHED.map((m) => [m.name, pgType(m.kind)]))}`;

/**
 * The claim: one UPDATE whose sub-select picks the first claimable intent in the order of
 * PROTOCOL.md §4. FOR UPDATE SKIP LOCKED makes concurrent claims (on any node) pass over
 * a row another claim is taking instead of waiting for it and then finding it gone; a row
 * changed before it could be locked is checked again and skipped if it no longer matches.
 * Four variants (goal given or not × publisher filter or not) so that each has a fixed
 * plan over the matching partial index.
 * @caps is a text[].
 */
function claimStatement(withGoal: boolean, withPublisher: boolean, except = false): string {
  const owner = withPublisher
    ? 'publisher = @publisher'
    : "(visibility = 'public' OR publisher = @keyId)";
  return `UPDATE intents SET status = 'claimed', claim_attempts = claim_attempts + 1,
  claim_token = @token, claim_expires_at = @claimExpiresAt, claimer = @keyId, worker_id = @workerId
WHERE id = (
  SELECT id FROM intents
  WHERE status = 'open' AND namespace = @namespace ${withGoal ? 'AND goal = @goal' : ''}
    AND run_at <= @now AND expires_at > @now AND claim_attempts < max_attempts
    AND (target_worker IS NULL OR target_worker = @workerId)
    AND (required_capability IS NULL OR required_capability = ANY(@caps::text[]))
    AND ${owner}${except ? '\n    AND goal <> ALL(@held::text[])' : ''}
  ORDER BY priority DESC, run_at ASC, claim_attempts ASC, created_at ASC, id ASC
  LIMIT 1
  FOR UPDATE SKIP LOCKED)
RETURNING ${INTENT_COLUMNS}`;
}

export const intentClaim = claimStatement(false, false);
export const intentClaimGoal = claimStatement(true, false);
export const intentClaimPublisher = claimStatement(false, true);
export const intentClaimGoalPublisher = claimStatement(true, true);
/** Flow control (core/flow.ts): the claim of any goal but those @held back. */
export const intentClaimExcept = claimStatement(false, false, true);
export const intentClaimExceptPublisher = claimStatement(false, true, true);

/** The goal of the first intent the claim would take among the goals held back (or any). */
export const intentHeldGoal = `SELECT goal FROM intents
WHERE status = 'open' AND namespace = @namespace AND (@goal::text IS NULL OR goal = @goal)
  AND run_at <= @now AND expires_at > @now AND claim_attempts < max_attempts
  AND (target_worker IS NULL OR target_worker = @workerId)
  AND (required_capability IS NULL OR required_capability = ANY(@caps::text[]))
  AND (CASE WHEN @publisher::text IS NULL THEN (visibility = 'public' OR publisher = @keyId)
       ELSE publisher = @publisher END)
  AND (@anyGoal::integer = 1 OR goal = ANY(@held::text[]))
ORDER BY priority DESC, run_at ASC, claim_attempts ASC, created_at ASC, id ASC
LIMIT 1`;

const FLOW_COLUMNS = `namespace, goal, paused, max_in_flight AS "maxInFlight",
  rate_limit AS "rateLimit", rate_per AS "ratePer", updated_at AS "updatedAt"`;
export const flowList = `SELECT ${FLOW_COLUMNS} FROM flow_controls ORDER BY namespace, goal`;
export const flowGet = `SELECT ${FLOW_COLUMNS} FROM flow_controls
WHERE namespace = @namespace AND goal = @goal`;
export const flowUpsert = `INSERT INTO flow_controls
  (namespace, goal, paused, max_in_flight, rate_limit, rate_per, updated_at)
VALUES (@namespace, @goal, @paused, @maxInFlight, @rateLimit, @ratePer, @updatedAt)
ON CONFLICT (namespace, goal) DO UPDATE SET paused = excluded.paused,
  max_in_flight = excluded.max_in_flight, rate_limit = excluded.rate_limit,
  rate_per = excluded.rate_per, updated_at = excluded.updated_at`;
export const flowDelete = `DELETE FROM flow_controls WHERE namespace = @namespace AND goal = @goal`;
/** The intents a control counts as in flight (goal '*': the whole namespace). */
export const flowInFlight = `SELECT count(*) AS n FROM intents
WHERE status = 'claimed' AND namespace = @namespace AND (@goal::text = '*' OR goal = @goal)`;
/** A rate's window, reckoned at the later of now and its newest claim (core/flow.ts). */
export const flowRecent = `SELECT count(*) AS n, min(at) AS oldest, max(at) AS newest FROM flow_claims
WHERE namespace = @namespace AND goal = @goal AND at > GREATEST(@now::bigint, (SELECT max(at) FROM flow_claims
  WHERE namespace = @namespace AND goal = @goal)) - @perMs`;
export const flowClaimRecord = `INSERT INTO flow_claims (namespace, goal, at, intent_id)
VALUES (@namespace, @goal, @at, @intentId) ON CONFLICT DO NOTHING`;
export const flowClaimsPrune = `DELETE FROM flow_claims
WHERE namespace = @namespace AND goal = @goal AND at <= @before`;

/** A live token's row, for this key (`v` names each value: its parameter, or an item's). */
const live = (v: (name: string) => string): string =>
  `id = ${v('id')} AND status = 'claimed' AND claim_token = ${v('token')} AND claimer = ${v('keyId')}
  AND claim_expires_at > ${v('now')}`;
const LIVE = live(param);

export const intentExtend = `UPDATE intents SET claim_expires_at = @claimExpiresAt WHERE ${LIVE}
RETURNING ${INTENT_COLUMNS}`;

export const intentProgress = `UPDATE intents SET
  claim_expires_at = GREATEST(claim_expires_at, @claimExpiresAt), progress_percent = @percent,
  progress_message = @message, progress_data = @data, progress_at = @at WHERE ${LIVE}
RETURNING ${INTENT_COLUMNS}`;

const fulfil = (v: (name: string) => string): string =>
  `UPDATE intents SET status = 'fulfilled', result = ${v('result')},
  result_type = ${v('resultType')}, completed_at = ${v('now')}, claim_token = NULL`;

export const intentFulfill = `${fulfil(param)} WHERE ${LIVE}
RETURNING ${INTENT_COLUMNS}`;

/**
 * intentFulfill of several tokens, each with its own time: the rows of the live ones. Each
 * intent at most once (pg-store.ts sees to it): an UPDATE … FROM changes a row once even
 * when several items match it.
 */
export const intentFulfillMany = `${fulfil(item)}
FROM ${unnest([
  ['id', 'text'],
  ['token', 'text'],
  ['keyId', 'text'],
  ['now', 'bigint'],
  ['result', 'text'],
  ['resultType', 'text'],
])}
WHERE ${live(item)}
RETURNING ${INTENT_COLUMNS}`;

// Locked until the failure is recorded.
export const intentSelectLive = `SELECT ${INTENT_COLUMNS} FROM intents WHERE ${LIVE} FOR UPDATE`;

/** A failed or expired claim, once the core has decided its outcome. */
export const intentRelease = `UPDATE intents SET status = @status, run_at = @runAt,
  claim_token = NULL, claim_expires_at = NULL, error = @error, dead_reason = @deadReason,
  completed_at = @completedAt
WHERE id = @id AND status = 'claimed' AND claim_token = @token
RETURNING ${INTENT_COLUMNS}`;

export const intentUnclaim = `UPDATE intents SET status = 'open',
  claim_attempts = claim_attempts - 1, claim_token = NULL, claim_expires_at = NULL
WHERE id = @id AND status = 'claimed' AND claim_token = @token
RETURNING ${INTENT_COLUMNS}`;

export const intentGet = `SELECT ${INTENT_COLUMNS} FROM intents WHERE id = @id`;

export const intentCancel = `UPDATE intents SET status = 'dead', dead_reason = @reason,
  claim_token = NULL, completed_at = @now
WHERE id = @id AND status IN ('open', 'claimed')
RETURNING ${INTENT_COLUMNS}`;

// The TTL in ms is truncated, as SQLite's CAST does.
export const intentRetry = `UPDATE intents SET status = 'open', claim_attempts = 0, run_at = @now,
  expires_at = @now::bigint + CAST(trunc(ttl * 1000) AS BIGINT), claim_token = NULL,
  claim_expires_at = NULL, result = NULL, result_type = NULL, completed_at = NULL, error = NULL,
  dead_reason = NULL
WHERE id = @id
RETURNING ${INTENT_COLUMNS}`;

// Locked until released; a sweep running elsewhere takes the others.
export const leasesExpired = `SELECT ${INTENT_COLUMNS} FROM intents
WHERE status = 'claimed' AND claim_expires_at <= @now ORDER BY claim_expires_at LIMIT @limit
FOR UPDATE SKIP LOCKED`;

// ARRAY(…) runs the locking sub-select exactly once.
export const intentsExpire = `UPDATE intents SET status = 'dead', dead_reason = @reason,
  completed_at = @now
WHERE id = ANY(ARRAY(SELECT id FROM intents WHERE status = 'open' AND expires_at <= @now
                     LIMIT @limit FOR UPDATE SKIP LOCKED))
  AND status = 'open'
RETURNING ${INTENT_COLUMNS}`;

// Bulk deletes take at most @limit rows per statement: the caller loops, so a large
// cleanup or purge never holds many row locks for long.
export const intentsDeleteFinished = `DELETE FROM intents WHERE id = ANY(ARRAY(
  SELECT id FROM intents
  WHERE status = @status AND completed_at IS NOT NULL AND completed_at < @before LIMIT @limit))`;

export const intentsPurgeAll = `DELETE FROM intents WHERE id = ANY(ARRAY(
  SELECT id FROM intents LIMIT @limit))`;
export const intentsPurgeNamespace = `DELETE FROM intents WHERE id = ANY(ARRAY(
  SELECT id FROM intents WHERE namespace = @namespace LIMIT @limit))`;
export const deadCountAll = `SELECT COUNT(*) AS n FROM intents WHERE status = 'dead'`;
export const deadCountNamespace = `SELECT COUNT(*) AS n FROM intents
WHERE status = 'dead' AND namespace = @namespace`;

export const deadListAll = `SELECT ${INTENT_COLUMNS} FROM intents
WHERE status = 'dead' AND completed_at IS NOT NULL ORDER BY completed_at DESC LIMIT @limit`;
export const deadListNamespace = `SELECT ${INTENT_COLUMNS} FROM intents
WHERE status = 'dead' AND completed_at IS NOT NULL AND namespace = @namespace
ORDER BY completed_at DESC LIMIT @limit`;

// Only a dead intent: an open, claimed or fulfilled one stays.
export const deadDiscard = `DELETE FROM intents WHERE id = @id AND status = 'dead'`;

// Admin listing, newest first. Each filter is optional (NULL matches all).
export const intentsList = `SELECT ${INTENT_COLUMNS} FROM intents
WHERE (@namespace::text IS NULL OR namespace = @namespace)
  AND (@goal::text IS NULL OR goal = @goal)
  AND (@status::text IS NULL OR status = @status)
  AND (@publisher::text IS NULL OR publisher = @publisher)
  AND (@workerId::text IS NULL OR worker_id = @workerId)
  AND (@cursorAt::bigint IS NULL OR created_at < @cursorAt
       OR (created_at = @cursorAt AND id < @cursorId::text))
ORDER BY created_at DESC, id DESC LIMIT @limit`;

export const intentsCount = `SELECT namespace, status, COUNT(*) AS n FROM intents
GROUP BY namespace, status ORDER BY namespace, status`;

// Counts per minute (ms of the minute's start).
export const publishedPerMinute = `SELECT (created_at / 60000) * 60000 AS minute, COUNT(*) AS n
FROM intents WHERE created_at >= @since GROUP BY minute`;
export const finishedPerMinute = `SELECT (completed_at / 60000) * 60000 AS minute, COUNT(*) AS n
FROM intents WHERE status = @status AND completed_at IS NOT NULL AND completed_at >= @since
GROUP BY minute`;

export const keyCount = `SELECT COUNT(*) AS n FROM api_keys`;

// Open intents due after their creation are the only ones that can be due after now (the
// index holds only those).
export const intentsDueAfter = `SELECT ${INTENT_COLUMNS} FROM intents
WHERE status = 'open' AND run_at > created_at AND run_at > @now ORDER BY run_at LIMIT @limit`;

// A transaction-scoped lock on one name (@cls, @key), so that the checks of a publish and
// its INSERT are not interleaved with another publish's (on any node).
export const advisoryLock = `SELECT pg_advisory_xact_lock(@cls::integer, hashtext(@key::text))`;
export const sessionLock = `SELECT pg_advisory_lock(@cls::integer, hashtext(@key::text))`;
export const sessionTryLock = `SELECT pg_try_advisory_lock(@cls::integer, hashtext(@key::text))
  AS got`;
export const sessionUnlock = `SELECT pg_advisory_unlock(@cls::integer, hashtext(@key::text))`;

export const idempotencyGet = `SELECT body_hash AS "bodyHash", status, response,
  created_at AS "createdAt"
FROM idempotency WHERE key_id = @keyId AND idem_key = @idemKey`;
export const idempotencyPut = `INSERT INTO idempotency
  (key_id, idem_key, body_hash, status, response, created_at)
VALUES (@keyId, @idemKey, @bodyHash, @status, @response, @createdAt)
ON CONFLICT (key_id, idem_key) DO UPDATE SET body_hash = excluded.body_hash,
  status = excluded.status, response = excluded.response, created_at = excluded.created_at`;
export const idempotencyDeleteBefore = `DELETE FROM idempotency WHERE (key_id, idem_key) IN (
  SELECT key_id, idem_key FROM idempotency WHERE created_at < @before LIMIT @limit)`;
export const idempotencyDeleteKey = `DELETE FROM idempotency WHERE key_id = @keyId`;

export const intentsLiveOfPublisher = `SELECT COUNT(*) AS n FROM intents
WHERE publisher = @publisher AND status IN ('open', 'claimed')`;

// No row inserted means the nonce is already remembered.
export const nonceInsert = `INSERT INTO nonces (key_id, nonce, expires_at)
VALUES (@keyId, @nonce, @expiresAt)
ON CONFLICT (key_id, nonce) DO NOTHING`;
// The same nonce remembered past its window is forgotten first.
export const nonceDeleteStale = `DELETE FROM nonces
WHERE key_id = @keyId AND nonce = @nonce AND expires_at <= @now`;
export const nonceCount = `SELECT COUNT(*) AS n FROM nonces`;
export const noncesDeleteExpired = `DELETE FROM nonces WHERE (key_id, nonce) IN (
  SELECT key_id, nonce FROM nonces WHERE expires_at <= @now LIMIT @limit)`;
export const noncesDeleteKey = `DELETE FROM nonces WHERE key_id = @keyId`;

export const kvSet = `INSERT INTO kv (owner, name, value, expires_at)
VALUES (@owner, @name, @value, @expiresAt)
ON CONFLICT (owner, name) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`;
export const kvGet = `SELECT value FROM kv WHERE owner = @owner AND name = @name AND expires_at > @now`;
export const kvDeleteExpired = `DELETE FROM kv WHERE (owner, name) IN (
  SELECT owner, name FROM kv WHERE expires_at <= @now LIMIT @limit)`;

const KEY_COLUMNS = `key_id AS "keyId", key_hash AS "keyHash", prefix, owner,
  created_at AS "createdAt", last_used_at AS "lastUsedAt", requests`;
export const keyCreate = `INSERT INTO api_keys
  (key_id, key_hash, prefix, owner, created_at, last_used_at, requests)
VALUES (@keyId, @keyHash, @prefix, @owner, @createdAt, @lastUsedAt, @requests)`;
export const keyByHash = `SELECT ${KEY_COLUMNS} FROM api_keys WHERE key_hash = @keyHash`;
export const keyList = `SELECT ${KEY_COLUMNS} FROM api_keys ORDER BY created_at, key_id`;
// A revoked key's leases end now; the sweeper requeues them as expired ones.
export const leasesEndOfKey = `UPDATE intents SET claim_expires_at = @now
WHERE status = 'claimed' AND claimer = @keyId AND claim_expires_at > @now`;

export const keyDeleteById = `DELETE FROM api_keys WHERE key_id = @keyId
RETURNING key_id AS "keyId"`;
export const keyDeleteByHash = `DELETE FROM api_keys WHERE key_hash = @keyHash
RETURNING key_id AS "keyId"`;
export const keyUsageAdd = `UPDATE api_keys SET requests = requests + @count,
  last_used_at = GREATEST(COALESCE(last_used_at, 0), @lastUsedAt) WHERE key_id = @keyId`;

export const ping = `SELECT 1 AS ok`;

// Schedules (issue 17). A run's tick has at most one intent (intents_schedule_run): a second
// insert for it changes nothing.
export const runInsert = `${intentInsert}
ON CONFLICT DO NOTHING`;
export const scheduleRuns = `SELECT ${INTENT_COLUMNS} FROM intents
WHERE publisher = @owner AND schedule = @name AND scheduled_for IS NOT NULL
ORDER BY scheduled_for DESC LIMIT @limit`;

const SCHEDULE_COLUMNS = `owner, name, cron, every_seconds AS "every", timezone, intent, overlap,
  catch_up AS "catchUp", paused, last_tick AS "lastTick", next_at AS "nextAt",
  created_at AS "createdAt", updated_at AS "updatedAt", deadline_seconds AS "deadline",
  on_failure AS "onFailure", checked_until AS "checkedUntil"`;
export const scheduleGet = `SELECT ${SCHEDULE_COLUMNS} FROM schedules
WHERE owner = @owner AND name = @name`;
export const scheduleList = `SELECT ${SCHEDULE_COLUMNS} FROM schedules WHERE owner = @owner
ORDER BY name`;
export const scheduleInsert = `INSERT INTO schedules (owner, name, cron, every_seconds, timezone,
  intent, overlap, catch_up, paused, last_tick, next_at, created_at, updated_at,
  deadline_seconds, on_failure, checked_until)
VALUES (@owner, @name, @cron, @every, @timezone, @intent, @overlap, @catchUp, @paused, @lastTick,
  @nextAt, @createdAt, @updatedAt, @deadline, @onFailure, @checkedUntil)`;
export const scheduleUpdate = `UPDATE schedules SET cron = @cron, every_seconds = @every,
  timezone = @timezone, intent = @intent, overlap = @overlap, catch_up = @catchUp,
  paused = @paused, last_tick = @lastTick, next_at = @nextAt, created_at = @createdAt,
  updated_at = @updatedAt, deadline_seconds = @deadline, on_failure = @onFailure,
  checked_until = @checkedUntil
WHERE owner = @owner AND name = @name`;
export const scheduleDelete = `DELETE FROM schedules WHERE owner = @owner AND name = @name`;
export const schedulesDeleteOwner = `DELETE FROM schedules WHERE owner = @owner`;
export const schedulesDue = `SELECT owner, name FROM schedules
WHERE paused = 0 AND next_at <= @now ORDER BY next_at LIMIT @limit`;
export const scheduleAdvance = `UPDATE schedules SET last_tick = @lastTick, next_at = @nextAt
WHERE owner = @owner AND name = @name`;

// Deadlines and alerts (issue 17): a failed run's row is its alert's guard.
export const schedulesWithDeadline = `SELECT owner, name FROM schedules
WHERE deadline_seconds IS NOT NULL`;
export const scheduleRunsBetween = `SELECT ${INTENT_COLUMNS} FROM intents 
WHERE publisher = @owner AND schedule = @name AND scheduled_for >= @from
  AND scheduled_for <= @to
ORDER BY scheduled_for LIMIT @limit`;
export const scheduleChecked = `UPDATE schedules SET checked_until = @checkedUntil
WHERE owner = @owner AND name = @name`;
export const runFailureInsert = `INSERT INTO schedule_failures
  (owner, schedule, scheduled_for, intent_id, reason, failed_at, alert_id)
VALUES (@owner, @schedule, @scheduledFor, @intentId, @reason, @failedAt, @alertId)
ON CONFLICT DO NOTHING`;
export const runFailuresBetween = `SELECT scheduled_for AS "scheduledFor", reason, alert_id AS "alertId"
FROM schedule_failures
WHERE owner = @owner AND schedule = @name AND scheduled_for >= @from AND scheduled_for <= @to`;
export const runsDeadUnrecorded = `SELECT ${INTENT_COLUMNS} FROM intents 
WHERE schedule IS NOT NULL AND status = 'dead' AND completed_at >= @since
  AND dead_reason IS DISTINCT FROM 'cancelled'
  AND NOT EXISTS (SELECT 1 FROM schedule_failures f WHERE f.owner = intents.publisher
    AND f.schedule = intents.schedule AND f.scheduled_for = intents.scheduled_for)
ORDER BY completed_at LIMIT @limit`;
export const runFailuresDeleteBefore = `DELETE FROM schedule_failures
WHERE (owner, schedule, scheduled_for) IN (
  SELECT f.owner, f.schedule, f.scheduled_for FROM schedule_failures f WHERE f.failed_at < @before
    AND NOT EXISTS (SELECT 1 FROM intents i WHERE i.id = f.intent_id) LIMIT @limit)`;
// The fleet (issue 18). A node's batch merges into the row: the latest sighting gives the
// capabilities, asks, User-Agent and address; counts add; last_seen is the latest of all.
const WORKER_COLUMNS = `key_id AS "keyId", worker_id AS "workerId", capabilities, asks,
  user_agent AS "userAgent", address, first_seen AS "firstSeen", last_seen AS "lastSeen",
  fulfilled, failed, last_error AS "lastError", command`;
export const workerSave = `INSERT INTO workers AS w (key_id, worker_id, capabilities, asks,
  user_agent, address, first_seen, last_seen, fulfilled, failed, last_error)
VALUES (@keyId, @workerId, COALESCE(@capabilities::text, '[]'), COALESCE(@asks::text, '[]'),
  @userAgent, @address, @firstSeen, @lastSeen, @fulfilled, @failed, @lastError)
ON CONFLICT (key_id, worker_id) DO UPDATE SET
  capabilities = CASE WHEN @capabilities::text IS NOT NULL AND @lastSeen::bigint >= w.last_seen
    THEN @capabilities::text ELSE w.capabilities END,
  asks = CASE WHEN @asks::text IS NOT NULL AND @lastSeen::bigint >= w.last_seen
    THEN @asks::text ELSE w.asks END,
  user_agent = CASE WHEN @lastSeen::bigint >= w.last_seen
    THEN COALESCE(@userAgent::text, w.user_agent) ELSE w.user_agent END,
  address = CASE WHEN @lastSeen::bigint >= w.last_seen THEN COALESCE(@address::text, w.address)
    ELSE w.address END,
  first_seen = LEAST(w.first_seen, @firstSeen::bigint),
  last_seen = GREATEST(w.last_seen, @lastSeen::bigint),
  fulfilled = w.fulfilled + @fulfilled::bigint,
  failed = w.failed + @failed::bigint,
  last_error = COALESCE(@lastError::text, w.last_error)`;
export const workersAll = `SELECT ${WORKER_COLUMNS} FROM workers ORDER BY key_id, worker_id`;
export const workersOfKey = `SELECT ${WORKER_COLUMNS} FROM workers WHERE key_id = @keyId
ORDER BY worker_id`;
export const workerGet = `SELECT ${WORKER_COLUMNS} FROM workers
WHERE key_id = @keyId AND worker_id = @workerId`;
export const workerCommandSet = `UPDATE workers SET command = @command::text
WHERE worker_id = @workerId AND (@keyId::text IS NULL OR key_id = @keyId::text)
RETURNING key_id AS "keyId", worker_id AS "workerId"`;
export const workerDelete = `DELETE FROM workers
WHERE worker_id = @workerId AND (@keyId::text IS NULL OR key_id = @keyId::text)
RETURNING key_id AS "keyId", worker_id AS "workerId"`;
export const workersCommanded = `SELECT key_id AS "keyId", worker_id AS "workerId", command
FROM workers WHERE command IS NOT NULL`;
export const workersDeleteSeenBefore = `DELETE FROM workers WHERE (key_id, worker_id) IN (
  SELECT key_id, worker_id FROM workers WHERE last_seen < @before LIMIT @limit)`;
export const workersDeleteKey = `DELETE FROM workers WHERE key_id = @keyId`;
export const intentsHeld = `SELECT id, namespace, goal, claimer, worker_id AS "workerId",
  claim_expires_at AS "claimExpiresAt"
FROM intents
WHERE status = 'claimed' AND worker_id IS NOT NULL
  AND (@keyId::text IS NULL OR claimer = @keyId::text)`;
export const goalCounts = `SELECT namespace, goal, status, COUNT(*) AS n, MIN(created_at) AS oldest
FROM intents WHERE status IN ('open', 'claimed', 'dead')
GROUP BY namespace, goal, status ORDER BY namespace, goal, status`;
export const openRoutes = `SELECT namespace, goal, visibility, publisher,
  target_worker AS "targetWorker", required_capability AS "requiredCapability", COUNT(*) AS n,
  MIN(created_at) AS oldest
FROM intents WHERE status = 'open' AND run_at <= @now
GROUP BY namespace, goal, visibility, publisher, target_worker, required_capability
ORDER BY namespace, goal LIMIT @limit`;
export const schedulesAll = `SELECT ${SCHEDULE_COLUMNS} FROM schedules ORDER BY owner, name
LIMIT @limit`;
