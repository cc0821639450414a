/**
 * Numbered PostgreSQL migrations. Applied in order, each in its own transaction under an
 * advisory lock, and recorded in schema_migrations. Never edit a released migration: add
 * the next number. Version 1 is the SQLite schema as of its migration 3; versions 2 and 3
 * change nothing, so that both backends count their schema alike: a schema change is the
 * same next number on each (test/store/schema.test.ts holds the two schemas equal).
 * Times are BIGINT milliseconds since the epoch (read back as JS numbers: they stay far
 * below 2^53). Identifiers and other compared text columns use the "C" collation, so that
 * ORDER BY and cursors compare code points like SQLite's BINARY and JS's `<`, whatever the
 * database's locale.
 */
import type { Migration } from '../store.js';

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'initial',
    sql: `
CREATE TABLE intents (
  id                  TEXT COLLATE "C" PRIMARY KEY,
  namespace           TEXT COLLATE "C" NOT NULL,
  goal                TEXT COLLATE "C" NOT NULL,
  payload             TEXT NOT NULL,
  publisher           TEXT COLLATE "C" NOT NULL,
  visibility          TEXT NOT NULL CHECK (visibility IN ('private', 'public')),
  priority            INTEGER NOT NULL,
  status              TEXT COLLATE "C" NOT NULL
                        CHECK (status IN ('open', 'claimed', 'fulfilled', 'dead')),
  run_at              BIGINT NOT NULL,
  created_at          BIGINT NOT NULL,
  expires_at          BIGINT NOT NULL,
  max_attempts        INTEGER NOT NULL,
  claim_attempts      INTEGER NOT NULL DEFAULT 0,
  backoff_base        DOUBLE PRECISION NOT NULL,
  ttl                 DOUBLE PRECISION NOT NULL,
  target_worker       TEXT COLLATE "C",
  required_capability TEXT COLLATE "C",
  claim_token         TEXT COLLATE "C",
  claim_expires_at    BIGINT,
  claimer             TEXT COLLATE "C",
  worker_id           TEXT COLLATE "C",
  result              TEXT,
  result_type         TEXT,
  completed_at        BIGINT,
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
-- Only delayed or retried intents can be due after now; a claim leaves this index alone.
CREATE INDEX intents_due ON intents (run_at) WHERE status = 'open' AND run_at > created_at;
-- Retention and the dead-letter list: finished intents are the ones with a completion time.
CREATE INDEX intents_finished ON intents (status, completed_at) WHERE completed_at IS NOT NULL;
-- Per-key quota (open + claimed intents of one publisher).
CREATE INDEX intents_publisher_live ON intents (publisher) WHERE status IN ('open', 'claimed');
CREATE INDEX intents_created ON intents (created_at);

CREATE TABLE api_keys (
  key_id       TEXT COLLATE "C" PRIMARY KEY,
  key_hash     TEXT COLLATE "C" NOT NULL UNIQUE,
  prefix       TEXT NOT NULL,
  owner        TEXT NOT NULL,
  created_at   BIGINT NOT NULL,
  last_used_at BIGINT,
  requests     BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE idempotency (
  key_id     TEXT COLLATE "C" NOT NULL,
  idem_key   TEXT COLLATE "C" NOT NULL,
  body_hash  TEXT NOT NULL,
  status     INTEGER NOT NULL,
  response   TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (key_id, idem_key)
);
CREATE INDEX idempotency_created ON idempotency (created_at);

CREATE TABLE kv (
  owner      TEXT COLLATE "C" NOT NULL,
  name       TEXT COLLATE "C" NOT NULL,
  value      TEXT NOT NULL,
  expires_at BIGINT NOT NULL,
  PRIMARY KEY (owner, name)
);
CREATE INDEX kv_expiry ON kv (expires_at);

CREATE TABLE nonces (
  key_id     TEXT COLLATE "C" NOT NULL,
  nonce      TEXT COLLATE "C" NOT NULL,
  expires_at BIGINT NOT NULL,
  PRIMARY KEY (key_id, nonce)
);
CREATE INDEX nonces_expiry ON nonces (expires_at);
`,
  },
  // SQLite's 2 and 3, already in version 1 here.
  { version: 2, name: 'request nonces', sql: '-- in version 1' },
  { version: 3, name: 'narrower indexes', sql: '-- in version 1' },
  {
    version: 4,
    name: 'schedules',
    // Schedules (issue 17). A run is an ordinary intent that names its schedule and the tick
    // it is for; the unique index is the guard that no tick of a schedule is published twice.
    sql: `
ALTER TABLE intents ADD COLUMN schedule TEXT COLLATE "C";
ALTER TABLE intents ADD COLUMN scheduled_for BIGINT;
CREATE UNIQUE INDEX intents_schedule_run ON intents (publisher, schedule, scheduled_for)
  WHERE schedule IS NOT NULL;

CREATE TABLE schedules (
  owner         TEXT COLLATE "C" NOT NULL,
  name          TEXT COLLATE "C" NOT NULL,
  cron          TEXT,
  every_seconds INTEGER,
  timezone      TEXT NOT NULL,
  intent        TEXT NOT NULL,
  overlap       TEXT NOT NULL CHECK (overlap IN ('allow', 'skip')),
  catch_up      TEXT NOT NULL CHECK (catch_up IN ('none', 'latest', 'all')),
  paused        INTEGER NOT NULL,
  last_tick     BIGINT NOT NULL,
  next_at       BIGINT,
  created_at    BIGINT NOT NULL,
  updated_at    BIGINT NOT NULL,
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
  key_id       TEXT COLLATE "C" NOT NULL,
  worker_id    TEXT COLLATE "C" NOT NULL,
  capabilities TEXT NOT NULL,
  asks         TEXT NOT NULL,
  user_agent   TEXT,
  address      TEXT,
  first_seen   BIGINT NOT NULL,
  last_seen    BIGINT NOT NULL,
  fulfilled    BIGINT NOT NULL,
  failed       BIGINT NOT NULL,
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
ALTER TABLE schedules ADD COLUMN checked_until BIGINT NOT NULL DEFAULT 0;
CREATE INDEX schedules_deadline ON schedules (owner, name) WHERE deadline_seconds IS NOT NULL;

CREATE TABLE schedule_failures (
  owner         TEXT COLLATE "C" NOT NULL,
  schedule      TEXT COLLATE "C" NOT NULL,
  scheduled_for BIGINT NOT NULL,
  intent_id     TEXT COLLATE "C" NOT NULL,
  reason        TEXT NOT NULL CHECK (reason IN ('dead', 'missed')),
  failed_at     BIGINT NOT NULL,
  alert_id      TEXT COLLATE "C",
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
  namespace     TEXT COLLATE "C" NOT NULL,
  goal          TEXT COLLATE "C" NOT NULL,
  paused        INTEGER NOT NULL,
  max_in_flight INTEGER,
  rate_limit    INTEGER,
  rate_per      INTEGER,
  updated_at    BIGINT NOT NULL,
  PRIMARY KEY (namespace, goal)
);
CREATE TABLE flow_claims (
  namespace  TEXT COLLATE "C" NOT NULL,
  goal       TEXT COLLATE "C" NOT NULL,
  at         BIGINT NOT NULL,
  intent_id  TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (namespace, goal, at, intent_id)
);
`,
  },
  {
    version: 8,
    name: 'intent progress',
    // The last progress a worker reported (issue 20). Version 7 is flow control's (issue 19).
    sql: `
ALTER TABLE intents ADD COLUMN progress_percent DOUBLE PRECISION;
ALTER TABLE intents ADD COLUMN progress_message TEXT;
ALTER TABLE intents ADD COLUMN progress_data TEXT;
ALTER TABLE intents ADD COLUMN progress_at BIGINT;
`,
  },
  // SQLite's rebuild of intents for its status CHECK: PostgreSQL checks an IN list as it is.
  { version: 9, name: 'status check without a list', sql: '-- SQLite only' },
];
