SELECT id, user_id, note, allowed_types, max_files, max_bytes, files_used, bytes_used, created_at, expires_at, revoked_at FROM upload_links WHERE id = $1
