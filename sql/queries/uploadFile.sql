-- A new upload starts as 'pending', before its first byte is stored.
INSERT INTO uploads (id, user_id, file_name, content_type, storage_key, store_upload_id, status, created_at)
VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7)
