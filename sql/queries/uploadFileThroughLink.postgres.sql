-- A new upload through a link, in one statement: one file and its bytes
-- reserved only while the link is usable and they fit (a conditional
-- UPDATE: uploads through it on several instances never pass its limits
-- together), and the pending row only if they were.
WITH reserved AS (
  UPDATE upload_links SET files_used = files_used + 1, bytes_used = bytes_used + $9
  WHERE id = $8 AND revoked_at IS NULL AND expires_at > $10
    AND (max_files IS NULL OR files_used < max_files)
    AND (max_bytes IS NULL OR bytes_used + $9 <= max_bytes)
  RETURNING id
)
INSERT INTO uploads (id, user_id, file_name, content_type, storage_key, store_upload_id, status, created_at,
                     upload_link_id, link_bytes)
SELECT $1, $2, $3, $4, $5, $6, 'pending', $7, reserved.id, $9 FROM reserved
