-- Resumable (tus) uploads: the step of 0005_resumable.postgres.sql in
-- SQLite's types (times in microseconds). The progress of a pending upload
-- that arrives in several requests, maybe to several instances. Its row in uploads is the
-- upload as every other (pending -> complete | failed); this one holds what
-- the next request needs: the durable offset, the declared length (NULL
-- while deferred), the metadata as created, the part size fixed at creation,
-- the store's and the hash's saved state, the expiry, and the write lease:
-- one writer at a time, fenced by lease_token (+1 for every new writer).
CREATE TABLE resumable_uploads (
  upload_id         TEXT        PRIMARY KEY REFERENCES uploads(id) ON DELETE CASCADE,
  upload_length     INTEGER,
  upload_offset     INTEGER     NOT NULL DEFAULT 0,
  metadata          TEXT        NOT NULL DEFAULT '',
  part_size         INTEGER     NOT NULL,
  store_state       TEXT        NOT NULL DEFAULT '',
  hash_state        TEXT        NOT NULL,
  expires_at        INTEGER     NOT NULL,
  lease_token       INTEGER     NOT NULL DEFAULT 0,
  lease_expires_at  INTEGER
);
-- The janitor: unfinished uploads past their expiry.
CREATE INDEX resumable_uploads_by_expiry ON resumable_uploads (expires_at);
