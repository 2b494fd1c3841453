-- The janitor's work list of uploads whose store leftovers are still to be
-- removed: failed ones, and complete ones whose other writers left
-- something beside the object; oldest first (uses uploads_with_store_leftovers).
SELECT id, user_id, file_name, file_size, content_type, sha256, storage_key, store_upload_id,
       status, created_at, completed_at, upload_link_id
FROM uploads WHERE store_leftovers
ORDER BY completed_at
LIMIT $1
