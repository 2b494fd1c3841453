-- A new resumable upload: its pending row (uploadFile) and its progress
-- (addResumable) in one statement, so a creation is one write, and no crash
-- leaves the row without its progress.
WITH upload AS (
  INSERT INTO uploads (id, user_id, file_name, content_type, storage_key, store_upload_id, status, created_at)
  VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7)
  RETURNING id
)
INSERT INTO resumable_uploads (upload_id, upload_length, upload_offset, metadata, part_size, store_state,
                               hash_state, expires_at, lease_token, lease_expires_at)
VALUES ((SELECT id FROM upload), $8, $9, $10, $11, $12, $13, $14, $15, $16)
