-- The janitor's work list: pending uploads started before a time, oldest
-- first (uses uploads_pending_by_created). Resumable ones are left to their
-- expiry (expiredResumable).
SELECT id, user_id, file_name, file_size, content_type, sha256, storage_key, store_upload_id,
       status, created_at, completed_at, upload_link_id
FROM uploads WHERE status = 'pending' AND created_at < $1
  AND NOT EXISTS (SELECT 1 FROM resumable_uploads r WHERE r.upload_id = uploads.id)
ORDER BY created_at, id
LIMIT $2
