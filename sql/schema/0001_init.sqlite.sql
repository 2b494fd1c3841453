-- Users, their API tokens (only the SHA-256 of each token is kept) and uploads.
-- Timestamps are microseconds since the Unix epoch, UTC.
CREATE TABLE users (
  id          INTEGER PRIMARY KEY,
  name        TEXT    NOT NULL UNIQUE,
  is_admin    INTEGER NOT NULL DEFAULT 0,
  disabled    INTEGER NOT NULL DEFAULT 0,
  created_at  INTEGER NOT NULL
);

CREATE TABLE api_tokens (
  id          TEXT    PRIMARY KEY,
  user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name        TEXT    NOT NULL DEFAULT '',
  token_hash  TEXT    NOT NULL UNIQUE,   -- hex SHA-256 of the token; looked up on every request
  created_at  INTEGER NOT NULL,
  expires_at  INTEGER,
  revoked_at  INTEGER
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id);

CREATE TABLE uploads (
  id               TEXT    PRIMARY KEY,  -- UUIDv7
  user_id          INTEGER NOT NULL REFERENCES users(id),
  file_name        TEXT    NOT NULL,     -- the client's name: metadata only, never a path
  file_size        INTEGER NOT NULL DEFAULT 0,
  content_type     TEXT    NOT NULL DEFAULT '',
  sha256           TEXT    NOT NULL DEFAULT '',
  storage_key      TEXT    NOT NULL,
  store_upload_id  TEXT    NOT NULL DEFAULT '',  -- S3 multipart upload id, for crash clean-up
  status           TEXT    NOT NULL CHECK (status IN ('pending', 'complete', 'failed')),
  created_at       INTEGER NOT NULL,
  completed_at     INTEGER
);
-- The files list: one owner's uploads, newest first.
CREATE INDEX uploads_by_user_created ON uploads (user_id, created_at DESC, id DESC);
-- The janitor: pending rows older than some age.
CREATE INDEX uploads_pending_by_created ON uploads (created_at) WHERE status = 'pending';
