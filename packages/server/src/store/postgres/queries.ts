/**
 * Every SQL statement of the PostgreSQL store, one per operation, with positional
 * parameters. Values are always bound, never pasted into the text. The comment above each
 * statement names its parameters in order ($1, $2, …).
 */

/** The intents columns under the names of IntentRow (quoted: PostgreSQL folds case). */
export const INTENT_COLUMNS = `id, namespace, goal, payload, publisher, visibility, priority, status,
  run_at AS "runAt", created_at AS "createdAt", expires_at AS "expiresAt",
  max_attempts AS "maxAttempts", claim_attempts AS "claimAttempts", backoff_base AS "backoffBase",
  ttl, target_worker AS "targetWorker", required_capability AS "requiredCapability",
  claim_token AS "claimToken", claim_expires_at AS "claimExpiresAt", claimer,
  worker_id AS "workerId", result, result_type AS "resultType", completed_at AS "completedAt",
  error, dead_reason AS "deadReason"`;

// id namespace goal payload publisher visibility priority runAt createdAt expiresAt
// maxAttempts backoffBase ttl targetWorker requiredCapability
export const intentInsert = `INSERT INTO intents (id, namespace, goal, payload, publisher,
  visibility, priority, status, run_at, created_at, expires_at, max_attempts, backoff_base, ttl,
  target_worker, required_capability)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $9, $10, $11, $12, $13, $14, $15)`;

/**
 * The claim: one UPDATE whose sub-select picks the first claimable intent in the order of
 * PROTOCOL.md §4. FOR UPDATE SKIP LOCKED makes concurrent claims (on any node) pass over
 * a row another claim is taking instead of waiting for it and then finding it gone; a row
 * changed before it could be locked is checked again and skipped if it no longer matches.
 * Four variants (goal given or not × publisher filter or not) so that each has a fixed
 * plan over the matching partial index.
 * now token claimExpiresAt keyId workerId namespace caps (text[]), then goal and/or
 * publisher when given.
 */
function claimStatement(withGoal: boolean, withPublisher: boolean): string {
  const goal = withGoal ? 'AND goal = $8' : '';
  const owner = withPublisher
    ? `publisher = $${withGoal ? 9 : 8}`
    : "(visibility = 'public' OR publisher = $4)";
  return `UPDATE intents SET status = 'claimed', claim_attempts = claim_attempts + 1,
  claim_token = $2, claim_expires_at = $3, claimer = $4, worker_id = $5
WHERE id = (
  SELECT id FROM intents
  WHERE status = 'open' AND namespace = $6 ${goal}
    AND run_at <= $1 AND expires_at > $1 AND claim_attempts < max_attempts
    AND (target_worker IS NULL OR target_worker = $5)
    AND (required_capability IS NULL OR required_capability = ANY($7::text[]))
    AND ${owner}
  ORDER BY priority DESC, run_at ASC, claim_attempts ASC, created_at ASC, id ASC
  LIMIT 1
  FOR UPDATE SKIP LOCKED)
RETURNING ${INTENT_COLUMNS}`;
}

const CLAIMS = [false, true].map((g) => [false, true].map((p) => claimStatement(g, p)));
export const intentClaim = (withGoal: boolean, withPublisher: boolean): string =>
  CLAIMS[Number(withGoal)]![Number(withPublisher)]!;

/** A live token's row, for this key. id token keyId now */
const LIVE = `id = $1 AND status = 'claimed' AND claim_token = $2 AND claimer = $3
  AND claim_expires_at > $4`;

// id token keyId now claimExpiresAt
export const intentExtend = `UPDATE intents SET claim_expires_at = $5 WHERE ${LIVE}
RETURNING ${INTENT_COLUMNS}`;

// id token keyId now result resultType
export const intentFulfill = `UPDATE intents SET status = 'fulfilled', result = $5,
  result_type = $6, completed_at = $4, claim_token = NULL WHERE ${LIVE}
RETURNING ${INTENT_COLUMNS}`;

// id token keyId now: locked until the failure is recorded.
export const intentSelectLive = `SELECT ${INTENT_COLUMNS} FROM intents WHERE ${LIVE} FOR UPDATE`;

/**
 * A failed or expired claim, once the core has decided its outcome.
 * id token status runAt error deadReason completedAt
 */
export const intentRelease = `UPDATE intents SET status = $3, run_at = $4,
  claim_token = NULL, claim_expires_at = NULL, error = $5, dead_reason = $6, completed_at = $7
WHERE id = $1 AND status = 'claimed' AND claim_token = $2
RETURNING ${INTENT_COLUMNS}`;

// id token
export const intentUnclaim = `UPDATE intents SET status = 'open',
  claim_attempts = claim_attempts - 1, claim_token = NULL, claim_expires_at = NULL
WHERE id = $1 AND status = 'claimed' AND claim_token = $2
RETURNING ${INTENT_COLUMNS}`;

// id
export const intentGet = `SELECT ${INTENT_COLUMNS} FROM intents WHERE id = $1`;

// id now reason
export const intentCancel = `UPDATE intents SET status = 'dead', dead_reason = $3,
  claim_token = NULL, completed_at = $2
WHERE id = $1 AND status IN ('open', 'claimed')
RETURNING ${INTENT_COLUMNS}`;

// id now. The TTL in ms is truncated, as SQLite's CAST does.
export const intentRetry = `UPDATE intents SET status = 'open', claim_attempts = 0, run_at = $2,
  expires_at = $2::bigint + CAST(trunc(ttl * 1000) AS BIGINT), claim_token = NULL,
  claim_expires_at = NULL, result = NULL, result_type = NULL, completed_at = NULL, error = NULL,
  dead_reason = NULL
WHERE id = $1
RETURNING ${INTENT_COLUMNS}`;

// now limit. Locked until released; a sweep running elsewhere takes the others.
export const leasesExpired = `SELECT ${INTENT_COLUMNS} FROM intents
WHERE status = 'claimed' AND claim_expires_at <= $1 ORDER BY claim_expires_at LIMIT $2
FOR UPDATE SKIP LOCKED`;

// now limit reason. ARRAY(…) runs the locking sub-select exactly once.
export const intentsExpire = `UPDATE intents SET status = 'dead', dead_reason = $3,
  completed_at = $1
WHERE id = ANY(ARRAY(SELECT id FROM intents WHERE status = 'open' AND expires_at <= $1
                     LIMIT $2 FOR UPDATE SKIP LOCKED))
  AND status = 'open'
RETURNING ${INTENT_COLUMNS}`;

// Bulk deletes take at most `limit` (always the last parameter) rows per statement: the
// caller loops, so a large cleanup or purge never holds many row locks for long.
// status before limit
export const intentsDeleteFinished = `DELETE FROM intents WHERE id = ANY(ARRAY(
  SELECT id FROM intents
  WHERE status = $1 AND completed_at IS NOT NULL AND completed_at < $2 LIMIT $3))`;

// limit
export const intentsPurgeAll = `DELETE FROM intents WHERE id = ANY(ARRAY(
  SELECT id FROM intents LIMIT $1))`;
// namespace limit
export const intentsPurgeNamespace = `DELETE FROM intents WHERE id = ANY(ARRAY(
  SELECT id FROM intents WHERE namespace = $1 LIMIT $2))`;
export const deadCountAll = `SELECT COUNT(*) AS n FROM intents WHERE status = 'dead'`;
// namespace
export const deadCountNamespace = `SELECT COUNT(*) AS n FROM intents
WHERE status = 'dead' AND namespace = $1`;

// limit
export const deadListAll = `SELECT ${INTENT_COLUMNS} FROM intents
WHERE status = 'dead' AND completed_at IS NOT NULL ORDER BY completed_at DESC LIMIT $1`;
// limit namespace
export const deadListNamespace = `SELECT ${INTENT_COLUMNS} FROM intents
WHERE status = 'dead' AND completed_at IS NOT NULL AND namespace = $2
ORDER BY completed_at DESC LIMIT $1`;

// id. Only a dead intent: an open, claimed or fulfilled one stays.
export const deadDiscard = `DELETE FROM intents WHERE id = $1 AND status = 'dead'`;

// Admin listing, newest first. Each filter is optional (NULL matches all).
// namespace goal status publisher workerId cursorAt cursorId limit
export const intentsList = `SELECT ${INTENT_COLUMNS} FROM intents
WHERE ($1::text IS NULL OR namespace = $1) AND ($2::text IS NULL OR goal = $2)
  AND ($3::text IS NULL OR status = $3) AND ($4::text IS NULL OR publisher = $4)
  AND ($5::text IS NULL OR worker_id = $5)
  AND ($6::bigint IS NULL OR created_at < $6 OR (created_at = $6 AND id < $7::text))
ORDER BY created_at DESC, id DESC LIMIT $8`;

export const intentsCount = `SELECT namespace, status, COUNT(*) AS n FROM intents
GROUP BY namespace, status ORDER BY namespace, status`;

// since: counts per minute (ms of the minute's start).
export const publishedPerMinute = `SELECT (created_at / 60000) * 60000 AS minute, COUNT(*) AS n
FROM intents WHERE created_at >= $1 GROUP BY minute`;
// status since
export const finishedPerMinute = `SELECT (completed_at / 60000) * 60000 AS minute, COUNT(*) AS n
FROM intents WHERE status = $1 AND completed_at IS NOT NULL AND completed_at >= $2
GROUP BY minute`;

export const keyCount = `SELECT COUNT(*) AS n FROM api_keys`;

// now limit. Open intents due after their creation are the only ones that can be due
// after now (the index holds only those).
export const intentsDueAfter = `SELECT ${INTENT_COLUMNS} FROM intents
WHERE status = 'open' AND run_at > created_at AND run_at > $1 ORDER BY run_at LIMIT $2`;

// class text: a transaction-scoped lock on one name, so that the checks of a publish and
// its INSERT are not interleaved with another publish's (on any node).
export const advisoryLock = `SELECT pg_advisory_xact_lock($1::integer, hashtext($2::text))`;
export const sessionLock = `SELECT pg_advisory_lock($1::integer, hashtext($2::text))`;
export const sessionTryLock = `SELECT pg_try_advisory_lock($1::integer, hashtext($2::text)) AS got`;
export const sessionUnlock = `SELECT pg_advisory_unlock($1::integer, hashtext($2::text))`;

// keyId idemKey
export const idempotencyGet = `SELECT body_hash AS "bodyHash", status, response,
  created_at AS "createdAt"
FROM idempotency WHERE key_id = $1 AND idem_key = $2`;
// keyId idemKey bodyHash status response createdAt
export const idempotencyPut = `INSERT INTO idempotency
  (key_id, idem_key, body_hash, status, response, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (key_id, idem_key) DO UPDATE SET body_hash = excluded.body_hash,
  status = excluded.status, response = excluded.response, created_at = excluded.created_at`;
// before limit
export const idempotencyDeleteBefore = `DELETE FROM idempotency WHERE (key_id, idem_key) IN (
  SELECT key_id, idem_key FROM idempotency WHERE created_at < $1 LIMIT $2)`;
// keyId
export const idempotencyDeleteKey = `DELETE FROM idempotency WHERE key_id = $1`;

// publisher
export const intentsLiveOfPublisher = `SELECT COUNT(*) AS n FROM intents
WHERE publisher = $1 AND status IN ('open', 'claimed')`;

// keyId nonce expiresAt: no row inserted means the nonce is already remembered.
export const nonceInsert = `INSERT INTO nonces (key_id, nonce, expires_at) VALUES ($1, $2, $3)
ON CONFLICT (key_id, nonce) DO NOTHING`;
// keyId nonce now: the same nonce remembered past its window is forgotten first.
export const nonceDeleteStale = `DELETE FROM nonces
WHERE key_id = $1 AND nonce = $2 AND expires_at <= $3`;
export const nonceCount = `SELECT COUNT(*) AS n FROM nonces`;
// now limit
export const noncesDeleteExpired = `DELETE FROM nonces WHERE (key_id, nonce) IN (
  SELECT key_id, nonce FROM nonces WHERE expires_at <= $1 LIMIT $2)`;
// keyId
export const noncesDeleteKey = `DELETE FROM nonces WHERE key_id = $1`;

// owner name value expiresAt
export const kvSet = `INSERT INTO kv (owner, name, value, expires_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (owner, name) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`;
// owner name now
export const kvGet = `SELECT value FROM kv WHERE owner = $1 AND name = $2 AND expires_at > $3`;
// now limit
export const kvDeleteExpired = `DELETE FROM kv WHERE (owner, name) IN (
  SELECT owner, name FROM kv WHERE expires_at <= $1 LIMIT $2)`;

const KEY_COLUMNS = `key_id AS "keyId", key_hash AS "keyHash", prefix, owner,
  created_at AS "createdAt", last_used_at AS "lastUsedAt", requests`;
// keyId keyHash prefix owner createdAt lastUsedAt requests
export const keyCreate = `INSERT INTO api_keys
  (key_id, key_hash, prefix, owner, created_at, last_used_at, requests)
VALUES ($1, $2, $3, $4, $5, $6, $7)`;
// keyHash
export const keyByHash = `SELECT ${KEY_COLUMNS} FROM api_keys WHERE key_hash = $1`;
export const keyList = `SELECT ${KEY_COLUMNS} FROM api_keys ORDER BY created_at, key_id`;
// keyId
// keyId now: a revoked key's leases end now; the sweeper requeues them as expired ones.
export const leasesEndOfKey = `UPDATE intents SET claim_expires_at = $2
WHERE status = 'claimed' AND claimer = $1 AND claim_expires_at > $2`;

export const keyDeleteById = `DELETE FROM api_keys WHERE key_id = $1 RETURNING key_id AS "keyId"`;
// keyHash
export const keyDeleteByHash = `DELETE FROM api_keys WHERE key_hash = $1
RETURNING key_id AS "keyId"`;
// keyId count lastUsedAt
export const keyUsageAdd = `UPDATE api_keys SET requests = requests + $2,
  last_used_at = GREATEST(COALESCE(last_used_at, 0), $3) WHERE key_id = $1`;

export const ping = `SELECT 1 AS ok`;
