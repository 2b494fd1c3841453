-- The webhook outbox: 0012_webhooks.postgres.sql in SQLite's types (times in
-- microseconds; seq is the rowid).
CREATE TABLE webhook_deliveries (
  seq              INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id         TEXT    NOT NULL,
  endpoint         TEXT    NOT NULL,
  event_type       TEXT    NOT NULL,
  upload_id        TEXT,
  created_at       INTEGER NOT NULL,
  user_id          INTEGER NOT NULL,
  user_name        TEXT    NOT NULL,
  file_name        TEXT    NOT NULL,
  file_size        INTEGER NOT NULL,
  content_type     TEXT    NOT NULL,
  sha256           TEXT    NOT NULL,
  upload_status    TEXT    NOT NULL,
  upload_created_at INTEGER NOT NULL,
  completed_at     INTEGER,
  upload_link_id   TEXT,
  metadata         TEXT    NOT NULL DEFAULT '',
  status           TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
  attempts         INTEGER NOT NULL DEFAULT 0,
  next_attempt_at  INTEGER NOT NULL,
  claimed_until    INTEGER,
  last_error       TEXT    NOT NULL DEFAULT '',
  delivered_at     INTEGER,
  UNIQUE (event_id, endpoint)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_pending_by_upload ON webhook_deliveries (upload_id, endpoint, seq) WHERE status = 'pending';
CREATE TABLE webhook_endpoints (
  url          TEXT    PRIMARY KEY,
  disabled_at  INTEGER NOT NULL,
  reason       TEXT    NOT NULL DEFAULT ''
);
