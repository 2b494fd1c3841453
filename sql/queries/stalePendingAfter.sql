-- The janitor's next round: past the (created_at, id) of the last row it
-- saw, so rows whose clean-up keeps failing are not fetched again.
SELECT id, user_id, file_name, file_size, content_type, sha256, storage_key, store_upload_id,
       status, created_at, completed_at, upload_link_id
FROM uploads WHERE status = 'pending' AND created_at < $1
  AND NOT EXISTS (SELECT 1 FROM resumable_uploads r WHERE r.upload_id = uploads.id) AND (created_at, id) > ($2, $3)
ORDER BY created_at, id
LIMIT $4
