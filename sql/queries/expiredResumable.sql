-- The janitor's list: unfinished resumable uploads past their expiry, and
-- not being written (no live lease), oldest expiry first.
SELECT u.id, u.user_id, u.file_name, u.file_size, u.content_type, u.sha256, u.storage_key, u.store_upload_id,
       u.status, u.created_at, u.completed_at, u.upload_link_id
FROM resumable_uploads r JOIN uploads u ON u.id = r.upload_id
WHERE u.status = 'pending' AND r.expires_at <= $1 AND (r.lease_expires_at IS NULL OR r.lease_expires_at <= $1)
ORDER BY r.expires_at
LIMIT $2
