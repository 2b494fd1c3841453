-- Upload links: a URL through which people without an account upload into
-- their owner's account (POST /upload-links). The link's credential is a
-- token in its URL, kept here only as its SHA-256. Its limits hold across
-- instances: files_used and bytes_used are reserved by one conditional
-- UPDATE when an upload through it starts (uploadFileThroughLink), and given
-- back when that upload fails (failUpload).
CREATE TABLE upload_links (
  id             TEXT    PRIMARY KEY,  -- "lnk_" + 16 hex digits
  user_id        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  token_hash     TEXT    NOT NULL UNIQUE,
  note           TEXT    NOT NULL DEFAULT '',
  allowed_types  TEXT    NOT NULL DEFAULT '',  -- comma-separated patterns; '' = any the service takes
  max_files      INTEGER,                      -- NULL: no limit
  max_bytes      INTEGER,                      -- NULL: no limit
  files_used     INTEGER NOT NULL DEFAULT 0,
  bytes_used     INTEGER NOT NULL DEFAULT 0,
  created_at     INTEGER NOT NULL,
  expires_at     INTEGER NOT NULL,
  revoked_at     INTEGER
);
CREATE INDEX upload_links_by_user ON upload_links (user_id, created_at);
-- The link an upload came through, and what it holds of the link's byte
-- limit (given back if it fails).
ALTER TABLE uploads ADD COLUMN upload_link_id TEXT REFERENCES upload_links(id) ON DELETE SET NULL;
ALTER TABLE uploads ADD COLUMN link_bytes INTEGER NOT NULL DEFAULT 0;
