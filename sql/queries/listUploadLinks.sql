-- GET /upload-links: one owner's links, newest first.
SELECT id, user_id, note, allowed_types, max_files, max_bytes, files_used, bytes_used, created_at, expires_at, revoked_at FROM upload_links WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2
