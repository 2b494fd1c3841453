-- Resumable (tus) uploads: the progress of a pending upload that arrives in
-- several requests, maybe to several instances. Its row in uploads is the
-- upload as every other (pending -> complete | failed); this one holds what
-- the next request needs: the durable offset, the declared length (NULL
-- while deferred), the metadata as created, the part size fixed at creation,
-- the store's and the hash's saved state, the expiry, and the write lease:
-- one writer at a time, fenced by lease_token (+1 for every new writer).
CREATE TABLE resumable_uploads (
  upload_id         uuid        PRIMARY KEY REFERENCES uploads(id) ON DELETE CASCADE,
  upload_length     bigint,
  upload_offset     bigint      NOT NULL DEFAULT 0,
  metadata          text        NOT NULL DEFAULT '',
  part_size         bigint      NOT NULL,
  store_state       text        NOT NULL DEFAULT '',
  hash_state        text        NOT NULL,
  expires_at        timestamptz NOT NULL,
  lease_token       bigint      NOT NULL DEFAULT 0,
  lease_expires_at  timestamptz
);
-- The janitor: unfinished uploads past their expiry.
CREATE INDEX resumable_uploads_by_expiry ON resumable_uploads (expires_at);
