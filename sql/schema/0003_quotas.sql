-- Per-user storage quotas. used_bytes counts a user's complete uploads plus
-- what their uploads in progress have reserved; each upload row keeps its own
-- reservation so completing, failing (or the janitor) can settle it.
ALTER TABLE users ADD COLUMN quota_bytes bigint;  -- NULL: the service's default_quota
ALTER TABLE users ADD COLUMN used_bytes bigint NOT NULL DEFAULT 0;
ALTER TABLE uploads ADD COLUMN reserved_bytes bigint NOT NULL DEFAULT 0;
UPDATE users SET used_bytes =
  (SELECT COALESCE(SUM(file_size), 0) FROM uploads WHERE uploads.user_id = users.id AND uploads.status = 'complete');
