-- Users, their API tokens (only the SHA-256 of each token is kept) and uploads.
-- The same step as 0001_init.sqlite.sql in PostgreSQL's own types.
CREATE TABLE users (
  id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name        text        NOT NULL UNIQUE,
  is_admin    boolean     NOT NULL DEFAULT false,
  disabled    boolean     NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL
);

CREATE TABLE api_tokens (
  id          text        PRIMARY KEY,
  user_id     bigint      NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name        text        NOT NULL DEFAULT '',
  token_hash  text        NOT NULL UNIQUE,   -- hex SHA-256 of the token; looked up on every request
  created_at  timestamptz NOT NULL,
  expires_at  timestamptz,
  revoked_at  timestamptz
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id);

CREATE TABLE uploads (
  id               uuid        PRIMARY KEY,  -- UUIDv7: sorts by creation time
  user_id          bigint      NOT NULL REFERENCES users(id),
  file_name        text        NOT NULL,     -- the client's name: metadata only, never a path
  file_size        bigint      NOT NULL DEFAULT 0,
  content_type     text        NOT NULL DEFAULT '',
  sha256           text        NOT NULL DEFAULT '',
  storage_key      text        NOT NULL,
  store_upload_id  text        NOT NULL DEFAULT '',  -- S3 multipart upload id, for crash clean-up
  status           text        NOT NULL CHECK (status IN ('pending', 'complete', 'failed')),
  created_at       timestamptz NOT NULL,
  completed_at     timestamptz
);
-- The files list: one owner's uploads, newest first.
CREATE INDEX uploads_by_user_created ON uploads (user_id, created_at DESC, id DESC);
-- The janitor: pending rows older than some age.
CREATE INDEX uploads_pending_by_created ON uploads (created_at) WHERE status = 'pending';
