/**
 * The SQL of every statement of store/statements.ts for SQLite (each export is one, by
 * its name), with named parameters (`@name`; an array is bound as its JSON text). Values
 * are always bound, never pasted into the text.
 *
 * `col = +@param` (a unary plus, which changes nothing of the value) where an equality on a
 * column meets an ORDER BY or a GROUP BY (the claims, the per-minute counts, a list of
 * schedules): SQLite 3.54 counts such a bare parameter among those the plan depends on, and
 * prepares the statement again whenever it is bound anew. node:sqlite clears and binds every
 * parameter at each call, so each claim was parsed and planned again (30 of its 33 µs);
 * better-sqlite3 would do the same once its SQLite is 3.54. The plan is the same. Statements
 * with `LIMIT @n` are prepared again at each call on every SQLite (housekeeping and admin
 * lists, not the requests of workers); test/store/sqlite-drivers.test.ts holds the list.
 */
import { PUBLISHED_COLUMNS, PUBLISHED_PARAMS, intentColumns } from '../intent-columns.js';

/** The intents columns under the names of IntentRow (core/intent-record.ts). */
const INTENT_COLUMNS = intentColumns((alias) => alias);

export const intentInsert = `INSERT INTO intents (${PUBLISHED_COLUMNS}, status)
VALUES (${PUBLISHED_PARAMS}, 'open')`;

/**
 * The claim: one UPDATE whose sub-select picks the first claimable intent in the order of
 * PROTOCOL.md §4. Four variants (goal given or not × publisher filter or not) so that each
 * uses a fixed plan over the matching partial index. The row is found by the rowid its
 * index entry holds, not through the id index.
 */
function claimStatement(withGoal: boolean, withPublisher: boolean, except = false): string {
  const owner = withPublisher
    ? 'publisher = +@publisher'
    : "(visibility = 'public' OR publisher = @keyId)";
  return `UPDATE intents SET status = 'claimed', claim_attempts = claim_attempts + 1,
  claim_token = @token, claim_expires_at = @claimExpiresAt, claimer = @keyId, worker_id = @workerId
WHERE rowid = (
  SELECT rowid FROM intents INDEXED BY ${withGoal ? 'intents_claim_by_goal' : 'intents_claim_any'}
  WHERE status = 'open' AND namespace = +@namespace ${withGoal ? 'AND goal = +@goal' : ''}
    AND run_at <= @now AND expires_at > @now AND claim_attempts < max_attempts
    AND (target_worker IS NULL OR target_worker = @workerId)
    AND (required_capability IS NULL
         OR required_capability IN (SELECT value FROM json_each(@caps)))
    AND ${owner}${except ? '\n    AND goal NOT IN (SELECT value FROM json_each(@held))' : ''}
  ORDER BY priority DESC, run_at ASC, claim_attempts ASC, created_at ASC, id ASC
  LIMIT 1)
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
WHERE status = 'open' AND namespace = @namespace AND (@goal IS NULL OR goal = @goal)
  AND run_at <= @now AND expires_at > @now AND claim_attempts < max_attempts
  AND (target_worker IS NULL OR target_worker = @workerId)
  AND (required_capability IS NULL
       OR required_capability IN (SELECT value FROM json_each(@caps)))
  AND (CASE WHEN @publisher IS NULL THEN (visibility = 'public' OR publisher = @keyId)
       ELSE publisher = @publisher END)
  AND (@anyGoal = 1 OR goal IN (SELECT value FROM json_each(@held)))
ORDER BY priority DESC, run_at ASC, claim_attempts ASC, created_at ASC, id ASC
LIMIT 1`;

const FLOW_COLUMNS = `namespace, goal, paused, max_in_flight AS maxInFlight, rate_limit AS rateLimit,
  rate_per AS ratePer, updated_at AS updatedAt`;
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
export const flowInFlight = `SELECT count(*) AS n FROM intents INDEXED BY intents_lease_expiry
WHERE status = 'claimed' AND namespace = @namespace AND (@goal = '*' OR goal = @goal)`;
/** A rate's window, reckoned at the later of now and its newest claim (core/flow.ts). */
export const flowRecent = `SELECT count(*) AS n, min(at) AS oldest, max(at) AS newest FROM flow_claims
WHERE namespace = @namespace AND goal = @goal AND at > max(@now, coalesce((SELECT max(at) FROM flow_claims
  WHERE namespace = @namespace AND goal = @goal), @now)) - @perMs`;
export const flowClaimRecord = `INSERT INTO flow_claims (namespace, goal, at, intent_id)
VALUES (@namespace, @goal, @at, @intentId) ON CONFLICT DO NOTHING`;
export const flowClaimsPrune = `DELETE FROM flow_claims
WHERE namespace = @namespace AND goal = @goal AND at <= @before`;

/** A live token's row, for this key. */
const LIVE = `id = @id AND status = 'claimed' AND claim_token = @token AND claimer = @keyId
  AND claim_expires_at > @now`;

export const intentExtend = `UPDATE intents SET claim_expires_at = @claimExpiresAt WHERE ${LIVE}
RETURNING ${INTENT_COLUMNS}`;

export const intentProgress = `UPDATE intents SET
  claim_expires_at = MAX(claim_expires_at, @claimExpiresAt), progress_percent = @percent,
  progress_message = @message, progress_data = @data, progress_at = @at WHERE ${LIVE}
RETURNING ${INTENT_COLUMNS}`;

export const intentFulfill = `UPDATE intents SET status = 'fulfilled', result = @result,
  result_type = @resultType, completed_at = @now, claim_token = NULL WHERE ${LIVE}
RETURNING ${INTENT_COLUMNS}`;

export const intentSelectLive = `SELECT ${INTENT_COLUMNS} FROM intents WHERE ${LIVE}`;

/** A failed or expired claim, once the core has decided its outcome. */
export const intentRelease = `UPDATE intents SET status = @status, run_at = @runAt,
  claim_token = NULL, claim_expires_at = NULL, error = @error, dead_reason = @deadReason, completed_at = @completedAt
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

export const intentRetry = `UPDATE intents SET status = 'open', claim_attempts = 0, run_at = @now,
  expires_at = @now + CAST(ttl * 1000 AS INTEGER), claim_token = NULL, claim_expires_at = NULL,
  result = NULL, result_type = NULL, completed_at = NULL, error = NULL, dead_reason = NULL
WHERE id = @id
RETURNING ${INTENT_COLUMNS}`;

export const leasesExpired = `SELECT ${INTENT_COLUMNS} FROM intents INDEXED BY intents_lease_expiry
WHERE status = 'claimed' AND claim_expires_at <= @now ORDER BY claim_expires_at LIMIT @limit`;

export const intentsExpire = `UPDATE intents SET status = 'dead', dead_reason = @reason,
  completed_at = @now
WHERE id IN (SELECT id FROM intents INDEXED BY intents_open_expiry
             WHERE status = 'open' AND expires_at <= @now LIMIT @limit)
RETURNING ${INTENT_COLUMNS}`;

// Bulk deletes take at most @limit rows per statement: the caller loops and lets other
// work run between batches, so a large cleanup or purge never freezes the bus.
export const intentsDeleteFinished = `DELETE FROM intents WHERE rowid IN (
  SELECT rowid FROM intents INDEXED BY intents_finished
  WHERE status = @status AND completed_at < @before LIMIT @limit)`;

export const intentsPurgeAll = `DELETE FROM intents WHERE rowid IN (
  SELECT rowid FROM intents LIMIT @limit)`;
export const intentsPurgeNamespace = `DELETE FROM intents WHERE rowid IN (
  SELECT rowid FROM intents WHERE namespace = @namespace LIMIT @limit)`;
export const deadCountAll = `SELECT COUNT(*) AS n FROM intents WHERE status = 'dead'`;
export const deadCountNamespace = `SELECT COUNT(*) AS n FROM intents
WHERE status = 'dead' AND namespace = @namespace`;

export const deadListAll = `SELECT ${INTENT_COLUMNS} FROM intents INDEXED BY intents_finished
WHERE status = 'dead' AND completed_at IS NOT NULL ORDER BY completed_at DESC LIMIT @limit`;
export const deadListNamespace = `SELECT ${INTENT_COLUMNS} FROM intents INDEXED BY intents_finished
WHERE status = 'dead' AND completed_at IS NOT NULL AND namespace = @namespace
ORDER BY completed_at DESC LIMIT @limit`;

// Only a dead intent: an open, claimed or fulfilled one stays.
export const deadDiscard = `DELETE FROM intents WHERE id = @id AND status = 'dead'`;

// Admin listing, newest first. Each filter is optional (NULL matches all).
export const intentsList = `SELECT ${INTENT_COLUMNS} FROM intents INDEXED BY intents_created
WHERE (@namespace IS NULL OR namespace = @namespace) AND (@goal IS NULL OR goal = @goal)
  AND (@status IS NULL OR status = @status) AND (@publisher IS NULL OR publisher = @publisher)
  AND (@workerId IS NULL OR worker_id = @workerId)
  AND (@cursorAt IS NULL OR created_at < @cursorAt OR (created_at = @cursorAt AND id < @cursorId))
ORDER BY created_at DESC, id DESC LIMIT @limit`;

export const intentsCount = `SELECT namespace, status, COUNT(*) AS n FROM intents
GROUP BY namespace, status ORDER BY namespace, status`;

// Counts per minute (ms of the minute's start).
export const publishedPerMinute = `SELECT (created_at / 60000) * 60000 AS minute, COUNT(*) AS n
FROM intents INDEXED BY intents_created WHERE created_at >= @since GROUP BY minute`;
export const finishedPerMinute = `SELECT (completed_at / 60000) * 60000 AS minute, COUNT(*) AS n
FROM intents INDEXED BY intents_finished WHERE status = +@status AND completed_at >= @since
GROUP BY minute`;

export const keyCount = `SELECT COUNT(*) AS n FROM api_keys`;

// Open intents due after their creation are the only ones that can be due after now (the
// index holds only those).
export const intentsDueAfter = `SELECT ${INTENT_COLUMNS} FROM intents INDEXED BY intents_due
WHERE status = 'open' AND run_at > created_at AND run_at > @now ORDER BY run_at LIMIT @limit`;

export const idempotencyGet = `SELECT body_hash AS bodyHash, status, response, created_at AS createdAt
FROM idempotency WHERE key_id = @keyId AND idem_key = @idemKey`;
export const idempotencyPut = `INSERT OR REPLACE INTO idempotency
  (key_id, idem_key, body_hash, status, response, created_at)
VALUES (@keyId, @idemKey, @bodyHash, @status, @response, @createdAt)`;
export const idempotencyDeleteBefore = `DELETE FROM idempotency WHERE rowid IN (
  SELECT rowid FROM idempotency WHERE created_at < @before LIMIT @limit)`;
export const idempotencyDeleteKey = `DELETE FROM idempotency WHERE key_id = @keyId`;

export const intentsLiveOfPublisher = `SELECT COUNT(*) AS n FROM intents
  INDEXED BY intents_publisher_live WHERE publisher = @publisher AND status IN ('open', 'claimed')`;

export const nonceInsert = `INSERT OR IGNORE INTO nonces (key_id, nonce, expires_at)
VALUES (@keyId, @nonce, @expiresAt)`;
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
export const kvDeleteExpired = `DELETE FROM kv WHERE rowid IN (
  SELECT rowid FROM kv WHERE expires_at <= @now LIMIT @limit)`;

const KEY_COLUMNS = `key_id AS keyId, key_hash AS keyHash, prefix, owner, created_at AS createdAt,
  last_used_at AS lastUsedAt, requests`;
export const keyCreate = `INSERT INTO api_keys
  (key_id, key_hash, prefix, owner, created_at, last_used_at, requests)
VALUES (@keyId, @keyHash, @prefix, @owner, @createdAt, @lastUsedAt, @requests)`;
export const keyByHash = `SELECT ${KEY_COLUMNS} FROM api_keys WHERE key_hash = @keyHash`;
export const keyList = `SELECT ${KEY_COLUMNS} FROM api_keys ORDER BY created_at, key_id`;
// A revoked key's leases end now; the sweeper requeues them as expired ones.
export const leasesEndOfKey = `UPDATE intents SET claim_expires_at = @now
WHERE status = 'claimed' AND claimer = @keyId AND claim_expires_at > @now`;

export const keyDeleteById = `DELETE FROM api_keys WHERE key_id = @keyId RETURNING key_id AS keyId`;
export const keyDeleteByHash = `DELETE FROM api_keys WHERE key_hash = @keyHash
RETURNING key_id AS keyId`;
export const keyUsageAdd = `UPDATE api_keys SET requests = requests + @count,
  last_used_at = MAX(COALESCE(last_used_at, 0), @lastUsedAt) WHERE key_id = @keyId`;

export const ping = `SELECT 1 AS ok`;

// Schedules (issue 17). A run's tick has at most one intent (intents_schedule_run): a second
// insert for it changes nothing.
export const runInsert = `${intentInsert}
ON CONFLICT DO NOTHING`;
export const scheduleRuns = `SELECT ${INTENT_COLUMNS} FROM intents INDEXED BY intents_schedule_run
WHERE publisher = @owner AND schedule = @name AND scheduled_for IS NOT NULL
ORDER BY scheduled_for DESC LIMIT @limit`;

const SCHEDULE_COLUMNS = `owner, name, cron, every_seconds AS every, timezone, intent, overlap,
  catch_up AS catchUp, paused, last_tick AS lastTick, next_at AS nextAt,
  created_at AS createdAt, updated_at AS updatedAt, deadline_seconds AS deadline,
  on_failure AS onFailure, checked_until AS checkedUntil`;
export const scheduleGet = `SELECT ${SCHEDULE_COLUMNS} FROM schedules
WHERE owner = @owner AND name = @name`;
export const scheduleList = `SELECT ${SCHEDULE_COLUMNS} FROM schedules WHERE owner = +@owner
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
export const schedulesDue = `SELECT owner, name FROM schedules INDEXED BY schedules_due
WHERE paused = 0 AND next_at <= @now ORDER BY next_at LIMIT @limit`;
export const scheduleAdvance = `UPDATE schedules SET last_tick = @lastTick, next_at = @nextAt
WHERE owner = @owner AND name = @name`;

// Deadlines and alerts (issue 17): a failed run's row is its alert's guard.
export const schedulesWithDeadline = `SELECT owner, name FROM schedules INDEXED BY schedules_deadline
WHERE deadline_seconds IS NOT NULL`;
export const scheduleRunsBetween = `SELECT ${INTENT_COLUMNS} FROM intents INDEXED BY intents_schedule_run
WHERE publisher = @owner AND schedule = @name AND scheduled_for >= @from
  AND scheduled_for <= @to
ORDER BY scheduled_for LIMIT @limit`;
export const scheduleChecked = `UPDATE schedules SET checked_until = @checkedUntil
WHERE owner = @owner AND name = @name`;
export const runFailureInsert = `INSERT INTO schedule_failures
  (owner, schedule, scheduled_for, intent_id, reason, failed_at, alert_id)
VALUES (@owner, @schedule, @scheduledFor, @intentId, @reason, @failedAt, @alertId)
ON CONFLICT DO NOTHING`;
export const runFailuresBetween = `SELECT scheduled_for AS scheduledFor, reason, alert_id AS alertId
FROM schedule_failures
WHERE owner = @owner AND schedule = @name AND scheduled_for >= @from AND scheduled_for <= @to`;
export const runsDeadUnrecorded = `SELECT ${INTENT_COLUMNS} FROM intents INDEXED BY intents_runs_dead
WHERE schedule IS NOT NULL AND status = 'dead' AND completed_at >= @since
  AND dead_reason IS NOT 'cancelled'
  AND NOT EXISTS (SELECT 1 FROM schedule_failures f WHERE f.owner = intents.publisher
    AND f.schedule = intents.schedule AND f.scheduled_for = intents.scheduled_for)
ORDER BY completed_at LIMIT @limit`;
export const runFailuresDeleteBefore = `DELETE FROM schedule_failures WHERE rowid IN (
  SELECT f.rowid FROM schedule_failures f WHERE f.failed_at < @before
    AND NOT EXISTS (SELECT 1 FROM intents i WHERE i.id = f.intent_id) LIMIT @limit)`;
// The fleet (issue 18). A node's batch merges into the row: the latest sighting gives the
// capabilities, asks, User-Agent and address; counts add; last_seen is the latest of all.
const WORKER_COLUMNS = `key_id AS keyId, worker_id AS workerId, capabilities, asks,
  user_agent AS userAgent, address, first_seen AS firstSeen, last_seen AS lastSeen, fulfilled,
  failed, last_error AS lastError, command`;
export const workerSave = `INSERT INTO workers (key_id, worker_id, capabilities, asks, user_agent,
  address, first_seen, last_seen, fulfilled, failed, last_error)
VALUES (@keyId, @workerId, COALESCE(@capabilities, '[]'), COALESCE(@asks, '[]'), @userAgent,
  @address, @firstSeen, @lastSeen, @fulfilled, @failed, @lastError)
ON CONFLICT (key_id, worker_id) DO UPDATE SET
  capabilities = CASE WHEN @capabilities IS NOT NULL AND @lastSeen >= last_seen
    THEN @capabilities ELSE capabilities END,
  asks = CASE WHEN @asks IS NOT NULL AND @lastSeen >= last_seen THEN @asks ELSE asks END,
  user_agent = CASE WHEN @lastSeen >= last_seen THEN COALESCE(@userAgent, user_agent)
    ELSE user_agent END,
  address = CASE WHEN @lastSeen >= last_seen THEN COALESCE(@address, address) ELSE address END,
  first_seen = MIN(first_seen, @firstSeen),
  last_seen = MAX(last_seen, @lastSeen),
  fulfilled = fulfilled + @fulfilled,
  failed = failed + @failed,
  last_error = COALESCE(@lastError, last_error)`;
export const workersAll = `SELECT ${WORKER_COLUMNS} FROM workers ORDER BY key_id, worker_id`;
export const workersOfKey = `SELECT ${WORKER_COLUMNS} FROM workers WHERE key_id = @keyId
ORDER BY worker_id`;
export const workerGet = `SELECT ${WORKER_COLUMNS} FROM workers
WHERE key_id = @keyId AND worker_id = @workerId`;
export const workerCommandSet = `UPDATE workers SET command = @command
WHERE worker_id = @workerId AND (@keyId IS NULL OR key_id = @keyId)
RETURNING key_id AS keyId, worker_id AS workerId`;
export const workerDelete = `DELETE FROM workers
WHERE worker_id = @workerId AND (@keyId IS NULL OR key_id = @keyId)
RETURNING key_id AS keyId, worker_id AS workerId`;
export const workersCommanded = `SELECT key_id AS keyId, worker_id AS workerId, command
FROM workers WHERE command IS NOT NULL`;
export const workersDeleteSeenBefore = `DELETE FROM workers WHERE rowid IN (
  SELECT rowid FROM workers WHERE last_seen < @before LIMIT @limit)`;
export const workersDeleteKey = `DELETE FROM workers WHERE key_id = @keyId`;
export const intentsHeld = `SELECT id, namespace, goal, claimer, worker_id AS workerId,
  claim_expires_at AS claimExpiresAt
FROM intents INDEXED BY intents_lease_expiry
WHERE status = 'claimed' AND worker_id IS NOT NULL AND (@keyId IS NULL OR claimer = @keyId)`;
export const goalCounts = `SELECT namespace, goal, status, COUNT(*) AS n, MIN(created_at) AS oldest
FROM intents WHERE status IN ('open', 'claimed', 'dead')
GROUP BY namespace, goal, status ORDER BY namespace, goal, status`;
export const openRoutes = `SELECT namespace, goal, visibility, publisher,
  target_worker AS targetWorker, required_capability AS requiredCapability, COUNT(*) AS n,
  MIN(created_at) AS oldest
FROM intents WHERE status = 'open' AND run_at <= @now
GROUP BY namespace, goal, visibility, publisher, target_worker, required_capability
ORDER BY namespace, goal LIMIT @limit`;
export const schedulesAll = `SELECT ${SCHEDULE_COLUMNS} FROM schedules ORDER BY owner, name
LIMIT @limit`;
