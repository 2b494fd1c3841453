-- GET /files?all=true (admins), next pages (see listFilesByUserAfter.sql).
SELECT id, user_id, file_name, file_size, content_type, sha256, storage_key, store_upload_id,
       status, created_at, completed_at, upload_link_id
FROM uploads
WHERE status = 'complete' AND (created_at, id) < ($1, $2)
ORDER BY created_at DESC, id DESC
LIMIT $3
