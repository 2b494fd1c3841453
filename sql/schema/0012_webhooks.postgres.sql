-- The webhook outbox: one row per event and endpoint, written in the same
-- transaction as the state change the event reports, so neither exists
-- without the other. A deliverer on any instance claims due rows (a lease in
-- claimed_until, so a crashed instance's rows come due again), sends them and
-- marks them delivered; a failure schedules the next attempt, until the
-- event is older than webhook_max_age and the row is dead.
CREATE TABLE webhook_deliveries (
  seq              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- the order events were recorded in
  event_id         TEXT        NOT NULL,  -- webhook-id: from the upload and the event type (each happens once), the same for every endpoint and attempt
  endpoint         TEXT        NOT NULL,
  event_type       TEXT        NOT NULL,
  upload_id        TEXT,                  -- deliveries about one upload go out in order
  created_at       timestamptz NOT NULL,  -- when it happened: the payload's timestamp
  -- The upload as the event saw it, in the transaction that changed it: the
  -- payload is made from these, the same bytes on every attempt.
  user_id          bigint      NOT NULL,
  user_name        TEXT        NOT NULL,
  file_name        TEXT        NOT NULL,
  file_size        bigint      NOT NULL,
  content_type     TEXT        NOT NULL,
  sha256           TEXT        NOT NULL,
  upload_status    TEXT        NOT NULL,
  upload_created_at timestamptz NOT NULL,
  completed_at     timestamptz,
  upload_link_id   TEXT,
  metadata         TEXT        NOT NULL DEFAULT '',  -- tus Upload-Metadata, as created
  status           TEXT        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
  attempts         integer     NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL,
  claimed_until    timestamptz,
  last_error       TEXT        NOT NULL DEFAULT '',
  delivered_at     timestamptz,
  UNIQUE (event_id, endpoint)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_pending_by_upload ON webhook_deliveries (upload_id, endpoint, seq) WHERE status = 'pending';
-- Endpoints that answered 410 Gone: nothing is sent to them until an
-- operator enables them again.
CREATE TABLE webhook_endpoints (
  url          TEXT        PRIMARY KEY,
  disabled_at  timestamptz NOT NULL,
  reason       TEXT        NOT NULL DEFAULT ''
);
