-- GET /files, next pages: keyset pagination after the cursor's (created_at, id),
-- so rows inserted meanwhile (all newer) never shift a page.
SELECT id, user_id, file_name, file_size, content_type, sha256, storage_key, store_upload_id,
       status, created_at, completed_at, upload_link_id
FROM uploads
WHERE user_id = $1 AND status = 'complete' AND (created_at, id) < ($2, $3)
ORDER BY created_at DESC, id DESC
LIMIT $4
