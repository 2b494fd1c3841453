-- Crash-safe deletion: a row is marked 'deleting' before its object is
-- removed, and removed after; the janitor finishes what a crash interrupted.
-- A deleting row is invisible to the files API; its size stays in its
-- owner's usage until the row goes.
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt
-- (https://www.sqlite.org/lang_altertable.html, "other kinds of table
-- schema changes"), inside the migration's transaction.
CREATE TABLE uploads_new (
  id               TEXT    PRIMARY KEY,  -- UUIDv7
  user_id          INTEGER NOT NULL REFERENCES users(id),
  file_name        TEXT    NOT NULL,     -- the client's name: metadata only, never a path
  file_size        INTEGER NOT NULL DEFAULT 0,
  content_type     TEXT    NOT NULL DEFAULT '',
  sha256           TEXT    NOT NULL DEFAULT '',
  storage_key      TEXT    NOT NULL,
  store_upload_id  TEXT    NOT NULL DEFAULT '',  -- S3 multipart upload id, for crash clean-up
  status           TEXT    NOT NULL CHECK (status IN ('pending', 'complete', 'failed', 'deleting')),
  created_at       INTEGER NOT NULL,
  completed_at     INTEGER,
  reserved_bytes   bigint  NOT NULL DEFAULT 0
);
INSERT INTO uploads_new (id, user_id, file_name, file_size, content_type, sha256, storage_key, store_upload_id,
                         status, created_at, completed_at, reserved_bytes)
  SELECT id, user_id, file_name, file_size, content_type, sha256, storage_key, store_upload_id,
         status, created_at, completed_at, reserved_bytes FROM uploads;
DROP TABLE uploads;
ALTER TABLE uploads_new RENAME TO uploads;
CREATE INDEX uploads_by_user_created ON uploads (user_id, created_at DESC, id DESC);
CREATE INDEX uploads_pending_by_created ON uploads (created_at) WHERE status = 'pending';
CREATE INDEX uploads_complete_by_created ON uploads (created_at DESC, id DESC) WHERE status = 'complete';
CREATE INDEX uploads_deleting_by_created ON uploads (created_at) WHERE status = 'deleting';
