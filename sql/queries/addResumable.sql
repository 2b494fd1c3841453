-- A resumable upload's progress, beside its pending row (uploadFile).
INSERT INTO resumable_uploads (upload_id, upload_length, upload_offset, metadata, part_size, store_state,
                               hash_state, expires_at, lease_token, lease_expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
