-- SQLite, after reserveLink: the pending row, with the link and what it holds of it.
INSERT INTO uploads (id, user_id, file_name, content_type, storage_key, store_upload_id, status, created_at,
                     upload_link_id, link_bytes)
VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9)
