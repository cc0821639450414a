/**
 * Numbered SQLite migrations. Applied in order, each in its own transaction, and
 * recorded in schema_migrations. Never edit a released migration: add the next number.
 * Times are integer milliseconds since the epoch.
 */
import type { Migration } from '../../store.js';

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'initial',
    sql: `
CREATE TABLE intents (
  id                  TEXT PRIMARY KEY,
  namespace           TEXT NOT NULL,
  goal                TEXT NOT NULL,
  payload             TEXT NOT NULL,
  publisher           TEXT NOT NULL,
  visibility          TEXT NOT NULL CHECK (visibility IN ('private', 'public')),
  priority            INTEGER NOT NULL,
  status              TEXT NOT NULL CHECK (status IN ('open', 'claimed', 'fulfilled', 'dead')),
  run_at              INTEGER NOT NULL,
  created_at          INTEGER NOT NULL,
  expires_at          INTEGER NOT NULL,
  max_attempts        INTEGER NOT NULL,
  claim_attempts      INTEGER NOT NULL DEFAULT 0,
  backoff_base        REAL NOT NULL,
  ttl                 REAL NOT NULL,
  target_worker       TEXT,
  required_capability TEXT,
  claim_token         TEXT,
  claim_expires_at    INTEGER,
  claimer             TEXT,
  worker_id           TEXT,
  result              TEXT,
  result_type         TEXT,
  completed_at        INTEGER,
  error               TEXT,
  dead_reason         TEXT
);
-- The claim walks these in the order of PROTOCOL.md §4 and stops at the first match.
CREATE INDEX intents_claim_by_goal ON intents
  (namespace, goal, priority DESC, run_at, claim_attempts, created_at, id) WHERE status = 'open';
CREATE INDEX intents_claim_any ON intents
  (namespace, priority DESC, run_at, claim_attempts, created_at, id) WHERE status = 'open';
-- Lease sweeper and TTL pass.
CREATE INDEX intents_lease_expiry ON intents (claim_expires_at) WHERE status = 'claimed';
CREATE INDEX intents_open_expiry ON intents (expires_at) WHERE status = 'open';
CREATE INDEX intents_due ON intents (run_at) WHERE status = 'open';
-- Retention and the dead-letter list.
CREATE INDEX intents_finished ON intents (status, completed_at);
-- Per-key quota (open + claimed intents of one publisher).
CREATE INDEX intents_publisher_live ON intents (publisher) WHERE status IN ('open', 'claimed');
CREATE INDEX intents_created ON intents (created_at);

CREATE TABLE api_keys (
  key_id       TEXT PRIMARY KEY,
  key_hash     TEXT NOT NULL UNIQUE,
  prefix       TEXT NOT NULL,
  owner        TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  last_used_at INTEGER,
  requests     INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE idempotency (
  key_id     TEXT NOT NULL,
  idem_key   TEXT NOT NULL,
  body_hash  TEXT NOT NULL,
  status     INTEGER NOT NULL,
  response   TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (key_id, idem_key)
);
CREATE INDEX idempotency_created ON idempotency (created_at);

CREATE TABLE kv (
  owner      TEXT NOT NULL,
  name       TEXT NOT NULL,
  value      TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (owner, name)
);
CREATE INDEX kv_expiry ON kv (expires_at);
`,
  },
  {
    version: 2,
    name: 'request nonces',
    sql: `
CREATE TABLE nonces (
  key_id     TEXT NOT NULL,
  nonce      TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (key_id, nonce)
) WITHOUT ROWID;
CREATE INDEX nonces_expiry ON nonces (expires_at);
`,
  },
  {
    version: 3,
    name: 'narrower indexes',
    // A claim used to move its row in six indexes. Finished intents are the only ones with a
    // completion time, and only delayed or retried intents are due after their creation: the
    // two indexes that serve those lists now hold only those rows, so a claim leaves them alone.
    sql: `
DROP INDEX intents_finished;
CREATE INDEX intents_finished ON intents (status, completed_at) WHERE completed_at IS NOT NULL;
DROP INDEX intents_due;
CREATE INDEX intents_due ON intents (run_at) WHERE status = 'open' AND run_at > created_at;
`,
  },
  {
    version: 4,
    name: 'schedules',
    // Schedules (issue 17). A run is an ordinary intent that names its schedule and the tick
    // it is for; the unique index is the guard that no tick of a schedule is published twice.
    sql: `
ALTER TABLE intents ADD COLUMN schedule TEXT;
ALTER TABLE intents ADD COLUMN scheduled_for INTEGER;
CREATE UNIQUE INDEX intents_schedule_run ON intents (publisher, schedule, scheduled_for)
  WHERE schedule IS NOT NULL;

CREATE TABLE schedules (
  owner         TEXT NOT NULL,
  name          TEXT NOT NULL,
  cron          TEXT,
  every_seconds INTEGER,
  timezone      TEXT NOT NULL,
  intent        TEXT NOT NULL,
  overlap       TEXT NOT NULL CHECK (overlap IN ('allow', 'skip')),
  catch_up      TEXT NOT NULL CHECK (catch_up IN ('none', 'latest', 'all')),
  paused        INTEGER NOT NULL,
  last_tick     INTEGER NOT NULL,
  next_at       INTEGER,
  created_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL,
  PRIMARY KEY (owner, name)
);
-- The ticker's one query: the active schedules whose next tick has come.
CREATE INDEX schedules_due ON schedules (next_at) WHERE paused = 0;
`,
  },
  {
    version: 5,
    name: 'workers',
    // The fleet (issue 18): a worker is its worker id under its key. Each node keeps what it
    // sees in memory and writes it here in batches (ops/workers.ts); asks is the JSON list of
    // the [namespace, goal, publisher] its claims asked for, capabilities a JSON list.
    sql: `
CREATE TABLE workers (
  key_id       TEXT NOT NULL,
  worker_id    TEXT NOT NULL,
  capabilities TEXT NOT NULL,
  asks         TEXT NOT NULL,
  user_agent   TEXT,
  address      TEXT,
  first_seen   INTEGER NOT NULL,
  last_seen    INTEGER NOT NULL,
  fulfilled    INTEGER NOT NULL,
  failed       INTEGER NOT NULL,
  last_error   TEXT,
  command      TEXT CHECK (command IN ('quiet', 'stop')),
  PRIMARY KEY (key_id, worker_id)
);
CREATE INDEX workers_last_seen ON workers (last_seen);
`,
  },
  {
    version: 6,
    name: 'schedule deadlines and alerts',
    // A schedule's deadline and alert (issue 17), and where its deadline pass stands. A run
    // that died or missed its deadline has one schedule_failures row: its key is the guard
    // that each run's alert is published once; the dead runs index serves the pass that
    // finds a dead run whose failure was not recorded (a node stopped in between). Dead runs
    // from before this migration are recorded as they are: no alert for them.
    sql: `
ALTER TABLE schedules ADD COLUMN deadline_seconds INTEGER;
ALTER TABLE schedules ADD COLUMN on_failure TEXT;
ALTER TABLE schedules ADD COLUMN checked_until INTEGER NOT NULL DEFAULT 0;
CREATE INDEX schedules_deadline ON schedules (owner, name) WHERE deadline_seconds IS NOT NULL;

CREATE TABLE schedule_failures (
  owner         TEXT NOT NULL,
  schedule      TEXT NOT NULL,
  scheduled_for INTEGER NOT NULL,
  intent_id     TEXT NOT NULL,
  reason        TEXT NOT NULL CHECK (reason IN ('dead', 'missed')),
  failed_at     INTEGER NOT NULL,
  alert_id      TEXT,
  PRIMARY KEY (owner, schedule, scheduled_for)
);
CREATE INDEX schedule_failures_at ON schedule_failures (failed_at);
CREATE INDEX intents_runs_dead ON intents (completed_at)
  WHERE schedule IS NOT NULL AND status = 'dead';
INSERT INTO schedule_failures
  (owner, schedule, scheduled_for, intent_id, reason, failed_at, alert_id)
SELECT publisher, schedule, scheduled_for, id, 'dead', COALESCE(completed_at, created_at), NULL
FROM intents WHERE schedule IS NOT NULL AND scheduled_for IS NOT NULL AND status = 'dead';
`,
  },
  {
    version: 7,
    name: 'flow control',
    // Flow control (issue 19): a pause, a limit in flight and a rate per namespace and goal
    // (goal '*': the whole namespace), and the claims inside each rate's sliding window.
    sql: `
CREATE TABLE flow_controls (
  namespace     TEXT NOT NULL,
  goal          TEXT NOT NULL,
  paused        INTEGER NOT NULL,
  max_in_flight INTEGER,
  rate_limit    INTEGER,
  rate_per      INTEGER,
  updated_at    INTEGER NOT NULL,
  PRIMARY KEY (namespace, goal)
);
CREATE TABLE flow_claims (
  namespace  TEXT NOT NULL,
  goal       TEXT NOT NULL,
  at         INTEGER NOT NULL,
  intent_id  TEXT NOT NULL,
  PRIMARY KEY (namespace, goal, at, intent_id)
);
`,
  },
  {
    version: 8,
    name: 'intent progress',
    // The last progress a worker reported (issue 20). Version 7 is flow control's (issue 19).
    sql: `
ALTER TABLE intents ADD COLUMN progress_percent REAL;
ALTER TABLE intents ADD COLUMN progress_message TEXT;
ALTER TABLE intents ADD COLUMN progress_data TEXT;
ALTER TABLE intents ADD COLUMN progress_at INTEGER;
`,
  },
  {
    version: 9,
    name: 'status check without a list',
    // The same intents table, its status CHECK written as four comparisons: SQLite compiles a
    // CHECK's IN list of more than two constants into an ephemeral B-tree, built anew by every
    // INSERT and every UPDATE that sets status (about 10,000 instructions each). A CHECK
    // cannot be altered: the table is rebuilt (SQLite's ALTER TABLE procedure) with the columns
    // of migrations 1, 4 and 8 in their order, the rows copied with their rowids, and every
    // index of migrations 1, 3, 4 and 6 created again as it was. No table references intents
    // and it references none, so foreign keys (on, and not switchable inside the migration's
    // transaction) do nothing here; the new table is renamed, not the old one, so the RENAME
    // has no reference to rewrite, whatever legacy_alter_table says.
    sql: `
CREATE TABLE intents_new (
  id                  TEXT PRIMARY KEY,
  namespace           TEXT NOT NULL,
  goal                TEXT NOT NULL,
  payload             TEXT NOT NULL,
  publisher           TEXT NOT NULL,
  visibility          TEXT NOT NULL CHECK (visibility IN ('private', 'public')),
  priority            INTEGER NOT NULL,
  status              TEXT NOT NULL CHECK (status = 'open' OR status = 'claimed'
                        OR status = 'fulfilled' OR status = 'dead'),
  run_at              INTEGER NOT NULL,
  created_at          INTEGER NOT NULL,
  expires_at          INTEGER NOT NULL,
  max_attempts        INTEGER NOT NULL,
  claim_attempts      INTEGER NOT NULL DEFAULT 0,
  backoff_base        REAL NOT NULL,
  ttl                 REAL NOT NULL,
  target_worker       TEXT,
  required_capability TEXT,
  claim_token         TEXT,
  claim_expires_at    INTEGER,
  claimer             TEXT,
  worker_id           TEXT,
  result              TEXT,
  result_type         TEXT,
  completed_at        INTEGER,
  error               TEXT,
  dead_reason         TEXT,
  schedule            TEXT,
  scheduled_for       INTEGER,
  progress_percent    REAL,
  progress_message    TEXT,
  progress_data       TEXT,
  progress_at         INTEGER
);
INSERT INTO intents_new (rowid, id, namespace, goal, payload, publisher, visibility, priority,
  status, run_at, created_at, expires_at, max_attempts, claim_attempts, backoff_base, ttl,
  target_worker, required_capability, claim_token, claim_expires_at, claimer, worker_id,
  result, result_type, completed_at, error, dead_reason, schedule, scheduled_for,
  progress_percent, progress_message, progress_data, progress_at)
SELECT rowid, id, namespace, goal, payload, publisher, visibility, priority,
  status, run_at, created_at, expires_at, max_attempts, claim_attempts, backoff_base, ttl,
  target_worker, required_capability, claim_token, claim_expires_at, claimer, worker_id,
  result, result_type, completed_at, error, dead_reason, schedule, scheduled_for,
  progress_percent, progress_message, progress_data, progress_at
FROM intents ORDER BY rowid;
DROP TABLE intents;
ALTER TABLE intents_new RENAME TO intents;
CREATE INDEX intents_claim_by_goal ON intents
  (namespace, goal, priority DESC, run_at, claim_attempts, created_at, id) WHERE status = 'open';
CREATE INDEX intents_claim_any ON intents
  (namespace, priority DESC, run_at, claim_attempts, created_at, id) WHERE status = 'open';
CREATE INDEX intents_lease_expiry ON intents (claim_expires_at) WHERE status = 'claimed';
CREATE INDEX intents_open_expiry ON intents (expires_at) WHERE status = 'open';
CREATE INDEX intents_publisher_live ON intents (publisher) WHERE status IN ('open', 'claimed');
CREATE INDEX intents_created ON intents (created_at);
CREATE INDEX intents_finished ON intents (status, completed_at) WHERE completed_at IS NOT NULL;
CREATE INDEX intents_due ON intents (run_at) WHERE status = 'open' AND run_at > created_at;
CREATE UNIQUE INDEX intents_schedule_run ON intents (publisher, schedule, scheduled_for)
  WHERE schedule IS NOT NULL;
CREATE INDEX intents_runs_dead ON intents (completed_at)
  WHERE schedule IS NOT NULL AND status = 'dead';
`,
  },
];
