-- GET /files, first page: one owner's complete uploads, newest first
-- (uses uploads_by_user_created).
SELECT id, user_id, file_name, file_size, content_type, sha256, storage_key, store_upload_id,
       status, created_at, completed_at, upload_link_id
FROM uploads
WHERE user_id = $1 AND status = 'complete'
ORDER BY created_at DESC, id DESC
LIMIT $2
