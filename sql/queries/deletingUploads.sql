-- The janitor's other work list: deletions a crash interrupted (uses
-- uploads_deleting_by_created).
SELECT id, user_id, file_name, file_size, content_type, sha256, storage_key, store_upload_id,
       status, created_at, completed_at, upload_link_id
FROM uploads WHERE status = 'deleting'
ORDER BY created_at
LIMIT $1
