INSERT INTO upload_links (id, user_id, token_hash, note, allowed_types, max_files, max_bytes, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
